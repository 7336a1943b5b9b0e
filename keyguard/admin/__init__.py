"""Anthropic Admin API: the client (httpx) and a local sandbox of the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keyguard.admin.client import AdminClient

__all__ = ["AdminClient"]


def __getattr__(name: str) -> Any:
    # Lazy so that ``keyguard.admin.protocol`` can be imported without loading httpx.
    if name == "AdminClient":
        from keyguard.admin.client import AdminClient

        return AdminClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
