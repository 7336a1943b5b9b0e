"""Numbers and pages in the WIF API's answers are hostile input: a token lifetime of 10**20,
``expires_in: Infinity``, a page token that repeats or never ends, a connection that drops.
Each is the API error (or a documented bound), never a traceback, never after an archive."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.errors import ApiError
from keyguard.admin.sandbox import Sandbox
from keyguard.admin.sandbox.federation import federation_data
from keyguard.errors import ExitCode, UnavailableError
from keyguard.keys import Secret
from keyguard.wif import api
from keyguard.wif.api import WifClient
from tests.admin.hostile import HostileApi, hostile_api
from tests.wif.conftest import admin_http, ok
from tests.wif.test_cli import Keyless, make_keyless

DAY = 86400


@pytest.fixture
def hostile() -> Iterator[HostileApi]:
    with hostile_api() as served:
        yield served


def _token() -> Secret:
    return Secret("sk-ant-oat01-" + "x" * 40)


# -- keyguard revoke --rule: the rule's token_lifetime_seconds -------------------------------


def _applied_with_lifetime(tmp_path: Path, sandbox: Sandbox, lifetime: Any) -> tuple[Keyless, str]:
    kl = make_keyless(tmp_path, sandbox)
    assert kl.run("wif", "apply", "ci", "--yes").returncode == 0
    rule_id = json.loads((tmp_path / ".keyguard" / "wif" / "ci.json").read_text())["rule_id"]
    with sandbox.state.lock:
        for rule in federation_data(sandbox.state)["rules"]:
            if rule["id"] == rule_id:
                rule["token_lifetime_seconds"] = lifetime
    return kl, rule_id


def _archived(sandbox: Sandbox, rule_id: str) -> bool:
    with admin_http(sandbox) as http:
        return (
            ok(http.get(f"/v1/organizations/federation_rules/{rule_id}"))["archived_at"] is not None
        )


@pytest.mark.parametrize("lifetime", [10**20, 1.5e300, -1, True, "forever", [3600]])
def test_a_rule_with_an_impossible_lifetime_is_archived_and_counted_at_the_documented_maximum(
    tmp_path: Path, sandbox: Sandbox, lifetime: Any
) -> None:
    kl, rule_id = _applied_with_lifetime(tmp_path, sandbox, lifetime)
    before = time.time()
    done = kl.run("revoke", "--rule", rule_id, "--yes")  # Keyless.run: no traceback
    assert done.returncode == 0, done.stderr
    assert _archived(sandbox, rule_id)
    assert f"archived rule {rule_id}" in done.stdout
    assert "token_lifetime_seconds" in done.stdout and "86400" in done.stdout
    until = done.stdout.split("stay valid until ")[1].split()[0]
    latest = datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert before + DAY - 2 <= latest <= time.time() + DAY + 2

    again = kl.run("revoke", "--rule", rule_id, "--yes", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["last_token_expires_at"] <= time.time() + DAY + 2


def test_a_rule_lifetime_under_a_minute_still_counts_the_minute_every_token_lives(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl, rule_id = _applied_with_lifetime(tmp_path, sandbox, 5)
    before = time.time()
    done = kl.run("revoke", "--rule", rule_id, "--yes", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_token_expires_at"] >= before + 60


def test_a_rule_answer_that_is_not_json_archives_nothing(tmp_path: Path, sandbox: Sandbox) -> None:
    kl, rule_id = _applied_with_lifetime(tmp_path, sandbox, float("inf"))  # sent as Infinity
    done = kl.run("revoke", "--rule", rule_id, "--yes")
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert "not JSON" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not _archived(sandbox, rule_id)


def test_revoking_a_service_account_counts_every_rule_at_most_the_documented_maximum(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    kl, rule_id = _applied_with_lifetime(tmp_path, sandbox, 10**20)
    sa_id = json.loads((tmp_path / ".keyguard" / "wif" / "ci.json").read_text())[
        "service_account_id"
    ]
    done = kl.run("revoke", "--service-account", sa_id, "--yes", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["last_token_expires_at"] <= time.time() + DAY + 2
    assert _archived(sandbox, rule_id)


# -- the exchange's expires_in ----------------------------------------------------------------


def _exchange(hostile: HostileApi, body: str) -> api.ExchangeResult:
    hostile.routes["/v1/oauth/token"] = body
    return api.exchange(
        hostile.url,
        Secret("header.payload.signature"),
        rule_id="fdrl_01x",
        organization_id="org-uuid",
        service_account_id="svac_01x",
        workspace_id=None,
    )


def _token_answer(expires_in: str) -> str:
    return (
        f'{{"access_token":"{_token().reveal()}","token_type":"Bearer","expires_in":{expires_in}}}'
    )


@pytest.mark.parametrize("expires_in", ["Infinity", "NaN", "1e999", "-5", "true", '"3600"'])
def test_an_exchange_answer_with_a_hostile_expires_in_is_the_api_error(
    hostile: HostileApi, expires_in: str
) -> None:
    with pytest.raises(ApiError) as caught:
        _exchange(hostile, _token_answer(expires_in))
    assert _token().reveal() not in str(caught.value)


def test_an_exchange_lifetime_past_the_documented_maximum_is_capped(hostile: HostileApi) -> None:
    result = _exchange(hostile, _token_answer("100000000000000000000"))
    assert result.expires_in == DAY
    assert result.expires_at is not None and result.expires_at <= time.time() + DAY + 1
    plain = _exchange(hostile, _token_answer("600"))
    assert plain.expires_in == 600 and plain.token is not None


# -- paging ------------------------------------------------------------------------------------


def _list_page(query: dict[str, list[str]], token: str) -> str:
    n = len(query.get("page", []))
    return json.dumps({"data": [{"id": f"fdrl_0{n}"}], "has_more": True, "next_page": token})


def test_list_all_refuses_a_page_token_that_repeats(hostile: HostileApi) -> None:
    hostile.routes["/v1/organizations/federation_rules"] = lambda q: _list_page(q, "same")
    with WifClient(_token(), hostile.url) as client, pytest.raises(ApiError, match="repeated"):
        client.list_all("federation_rules")


@pytest.mark.parametrize("token", [None, "", 7])
def test_list_all_refuses_more_pages_without_a_next_page(
    hostile: HostileApi, token: object
) -> None:
    """``has_more: true`` with no usable ``next_page``: the listing is incomplete, and a partial
    list of rules or accounts must not pass for the whole."""
    hostile.routes["/v1/organizations/federation_rules"] = lambda q: json.dumps(
        {"data": [{"id": "fdrl_01"}], "has_more": True, "next_page": token}
    )
    with WifClient(_token(), hostile.url) as client, pytest.raises(ApiError, match="more pages"):
        client.list_all("federation_rules")


def test_list_all_stops_at_a_page_cap(hostile: HostileApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "MAX_PAGES", 5)
    served = iter(range(10**6))

    def endless(query: dict[str, list[str]]) -> str:
        n = next(served)
        if n > 50:  # the old code would loop on: end it, so the test fails instead of hanging
            return json.dumps({"data": [], "has_more": False, "next_page": None})
        return _list_page(query, f"p{n}")

    hostile.routes["/v1/organizations/federation_rules"] = endless
    with WifClient(_token(), hostile.url) as client, pytest.raises(ApiError, match="pages"):
        client.list_all("federation_rules")
    assert len(hostile.requests) <= 5


def _usage_page(tokens: str, next_page: str | None, more: bool) -> str:
    end = datetime.now(UTC).replace(microsecond=0, second=0)
    bucket = {
        "starting_at": (end - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "ending_at": end.isoformat().replace("+00:00", "Z"),
        "results": [{"service_account_id": "svac_01x", "output_tokens": "TOKENS"}],
    }
    text = json.dumps({"data": [bucket], "has_more": more, "next_page": next_page})
    return text.replace('"TOKENS"', tokens)


def _sa_tokens(hostile: HostileApi) -> list[tuple[datetime, int]]:
    now = datetime.now(UTC)
    with WifClient(_token(), hostile.url) as client:
        return client.service_account_tokens("svac_01x", now - timedelta(hours=1), now)


def test_service_account_usage_refuses_a_page_token_that_repeats(hostile: HostileApi) -> None:
    calls = iter(range(10**6))

    def looping(query: dict[str, list[str]]) -> str:
        return _usage_page("1", "again", next(calls) < 50)

    hostile.routes["/v1/organizations/usage_report/messages"] = looping
    with pytest.raises(ApiError, match="repeated"):
        _sa_tokens(hostile)


@pytest.mark.parametrize("tokens", ["-1000000", "2.5", "true", '"9"', "Infinity"])
def test_service_account_usage_refuses_what_is_not_a_count(
    hostile: HostileApi, tokens: str
) -> None:
    hostile.routes["/v1/organizations/usage_report/messages"] = _usage_page(tokens, None, False)
    with pytest.raises(ApiError):
        _sa_tokens(hostile)


def test_service_account_usage_reads_honest_counts(hostile: HostileApi) -> None:
    hostile.routes["/v1/organizations/usage_report/messages"] = _usage_page("7", None, False)
    assert [tokens for _end, tokens in _sa_tokens(hostile)] == [7]


# -- the free call with a federated token ------------------------------------------------------


def test_list_models_on_a_dead_connection_is_unavailable_not_a_traceback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(UnavailableError) as caught:
        api.list_models(f"http://127.0.0.1:{port}", _token())
    assert caught.value.exit_code == ExitCode.UNAVAILABLE
    assert _token().reveal() not in str(caught.value)


def test_a_listed_rule_without_an_id_stops_the_service_account_revoke_before_any_archive(
    hostile: HostileApi,
) -> None:
    from keyguard.wif.incident import archive_service_account

    target = {"type": "service_account", "service_account_id": "svac_01x"}
    hostile.routes["/v1/organizations/service_accounts/svac_01x"] = json.dumps({"id": "svac_01x"})
    hostile.routes["/v1/organizations/federation_rules"] = json.dumps(
        {
            "data": [{"id": "fdrl_01a", "target": target}, {"target": target}],
            "has_more": False,
            "next_page": None,
        }
    )
    with WifClient(_token(), hostile.url) as client, pytest.raises(ApiError, match="nothing"):
        archive_service_account(client, "svac_01x")
    assert [path for method, path in hostile.requests if method == "POST"] == []
