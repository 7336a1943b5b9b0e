"""The rule table and the classifier that decides whether a run of key characters is a key."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Bytes a key body is made of (``[A-Za-z0-9_-]``), as a 256-entry lookup table.
KEY_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
#: Strict keys: prefix + 93 body characters + ``AA``.
STRICT_BODY_LEN = 95
#: Lower-confidence families have no published length: accept a plausible range.
LOOSE_BODY_MIN = 32
LOOSE_BODY_MAX = 512

_FAMILY_RE = re.compile(rb"sk-ant-([a-z]+)(\d\d)-")
_PLACEHOLDER_WORDS = (
    b"your-",
    b"your_",
    b"example",
    b"placeholder",
    b"redacted",
    b"replace",
    b"xxxxx",
    b"XXXXX",
    b"00000",
)


@dataclass(frozen=True)
class Rule:
    """One kind of credential: what it is, how bad a leak is, how to fix it."""

    id: str
    severity: str  # critical | high
    rank: int  # lower ranks sort first (admin above API keys)
    name: str
    description: str
    fix: str
    confidence: str = "high"

    @property
    def sarif_level(self) -> str:
        return "error" if self.severity == "critical" else "warning"

    @property
    def security_severity(self) -> str:
        return "9.8" if self.severity == "critical" else "7.5"


_REVOKE_FIX = (
    "Revoke the key now (`keyguard revoke --leaked -`, key on stdin), rotate its environment, "
    "and remove it from the file and from git history."
)

ADMIN_KEY = Rule(
    "anthropic-admin-key",
    "critical",
    0,
    "Anthropic Admin API key",
    "An Anthropic Admin API key (sk-ant-admin01-): it controls every key of the organization.",
    "Deactivate it in the Console (Settings > Admin keys) at once, create a new one, and "
    "remove it from the file and from git history.",
)
API_KEY = Rule(
    "anthropic-api-key",
    "critical",
    1,
    "Anthropic API key",
    "An Anthropic API key (sk-ant-api03-): anyone holding it can spend the workspace's credit.",
    _REVOKE_FIX,
)
API_KEY_FUTURE = Rule(
    "anthropic-api-key-other-version",
    "high",
    2,
    "Anthropic API key (other version)",
    "A credential shaped like an Anthropic API key of another version (sk-ant-api0N-).",
    _REVOKE_FIX,
    confidence="medium",
)
SCOPED_KEY = Rule(
    "anthropic-api01-key",
    "high",
    3,
    "Anthropic scoped key (api01)",
    "An sk-ant-api01- credential (Claude Enterprise scoped admin keys use this prefix).",
    _REVOKE_FIX,
    confidence="medium",
)
OAUTH_ACCESS = Rule(
    "anthropic-oauth-access-token",
    "high",
    4,
    "Anthropic OAuth access token",
    "An Anthropic OAuth access token (sk-ant-oat01-).",
    "Sign out of the session that issued it to revoke it, and remove it from the file.",
    confidence="medium",
)
OAUTH_REFRESH = Rule(
    "anthropic-oauth-refresh-token",
    "high",
    5,
    "Anthropic OAuth refresh token",
    "An Anthropic OAuth refresh token (sk-ant-ort01-): it mints new access tokens.",
    "Sign out of the session that issued it to revoke it, and remove it from the file.",
    confidence="medium",
)
SESSION = Rule(
    "anthropic-session-cookie",
    "high",
    6,
    "claude.ai session cookie",
    "A claude.ai session cookie (sk-ant-sid01-): it logs anyone in as its owner.",
    "Log out of claude.ai everywhere to invalidate it, and remove it from the file.",
    confidence="medium",
)

#: The rule table, most severe first.
RULES: tuple[Rule, ...] = (
    ADMIN_KEY,
    API_KEY,
    API_KEY_FUTURE,
    SCOPED_KEY,
    OAUTH_ACCESS,
    OAUTH_REFRESH,
    SESSION,
)
RULES_BY_ID = {rule.id: rule for rule in RULES}

_LOOSE_FAMILIES = {
    (b"api", b"01"): SCOPED_KEY,
    (b"oat", b"01"): OAUTH_ACCESS,
    (b"ort", b"01"): OAUTH_REFRESH,
    (b"sid", b"01"): SESSION,
}


def is_placeholder(body: bytes) -> bool:
    """True for documentation stand-ins: low variety or words like ``your`` and ``xxxxx``."""
    if len(set(body)) < 12:
        return True
    return any(word in body for word in _PLACEHOLDER_WORDS)


def classify(run: bytes) -> Rule | None:
    """The rule a complete run of key characters (starting ``sk-ant-``) matches, if any."""
    m = _FAMILY_RE.match(run)
    if m is None:
        return None
    kind, version = m.group(1), m.group(2)
    body = run[m.end() :]
    if (kind, version) in ((b"api", b"03"), (b"admin", b"01")):
        if len(body) != STRICT_BODY_LEN or not body.endswith(b"AA"):
            return None
        if is_placeholder(body[:-2]):
            return None
        return API_KEY if kind == b"api" else ADMIN_KEY
    rule = _LOOSE_FAMILIES.get((kind, version))
    if rule is None and kind == b"api" and version[:1] == b"0":
        rule = API_KEY_FUTURE
    if rule is None:
        return None
    if not LOOSE_BODY_MIN <= len(body) <= LOOSE_BODY_MAX or is_placeholder(body):
        return None
    return rule
