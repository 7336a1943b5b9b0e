"""The rule table, boundaries and placeholders, as a table of inputs and expected findings."""

from __future__ import annotations

import secrets
import string

import pytest

from keyguard.keys import generate_key
from keyguard.scanner.detect import scan_bytes
from keyguard.scanner.rules import RULES
from tests.scanner.conftest import PREFIX

#: Every test here runs under both scan engines (stdlib, and hyperscan + isal).
pytestmark = pytest.mark.usefixtures("scan_engine")

ALPHABET = string.ascii_letters + string.digits + "_-"


def body(n: int = 93) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(n))


def ids(data: str | bytes) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    return [hit.rule.id for hit in scan_bytes(raw)]


def test_rule_table_ranks_admin_above_api_keys_and_both_critical() -> None:
    by_id = {r.id: r for r in RULES}
    admin, api = by_id["anthropic-admin-key"], by_id["anthropic-api-key"]
    assert admin.severity == api.severity == "critical"
    assert admin.rank < api.rank < min(r.rank for r in RULES if r.severity != "critical")
    assert [r.id for r in RULES][:2] == ["anthropic-admin-key", "anthropic-api-key"]
    for rule in RULES:
        assert rule.description and rule.fix


def test_api_and_admin_keys_are_found() -> None:
    api, admin = generate_key("api").reveal(), generate_key("admin").reveal()
    assert ids(api) == ["anthropic-api-key"]
    assert ids(admin) == ["anthropic-admin-key"]


@pytest.mark.parametrize(
    ("family", "rule"),
    [
        ("api04-", "anthropic-api-key-other-version"),
        ("api01-", "anthropic-api01-key"),
        ("oat01-", "anthropic-oauth-access-token"),
        ("ort01-", "anthropic-oauth-refresh-token"),
        ("sid01-", "anthropic-session-cookie"),
    ],
)
def test_lower_confidence_families(family: str, rule: str) -> None:
    hits = scan_bytes(f"token={PREFIX}{family}{body(86)}AA\n".encode())
    assert [h.rule.id for h in hits] == [rule]
    assert hits[0].rule.severity == "high"


# (text before the key, text after it): each must leave the key a finding.
BOUNDARIES = [
    ('"', '"'),
    ("'", "'"),
    ('\\"', '\\"'),  # JSON-escaped quotes, as in notebook source cells
    ("\\n", "\\n"),  # an escaped newline on either side
    ("?key=", "&page=2"),
    ("#", "#anchor"),
    ("", ","),
    ("", ";"),
    ("[", "]"),
    ("(", ")"),
    ("{", "}"),
    ("<", ">"),
    (" ", "\t"),
    ("\n", "\r\n"),
    ("", ""),  # start and end of file
    ("%22", "%22"),
    ("\\u0022", "\\u0022"),
    ("=", "\x00"),
    ("\xff", "\xfe"),  # bytes outside the key alphabet (invalid UTF-8 below)
]


@pytest.mark.parametrize(("before", "after"), BOUNDARIES)
def test_key_is_found_between_any_boundary(before: str, after: str) -> None:
    key = generate_key().reveal()
    data = before.encode("latin-1") + key.encode() + after.encode("latin-1")
    hits = scan_bytes(data)
    assert [h.key.decode() for h in hits] == [key]


@pytest.mark.parametrize(
    "make",
    [
        lambda k: "x" + k,  # a longer run of key characters before
        lambda k: k + "x",  # ... and after
        lambda k: k + "-",
        lambda k: "_" + k,
        lambda k: k[:-1],  # wrong length
        lambda k: k + "AA",  # too long
        lambda k: k[:-2] + "AB",  # wrong suffix
        lambda k: k[:50],
    ],
)
def test_pieces_wrong_lengths_and_suffixes_are_not_findings(make: object) -> None:
    key = generate_key().reveal()
    assert ids(make(key)) == []  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        PREFIX + "api03-...",
        PREFIX + "api03-your-key-here",
        PREFIX + "api03-xxxx",
        PREFIX + "api03-" + "x" * 93 + "AA",
        PREFIX + "api03-" + "X" * 93 + "AA",
        PREFIX + "admin01-" + "your-admin-key-" * 6 + "abcAA",
        PREFIX + "api03-" + ("abcdefgh" * 12)[:93] + "AA",
        PREFIX + "oat01-your_token_here",
        PREFIX + "api03-<YOUR KEY>",
        "ANTHROPIC_API_KEY=" + PREFIX + "api03-" + "REDACTED" * 11 + "xAA",
    ],
)
def test_placeholders_are_not_findings(text: str) -> None:
    assert ids(text) == []


def test_key_in_binary_and_invalid_utf8_is_found() -> None:
    key = generate_key("admin").reveal().encode()
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dtEXtComment\x00" + key + b"\xc3\x28\x00\xff" * 10
    assert [h.key for h in scan_bytes(data)] == [key]


def test_line_and_column_are_one_based() -> None:
    key = generate_key().reveal()
    hits = scan_bytes(f"one\ntwo\n    x = '{key}'\n".encode())
    assert (hits[0].line, hits[0].column) == (3, 10)
