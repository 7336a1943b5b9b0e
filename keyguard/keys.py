"""Anthropic key shapes, the ``Secret`` value type, redaction and fingerprints (stdlib only)."""

from __future__ import annotations

import hashlib
import re
from typing import NoReturn

#: Characters a key body is made of.
KEY_ALPHABET = "A-Za-z0-9_-"
#: ``sk-ant-api03-`` + 93 body characters + ``AA``: 108 characters in all.
API_KEY_RE = re.compile(r"sk-ant-api03-[A-Za-z0-9_-]{93}AA")
ADMIN_KEY_RE = re.compile(r"sk-ant-admin01-[A-Za-z0-9_-]{93}AA")
_PREFIX_RE = re.compile(r"^(sk-ant-[a-z]+[0-9]*-)")


def fingerprint(value: str) -> str:
    """SHA-256 hex of a key: safe to store in baselines, journals and reports."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def redact(value: str) -> str:
    """Redact a key the way Anthropic's ``partial_key_hint`` does: ``sk-ant-api03-R2D...igAA``."""
    m = _PREFIX_RE.match(value)
    prefix = m.group(1) if m else ""
    body = value[len(prefix) :]
    if len(body) < 12:
        # Too short to show any of it safely.
        return f"{prefix}..." if prefix else "..."
    return f"{prefix}{body[:3]}...{body[-4:]}"


def is_api_key(value: str) -> bool:
    """True when ``value`` is exactly an ``sk-ant-api03-`` API key."""
    return API_KEY_RE.fullmatch(value) is not None


def is_admin_key(value: str) -> bool:
    """True when ``value`` is exactly an ``sk-ant-admin01-`` admin key."""
    return ADMIN_KEY_RE.fullmatch(value) is not None


class Secret:
    """A key in memory. ``str``/``repr`` redact; only ``reveal()`` gives the plaintext."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The plaintext key: for a store write or an HTTP header, never for output."""
        return self._value

    @property
    def redacted(self) -> str:
        return redact(self._value)

    @property
    def hint(self) -> str:
        """Same shape as Anthropic's ``partial_key_hint``."""
        return redact(self._value)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self._value)

    def __repr__(self) -> str:
        return f"Secret({self.redacted!r})"

    def __str__(self) -> str:
        return self.redacted

    def __format__(self, spec: str) -> str:
        return format(self.redacted, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


_PREFIXES = {"api": "sk-ant-api03-", "admin": "sk-ant-admin01-"}


def generate_key(kind: str = "api") -> Secret:
    """A random key of the real shape (for the sandbox and tests; Anthropic makes real ones)."""
    import secrets
    import string

    alphabet = string.ascii_letters + string.digits + "_-"
    body = "".join(secrets.choice(alphabet) for _ in range(93))
    return Secret(f"{_PREFIXES[kind]}{body}AA")
