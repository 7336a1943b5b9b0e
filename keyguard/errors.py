"""The one error tree. Each class carries the exit code that ``keyguard.cli`` turns it into.

KeyguardError
├── UsageError            2  bad arguments, bad input
│   └── ConfigError       2  keyguard.toml or a policy file is wrong
├── NotFoundError         1  a key, environment or version that does not exist
├── AuthError             3  admin key missing, wrong, or lacking rights; store permission denied
├── UnavailableError      4  Anthropic API or a secret store unreachable after retries
├── ConflictError         2  a concurrent writer or a failed compare-and-set
└── PendingError          5  rotation not finished (waiting for a key, grace, drain, a lease)
    └── LeaseHeldError    5  another run holds the store lease

Messages say what happened, to what, and what to do next. They never hold a key.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FOUND = 1
    USAGE = 2
    AUTH = 3
    UNAVAILABLE = 4
    PENDING = 5
    INTERRUPTED = 130


class KeyguardError(Exception):
    """Base of every error keyguard raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(KeyguardError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    pass


class NotFoundError(KeyguardError):
    exit_code = ExitCode.FOUND


class AuthError(KeyguardError):
    exit_code = ExitCode.AUTH


class UnavailableError(KeyguardError):
    exit_code = ExitCode.UNAVAILABLE


class ConflictError(KeyguardError):
    exit_code = ExitCode.USAGE


class PendingError(KeyguardError):
    exit_code = ExitCode.PENDING


class LeaseHeldError(PendingError):
    pass
