from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from keyguard.errors import ConfigError
from keyguard.policy import BUILTIN_POLICIES, load_policy, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90s", 90), ("10m", 600), ("24h", 86400), ("7d", 604800), ("2w", 1209600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "ten", "5y", "-1d", "1 day"])
def test_bad_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("name", BUILTIN_POLICIES)
def test_builtin_policies_are_valid(name: str) -> None:
    policy = load_policy(name)
    assert policy.name == name
    assert policy.due_after < policy.max_age
    assert policy.price_for("claude-sonnet-4-5-20250929") is not None


def test_default_policy_numbers() -> None:
    p = load_policy("default")
    assert (p.due_after, p.max_age) == (timedelta(days=80), timedelta(days=90))
    assert (p.grace, p.archive_after) == (timedelta(hours=24), timedelta(days=7))


def test_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('max_age = "90d"\ndue_after = "100d"\n')
    with pytest.raises(ConfigError, match=str(bad)):
        load_policy(bad)
    bad.write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="unknown policy setting 'colour'"):
        load_policy(bad)
