"""AWS specifics beyond the contract, seen through boto3 the way AWS-native consumers see them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from keyguard.keys import Secret, generate_key
from keyguard.stores import Stage, open_store
from keyguard.stores.aws import AwsSecretsManagerStore
from keyguard.stores.interface import VersionMeta
from keyguard.stores.lease import new_owner
from tests.stores.servers.aws import REGION, AwsHarness


def _labels(harness: AwsHarness, name: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = harness.client.describe_secret(SecretId=name)[
        "VersionIdsToStages"
    ]
    return {vid: sorted(labels) for vid, labels in stages.items() if labels}


def test_rotation_moves_aws_own_labels_and_uses_the_token_as_version_id(
    aws_server: AwsHarness,
) -> None:
    name = f"anthropic/{aws_server.unique()}"
    aws_server.client.create_secret(Name=name, SecretString=generate_key().reveal())
    [hand_made] = _labels(aws_server, name)
    store = open_store(f"aws-sm://{REGION}/{name}?endpoint_url={aws_server.endpoint}")
    key, tok = generate_key(), str(uuid.uuid4())
    meta = VersionMeta(key_id="apikey_01", hint=key.hint, token=tok, environment="prod")
    assert store.put_pending(key, meta) == tok  # ClientRequestToken = the rotation token
    assert _labels(aws_server, name) == {hand_made: ["AWSCURRENT"], tok: ["AWSPENDING"]}
    pending = aws_server.client.get_secret_value(SecretId=name, VersionStage="AWSPENDING")
    assert pending["VersionId"] == tok and Secret(pending["SecretString"]) == key
    store.promote(tok)
    # As AWS's own rotation leaves it: AWSPENDING gone, the old version AWSPREVIOUS.
    assert _labels(aws_server, name) == {hand_made: ["AWSPREVIOUS"], tok: ["AWSCURRENT"]}
    # What a consumer reads (by stage: moto's stage-less read lags a label move, AWS's doesn't).
    current = aws_server.client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert Secret(current["SecretString"]) == key
    tags = {
        t["Key"]: t["Value"]
        for t in aws_server.client.describe_secret(SecretId=name).get("Tags", [])
    }
    assert "kid=apikey_01" in tags[f"keyguard:{tok}"] and key.hint in tags[f"keyguard:{tok}"]
    assert all(key.reveal() not in v for v in tags.values())


def test_aws_endpoint_url_from_the_environment_is_honoured(
    aws_server: AwsHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"anthropic/{aws_server.unique()}"
    key = generate_key()
    aws_server.client.create_secret(Name=name, SecretString=key.reveal())
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_server.endpoint)
    store = open_store(f"aws-sm://{REGION}/{name}?max_attempts=1")
    assert isinstance(store, AwsSecretsManagerStore) and store.endpoint_url is None
    assert store.get() == key


def test_a_lease_on_an_empty_secret_is_never_served_as_a_key(aws_server: AwsHarness) -> None:
    """AWS labels the first version of a secret AWSCURRENT, even a lease record."""
    store = aws_server()
    with store.lease(new_owner(), 600):
        assert store.get() is None, "a lease record is not a key"
        key, tok = generate_key(), str(uuid.uuid4())
        stored_at = datetime.now(UTC).replace(microsecond=0)
        store.put_pending(key, VersionMeta(token=tok, stored_at=stored_at))
        store.promote(tok)
    assert store.get() == key
    assert store.get(Stage.PREVIOUS) is None, "the lease record is no previous key"
    assert [v.stages for v in store.describe()] == [frozenset({Stage.CURRENT})]
    with pytest.raises(Exception, match="no previous version"):
        store.rollback()
    assert store.get() == key
