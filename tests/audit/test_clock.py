"""Ages come from the injected clock; every timestamp a report prints is RFC 3339 UTC."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from keyguard.audit import Verdict
from keyguard.audit.render import render_json, render_markdown
from tests.audit.conftest import Org

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_ages_and_verdicts_follow_the_injected_clock(org: Org) -> None:
    org.env("prod", org.key("prod-1", age_days=60, expires_in_days=35))
    (today,) = org.audit().environments
    assert (today.age_days, today.verdict) == (60, Verdict.OK)
    later = org.now + timedelta(days=25)
    (env,) = org.audit(clock=lambda: later).environments
    assert env.age_days == 85
    assert [r.code for r in env.reasons] == ["expiring", "due"]
    assert "expires in 10.0d" in env.reasons[0].message


def test_generated_at_is_rfc3339_utc_from_the_cli(org: Org) -> None:
    org.env("prod", org.key("prod-1", age_days=3, expires_in_days=30))
    before = datetime.now(UTC)
    code, out, err = org.cli("--format", "json")
    after = datetime.now(UTC)
    assert code == 0, err
    doc = json.loads(out)
    assert RFC3339_UTC.match(doc["generated_at"]), doc["generated_at"]
    assert before <= datetime.fromisoformat(doc["generated_at"]) <= after
    (env,) = doc["environments"]
    for field in ("created_at", "expires_at", "last_rotation"):
        assert RFC3339_UTC.match(env[field]), (field, env[field])
    # The very instants Anthropic reported, not re-derived ones.
    assert datetime.fromisoformat(env["created_at"]) == org.now - timedelta(days=3)
    assert datetime.fromisoformat(env["expires_at"]) == org.now + timedelta(days=30)


def test_a_clock_in_another_zone_is_reported_in_utc(org: Org) -> None:
    org.env("prod", org.key("prod-1", age_days=10))
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 25, 21, 30, tzinfo=paris)
    report = org.audit(clock=lambda: local)
    doc = json.loads(render_json(report))
    assert RFC3339_UTC.match(doc["generated_at"]), doc["generated_at"]
    assert doc["generated_at"].startswith("2026-11-25T19:30:00")
    assert "# keyguard audit, 2026-11-25 19:30 UTC" in render_markdown(report)


def test_iso_turns_any_zone_into_utc() -> None:
    from keyguard.audit.render import iso

    paris = timezone(timedelta(hours=2))
    assert iso(datetime(2026, 1, 2, 1, 0, 0, 5, tzinfo=paris)) == "2026-01-01T23:00:00.000005Z"
    assert iso(datetime(2026, 1, 2, 1, 0)) == "2026-01-02T01:00:00Z"
    assert iso(None) is None
