"""JSON nested past the parser's depth, wherever keyguard reads JSON it did not write this
run (an API's error answer, an identity token, a scan report, a WIF record): the error that
input gets for any other malformation, never a RecursionError traceback."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from keyguard.admin.errors import ApiError, error_body, error_code, error_from_response
from keyguard.errors import ConfigError, UsageError
from keyguard.incident.leak import load_scan
from keyguard.wif.record import load_record, record_path
from keyguard.wif.verify import jwt_claims

DEEP = "[" * 100_000


def test_an_error_answer_nested_too_deep_is_still_an_api_error() -> None:
    response = httpx.Response(500, content=DEEP.encode())
    assert error_body(response)[:2] == (None, None)
    assert error_code(response) is None
    assert isinstance(error_from_response(response, "GET /v1/models"), ApiError)


def test_an_identity_token_nested_too_deep_is_a_usage_error() -> None:
    payload = base64.urlsafe_b64encode(DEEP.encode()).decode().rstrip("=")
    with pytest.raises(UsageError, match="not base64url JSON"):
        jwt_claims(f"e30.{payload}.sig")


def test_a_scan_report_nested_too_deep_is_a_usage_error(tmp_path: Path) -> None:
    report = tmp_path / "scan.json"
    report.write_text(DEEP)
    with pytest.raises(UsageError, match="is not JSON"):
        load_scan(report)


def test_a_wif_record_nested_too_deep_is_a_config_error(tmp_path: Path) -> None:
    path = record_path(tmp_path, "ci")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEEP)
    with pytest.raises(ConfigError, match="move it away"):
        load_record(tmp_path, "ci")
