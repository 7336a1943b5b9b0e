"""Rotation requests to a webhook (Slack-compatible JSON with a ``text`` field)."""

from __future__ import annotations

from typing import Any

from keyguard.errors import ConfigError, UnavailableError
from keyguard.urls import redact_url


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> None:
    """POST ``payload`` as JSON; ``UnavailableError`` when the hook does not take it.

    A webhook URL is a credential (Slack's path is its token): messages show only its host.
    """
    import httpx

    shown = redact_url(url)
    try:
        response = httpx.post(url, json=payload, timeout=timeout, follow_redirects=False)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise ConfigError(
            f"[notify] webhook {shown} is not an http(s) URL; fix it in keyguard.toml"
        ) from None
    except httpx.HTTPError as exc:
        detail = str(exc).replace(url, shown) or type(exc).__name__
        raise UnavailableError(f"the webhook {shown} could not be reached: {detail}") from None
    if response.status_code >= 300:
        raise UnavailableError(
            f"the webhook {shown} answered HTTP {response.status_code}; check [notify] webhook"
        )
