"""Fake keys for the corpus, built at run time from a seeded RNG (no key literal in the repo)."""

from __future__ import annotations

import hashlib
import random
import string

ALPHABET = string.ascii_letters + string.digits + "_-"
# Split so that no key prefix appears whole in the repository's source.
API_PREFIX = "sk-ant-" + "api03-"
ADMIN_PREFIX = "sk-ant-" + "admin01-"

#: The regex handed to grep -P and rg -P: the scanner's two critical rules with its boundaries.
PCRE = r"(?<![A-Za-z0-9_-])sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA(?![A-Za-z0-9_-])"


def body(rng: random.Random, n: int = 93) -> str:
    """``n`` random key characters."""
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def make_key(rng: random.Random, kind: str = "api") -> str:
    """A fake key of the real shape: prefix + 93 key characters + ``AA``."""
    prefix = ADMIN_PREFIX if kind == "admin" else API_PREFIX
    return f"{prefix}{body(rng)}AA"


def sha256(value: str) -> str:
    """keyguard's fingerprint of a key."""
    return hashlib.sha256(value.encode()).hexdigest()


def sha1(value: str) -> str:
    """detect-secrets' ``hashed_secret`` of a key."""
    return hashlib.sha1(value.encode()).hexdigest()


def decoys(rng: random.Random) -> list[str]:
    """Strings that look like keys but are not findings by the issue's rules."""
    return [
        API_PREFIX + "...",
        API_PREFIX + "your-key-here",
        API_PREFIX + "x" * 93 + "AA",  # documentation placeholder of the right length
        API_PREFIX + body(rng, 92) + "AA",  # one character short
        API_PREFIX + body(rng) + "AB",  # wrong suffix
        API_PREFIX + body(rng) + "AAxyz",  # a piece of a longer run of key characters
    ]
