"""The official SDK's WorkloadIdentityCredentials against the sandbox: exchange, then call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wif.conftest import Federated

anthropic = pytest.importorskip("anthropic")
from anthropic.lib.credentials import IdentityTokenFile, WorkloadIdentityCredentials  # noqa: E402

_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_BASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_sdk_exchanges_a_sandbox_identity_token_and_lists_models(
    federated: Federated, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(federated.identity_token(claims={"owner": "acme"}))
    credentials = WorkloadIdentityCredentials(
        identity_token_provider=IdentityTokenFile(str(token_file)),
        federation_rule_id=federated.rule["id"],
        organization_id=federated.org_id,
        service_account_id=federated.sa["id"],
        workspace_id=federated.workspace,
    )
    client = anthropic.Anthropic(base_url=federated.sb.url, credentials=credentials)
    ids = [m.id for m in client.models.list()]
    assert "claude-sonnet-4-5" in ids
    message = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.usage.output_tokens > 0
    assert any(
        e.get("service_account_id") == federated.sa["id"] for e in federated.sb.state.data["usage"]
    )


def test_the_sdk_finds_federation_in_the_environment(
    federated: Federated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(federated.identity_token(claims={"owner": "acme"}))
    monkeypatch.setenv("ANTHROPIC_FEDERATION_RULE_ID", federated.rule["id"])
    monkeypatch.setenv("ANTHROPIC_ORGANIZATION_ID", federated.org_id)
    monkeypatch.setenv("ANTHROPIC_SERVICE_ACCOUNT_ID", federated.sa["id"])
    monkeypatch.setenv("ANTHROPIC_WORKSPACE_ID", federated.workspace)
    monkeypatch.setenv("ANTHROPIC_IDENTITY_TOKEN_FILE", str(token_file))
    client = anthropic.Anthropic(base_url=federated.sb.url)
    assert len(list(client.models.list())) == 3


def test_the_sdk_gets_the_opaque_401_for_a_foreign_subject(
    federated: Federated, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(federated.identity_token(sub="repo:evil/app", claims={"owner": "acme"}))
    credentials = WorkloadIdentityCredentials(
        identity_token_provider=IdentityTokenFile(str(token_file)),
        federation_rule_id=federated.rule["id"],
        organization_id=federated.org_id,
        service_account_id=federated.sa["id"],
    )
    client = anthropic.Anthropic(base_url=federated.sb.url, credentials=credentials, max_retries=0)
    with pytest.raises(anthropic.AnthropicError) as caught:
        client.models.list()
    assert "401" in str(caught.value)
