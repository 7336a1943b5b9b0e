"""Numbers in Admin API answers are hostile input: ``NaN``, ``Infinity``, huge, negative or
boolean counts are a malformed answer (the API error, exit 2), never a traceback and never a
number a decision (audit, drain check, incident exposure) rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keyguard.admin.errors import ApiError
from keyguard.admin.parse import parse_cost_page, parse_usage_page
from keyguard.errors import ExitCode
from keyguard.keys import Secret
from tests.admin.hostile import HostileApi, hostile_api

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hostile() -> Iterator[HostileApi]:
    with hostile_api() as api:
        yield api


KEY = {
    "type": "api_key",
    "id": "apikey_01hostile",
    "name": "batch",
    "status": "active",
    "created_at": "2026-01-01T00:00:00Z",
    "expires_at": None,
    "partial_key_hint": None,
    "principal": None,
    "scope": {"type": "workspace", "workspace_id": "wrkspc_1"},
}


def _usage(tokens: str) -> str:
    """A usage page whose one result has ``output_tokens`` written as raw JSON ``tokens``."""
    bucket = '"starting_at":"2026-12-03T00:00:00Z","ending_at":"2026-12-03T01:00:00Z"'
    result = f'{{"api_key_id":"apikey_01hostile","output_tokens":{tokens}}}'
    return f'{{"data":[{{{bucket},"results":[{result}]}}],"has_more":false,"next_page":null}}'


def _audit(cwd: Path, api: HostileApi, admin_key: Secret) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(
        PYTHONPATH=str(ROOT), ANTHROPIC_ADMIN_KEY=admin_key.reveal(), ANTHROPIC_BASE_URL=api.url
    )
    return subprocess.run(
        [sys.executable, "-m", "keyguard", "audit"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    "tokens", ["Infinity", "-Infinity", "NaN", "1e999", "1" + "0" * 30, "-5", "true", '"5"', "2.5"]
)
def test_a_hostile_token_count_fails_the_audit_with_one_line_not_a_traceback(
    tmp_path: Path, hostile: HostileApi, admin_key: Secret, tokens: str
) -> None:
    hostile.routes["/v1/organizations/api_keys"] = json.dumps(
        {"data": [KEY], "has_more": False, "last_id": KEY["id"]}
    )
    hostile.routes["/v1/organizations/usage_report/messages"] = _usage(tokens)
    done = _audit(tmp_path, hostile, admin_key)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == ExitCode.USAGE, done.stderr
    error = [line for line in done.stderr.splitlines() if line.startswith("keyguard: error:")]
    assert len(error) == 1 and "Anthropic API" in error[0], done.stderr
    assert done.stdout == ""  # no table with a made-up number in it


def test_an_honest_usage_report_still_audits(
    tmp_path: Path, hostile: HostileApi, admin_key: Secret
) -> None:
    hostile.routes["/v1/organizations/api_keys"] = json.dumps(
        {"data": [KEY], "has_more": False, "last_id": KEY["id"]}
    )
    hostile.routes["/v1/organizations/usage_report/messages"] = _usage("7")
    done = _audit(tmp_path, hostile, admin_key)
    assert "Traceback" not in done.stderr
    assert "apikey_01hostile" in done.stdout


def _page(**result: Any) -> dict[str, Any]:
    bucket = {
        "starting_at": "2026-12-03T00:00:00Z",
        "ending_at": "2026-12-03T01:00:00Z",
        "results": [{"api_key_id": "apikey_1", **result}],
    }
    return {"data": [bucket], "has_more": False}


@pytest.mark.parametrize(
    "field",
    ["uncached_input_tokens", "cache_read_input_tokens", "output_tokens", "cache_creation"],
)
@pytest.mark.parametrize(
    "value", [float("inf"), float("-inf"), float("nan"), 10**30, -1, True, "12", [3], 2.5]
)
def test_every_token_count_refuses_what_is_not_a_count(field: str, value: Any) -> None:
    result = (
        {"cache_creation": {"ephemeral_5m_input_tokens": value}}
        if field == "cache_creation"
        else {field: value}
    )
    with pytest.raises(ApiError, match="usage report"):
        parse_usage_page(_page(**result))


def test_token_counts_read_what_the_api_sends() -> None:
    row = parse_usage_page(
        _page(
            uncached_input_tokens=3,
            cache_read_input_tokens=None,  # null: none
            output_tokens=4.0,  # a whole number written as a float is still that number
            cache_creation={"ephemeral_1h_input_tokens": 5, "ephemeral_5m_input_tokens": 6},
            server_tool_use={"web_search_requests": "unknown field: ignored"},
        )
    )[0]
    assert (row.uncached_input_tokens, row.cache_read_input_tokens, row.output_tokens) == (3, 0, 4)
    assert (row.cache_creation_input_tokens, row.cache_creation_1h_input_tokens) == (11, 5)


@pytest.mark.parametrize("amount", ["Infinity", "-Infinity", "1e999", "NaN"])
def test_a_cost_amount_that_is_not_finite_is_a_malformed_answer(amount: str) -> None:
    page = {
        "data": [
            {"starting_at": "2026-12-03T00:00:00Z", "results": [{"amount": amount}]},
        ],
        "has_more": False,
    }
    with pytest.raises(ApiError, match="cost report"):
        parse_cost_page(page)


def test_an_answer_nested_past_the_parsers_depth_is_one_line_not_a_traceback(
    tmp_path: Path, hostile: HostileApi, admin_key: Secret
) -> None:
    hostile.routes["/v1/organizations/api_keys"] = "[" * 100_000
    done = _audit(tmp_path, hostile, admin_key)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "not JSON" in done.stderr
