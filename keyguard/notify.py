"""Rotation requests to a webhook (Slack-compatible JSON with a ``text`` field)."""

from __future__ import annotations

from typing import Any

from keyguard.errors import UnavailableError


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> None:
    """POST ``payload`` as JSON; ``UnavailableError`` when the hook does not take it."""
    import httpx

    try:
        response = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"the webhook {url} could not be reached: {exc}") from None
    if response.status_code >= 300:
        raise UnavailableError(
            f"the webhook {url} answered HTTP {response.status_code}; check [notify] webhook"
        )
