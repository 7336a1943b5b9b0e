"""`scan --verify` calls a leaked organization-scoped key live, not unknown."""

from __future__ import annotations

from keyguard.admin.sandbox import Sandbox
from keyguard.liveness import LIVE, REVOKED, LivenessChecker


def test_an_org_scoped_key_is_live_and_an_archived_one_revoked(sandbox: Sandbox) -> None:
    key_id, org_key = sandbox.mint_key("ci", key_type="service_account", scope="organization")
    _, legacy = sandbox.mint_key("batch", key_type="workspace")
    checker = LivenessChecker(sandbox.url)
    try:
        assert checker(org_key) == LIVE and checker(legacy) == LIVE
        sandbox.client().update_key(key_id, status="archived")
        assert LivenessChecker(sandbox.url)(org_key) == REVOKED
    finally:
        checker.close()
