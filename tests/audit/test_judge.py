"""The verdict rules on their own: one table row per rule, at its boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keyguard.audit.judge import (
    key_reasons,
    previous_reasons,
    shared_reasons,
    store_reasons,
    verdict_of,
)
from keyguard.audit.model import PolicyLimits, StageView, StoreView, Verdict
from keyguard.models import ApiKey

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = PolicyLimits("default", timedelta(days=80), timedelta(days=90), timedelta(days=14))


def key(age_days: float, status: str = "active", expires_in: float | None = None) -> ApiKey:
    return ApiKey(
        id="apikey_01",
        name="prod-1",
        status=status,
        created_at=NOW - timedelta(days=age_days),
        expires_at=None if expires_in is None else NOW + timedelta(days=expires_in),
        workspace_id="wrkspc_prod",
    )


@pytest.mark.parametrize(
    ("k", "codes", "verdict"),
    [
        (key(10), [], Verdict.OK),
        (key(79.9), [], Verdict.OK),
        (key(80), ["due"], Verdict.DUE),
        (key(89.9), ["due"], Verdict.DUE),
        (key(90), ["max_age"], Verdict.VIOLATION),
        (key(10, "inactive"), ["inactive_served"], Verdict.VIOLATION),
        (key(10, "archived"), ["inactive_served"], Verdict.VIOLATION),
        (key(10, "expired"), ["expired"], Verdict.VIOLATION),
        (key(10, expires_in=-1), ["expired"], Verdict.VIOLATION),
        (key(10, expires_in=13.9), ["expiring"], Verdict.VIOLATION),
        (key(10, expires_in=14.1), [], Verdict.OK),
        (key(85, expires_in=3), ["expiring", "due"], Verdict.VIOLATION),
    ],
)
def test_key_rules(k: ApiKey, codes: list[str], verdict: Verdict) -> None:
    reasons = key_reasons(k, k.id, LIMITS, NOW)
    assert [r.code for r in reasons] == codes
    assert verdict_of(reasons) is verdict


def test_workspace_and_unknown_key() -> None:
    reasons = key_reasons(key(1), "apikey_01", LIMITS, NOW, workspace="wrkspc_other")
    assert [r.code for r in reasons] == ["workspace_mismatch"]
    assert [r.code for r in key_reasons(None, "apikey_gone", LIMITS, NOW)] == ["unknown_key"]


def test_shared_follows_the_policy() -> None:
    assert [r.code for r in shared_reasons("apikey_01", ["dev"], LIMITS)] == ["shared"]
    relaxed = PolicyLimits("loose", LIMITS.due_after, LIMITS.max_age, LIMITS.expiry_warning, False)
    assert shared_reasons("apikey_01", ["dev"], relaxed) == []


def stage(fp: str, mismatch: bool = False) -> StageView:
    return StageView(
        key_id=f"apikey_{fp}", hint=f"hint-{fp}", fingerprint=fp, meta_mismatch=mismatch
    )


def test_store_rules() -> None:
    same = [StoreView("file:/a", current=stage("x")), StoreView("file:/b", current=stage("x"))]
    assert store_reasons(same) == []
    differ = [StoreView("file:/a", current=stage("x")), StoreView("file:/b", current=stage("y"))]
    assert [r.code for r in store_reasons(differ)] == ["stores_disagree"]
    broken = [StoreView("file:/a", error="PermissionError: denied"), StoreView("file:/b")]
    assert [r.code for r in store_reasons(broken)] == ["store_unreadable", "no_current_key"]
    junk = [StoreView("file:/a", current=StageView(hint="...", fingerprint="j", well_formed=False))]
    assert [r.code for r in store_reasons(junk)] == ["not_a_key"]
    edited = [StoreView("file:/a", current=stage("x", mismatch=True))]
    assert [r.code for r in store_reasons(edited)] == ["metadata_mismatch"]


def test_a_mismatch_on_any_stage_is_a_violation() -> None:
    for which in ("pending", "previous"):
        view = StoreView("file:/a", current=stage("x"), **{which: stage("y", mismatch=True)})
        (reason,) = store_reasons([view])
        assert reason.code == "metadata_mismatch" and f"its {which} version" in reason.message


@pytest.mark.parametrize(
    ("rotated", "status", "flagged"),
    [
        (NOW - timedelta(hours=24, minutes=5), "active", False),  # grace + usage_lag: draining
        (NOW - timedelta(hours=24, minutes=6), "active", True),
        (None, "active", True),  # when it rotated is unknown: nothing says it is draining
        (NOW + timedelta(hours=1), "active", True),  # a rotation "in the future" proves nothing
        (NOW - timedelta(days=30), "inactive", False),
    ],
)
def test_a_previous_key_is_flagged_once_its_grace_is_over(
    rotated: datetime | None, status: str, flagged: bool
) -> None:
    got = previous_reasons("prod", [("file:/a", key(10, status))], rotated, LIMITS, NOW)
    assert [r.code for r in got] == (["previous_active"] if flagged else [])
    assert all(r.verdict is Verdict.WARNING and "keyguard rotate prod" in r.message for r in got)
