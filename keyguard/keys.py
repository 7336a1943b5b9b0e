"""Anthropic key shapes, the ``Secret`` value type, redaction and fingerprints (stdlib only)."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import NoReturn

#: Characters a key body is made of.
KEY_ALPHABET = "A-Za-z0-9_-"
#: ``sk-ant-api03-`` + 93 body characters + ``AA``: 108 characters in all.
API_KEY_RE = re.compile(r"sk-ant-api03-[A-Za-z0-9_-]{93}AA")
ADMIN_KEY_RE = re.compile(r"sk-ant-admin01-[A-Za-z0-9_-]{93}AA")
#: The family prefix of a key or a hint: ``sk-ant-api03-``, ``sk-ant-admin01-``, ...
KEY_PREFIX_RE = re.compile(r"^(sk-ant-[a-z]+[0-9]*-)")
#: An API key inside other text (``KEY  # comment``, ``NAME=KEY``, a JSON line): not glued to
#: more key characters on either side.
_EMBEDDED_API_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_-])sk-ant-api03-[A-Za-z0-9_-]{93}AA(?![A-Za-z0-9_-])"
)
_EMBEDDED_ADMIN_KEY_RE = re.compile(
    r"(?<![A-Za-z0-9_-])sk-ant-admin01-[A-Za-z0-9_-]{93}AA(?![A-Za-z0-9_-])"
)
#: The mark a leaked key's name gets when keyguard deactivates it: ``leaked-2026-12-03 <name>``.
LEAK_MARK_RE = re.compile(r"^leaked-\d{4}-\d{2}-\d{2}(?: |$)")
#: The Admin API's limit on a key's name.
KEY_NAME_LIMIT = 500


def fingerprint(value: str) -> str:
    """SHA-256 hex of a key: safe to store in baselines, journals and reports."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def redact(value: str) -> str:
    """Redact a key the way Anthropic's ``partial_key_hint`` does: ``sk-ant-api03-R2D...igAA``."""
    m = KEY_PREFIX_RE.match(value)
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


#: Anything shaped like a key of any ``sk-ant-`` family (api03, admin01, oat01, ort01, api01,
#: sid01 ...), or a long ``sk-ant-`` run of key characters without a family. A hint's short head
#: (``sk-ant-api03-R2D...``) is not matched, so redacting twice changes nothing.
KEYISH_RE = re.compile(r"sk-ant-[A-Za-z]+[0-9]*-[A-Za-z0-9_-]{4,}|sk-ant-[A-Za-z0-9_-]{14,}")


def scrub_text(text: str, *secrets: str) -> str:
    """``text`` with each of ``secrets`` and every key-shaped string redacted.

    The one redaction for text that may hold a key: errors from stores and APIs, a command's
    output, messages, reports.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, redact(secret))
    return KEYISH_RE.sub(lambda m: redact(m.group(0)), text)


def find_admin_keys(text: str) -> list[Secret]:
    """Each distinct admin key in ``text`` (they are revoked in the Console, never by keyguard)."""
    seen: dict[str, Secret] = {}
    for m in _EMBEDDED_ADMIN_KEY_RE.finditer(text):
        seen.setdefault(m.group(0), Secret(m.group(0)))
    return list(seen.values())


def find_api_keys(text: str) -> list[Secret]:
    """Each distinct API key in ``text``, in order of first appearance (found by its shape)."""
    seen: dict[str, Secret] = {}
    for m in _EMBEDDED_API_KEY_RE.finditer(text):
        seen.setdefault(m.group(0), Secret(m.group(0)))
    return list(seen.values())


def leak_mark(name: str, day: date) -> str:
    """``name`` with the leak mark in front (``leaked-2026-12-03 <name>``), within 500 chars.

    A name that already carries a mark keeps it (the first leak is the one to remember).
    """
    if is_leak_marked(name):
        return name
    return f"leaked-{day:%Y-%m-%d} {name}"[:KEY_NAME_LIMIT].rstrip()


def is_leak_marked(name: str | None) -> bool:
    """True when a key's name carries keyguard's leak mark: it must never serve again."""
    return bool(name) and LEAK_MARK_RE.match(name or "") is not None


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
