"""Where a key may be sent, and URLs in messages.

A key (the admin key, a key ``scan --verify`` found, a key being rotated or revoked) goes only
to ``https://api.anthropic.com``, or to a base URL the person running keyguard chose:
``keyguard --base-url URL`` or ``ANTHROPIC_BASE_URL``. A ``keyguard.toml`` is not that person: a
cloned repository carries its own, so its ``[anthropic] base_url`` is accepted only when it
equals the chosen one (or the default). URLs are parsed, never prefix-matched
(``http://localhost@evil`` starts with ``http://localhost``): no userinfo, the host compared
exactly, plain ``http`` only to a loopback host (the sandbox). Stdlib only: the pre-commit hook
loads the config.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from keyguard.errors import ConfigError

DEFAULT_BASE_URL = "https://api.anthropic.com"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
_DEFAULT_PORTS = {"https": 443, "http": 80}


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address, nothing that merely starts like one."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` plus ``/…`` when there was more: paths and userinfo hold tokens."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.scheme or not host:
        return "<unparsable URL>"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    rest = parts.path.strip("/") or parts.query or parts.fragment or parts.username
    return shown + ("/…" if rest else "")


def parse_base_url(url: str, source: str) -> str:
    """``url`` in one normal form, or ConfigError naming ``source`` and the rule it breaks."""
    shown = redact_url(url)
    fix = f"{source} ({shown})"
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F or c == "\\" for c in url.strip()):
        raise ConfigError(f"{fix} holds spaces, control or non-ASCII characters or a backslash")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(f"{fix} is not a URL (bad port or brackets)") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ConfigError(f"{fix} must be https://HOST[:PORT][/PATH]")
    if "@" in parts.netloc:
        raise ConfigError(f"{fix} holds a user name or password (before '@'); remove it")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ConfigError(f"{fix} must not have a query or fragment")
    if scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"{fix} is plain http to a host that is not loopback: keys go over https only "
            "(plain http is for the local sandbox on 127.0.0.1 / localhost)"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def checked_base_url(url: str, parsed_host: str, parsed_userinfo: str) -> str:
    """``url`` in normal form, refused unless a second parser (the HTTP client's) agrees on it.

    Every client that sends a key calls this with what its own URL parser made of ``url``: a
    URL two parsers read differently is an attack on one of them.
    """
    normal = parse_base_url(url, "the base URL")
    host = (urlsplit(normal).hostname or "").lower()
    if parsed_userinfo or parsed_host.lower().strip("[]") != host.strip("[]"):
        raise ConfigError(
            f"the base URL ({redact_url(url)}): the HTTP client reads another host from it; "
            "write a plain https://HOST[:PORT][/PATH]"
        )
    return normal


def chosen_base_url(option: str | None = None) -> tuple[str, str] | None:
    """(URL, where from) of the base URL the person running keyguard chose, if they did."""
    if option:
        return option, "--base-url"
    env = os.environ.get(BASE_URL_ENV, "").strip()
    return (env, BASE_URL_ENV) if env else None


def resolve_base_url(configured: str | None, setting: str, chosen: tuple[str, str] | None) -> str:
    """The one base URL keys may go to: the chosen one, else the default; config must agree."""
    target = parse_base_url(*chosen) if chosen else DEFAULT_BASE_URL
    if configured is None:
        return target
    shown = parse_base_url(configured, setting)
    if shown == target:
        return target
    if chosen:
        raise ConfigError(
            f"{setting} ({shown}) differs from the base URL chosen with {chosen[1]} "
            f"({redact_url(chosen[0])}); make them equal or remove the setting"
        )
    raise ConfigError(
        f"{setting} ({shown}) is set only in the config file, and keyguard sends keys "
        f"only to {DEFAULT_BASE_URL} or to a base URL you choose yourself: to use it, export "
        f"{BASE_URL_ENV}={shown} or run `keyguard --base-url {shown} ...`; otherwise remove "
        "the setting"
    )


#: Store endpoints the person running keyguard chose (space- or comma-separated URLs).
STORE_ENDPOINTS_ENV = "KEYGUARD_STORE_ENDPOINTS"


def _origin(normal: str) -> str:
    parts = urlsplit(normal)
    return f"{parts.scheme}://{parts.netloc}"


def chosen_store_endpoints() -> set[str]:
    """The origins (``scheme://host[:port]``) listed in ``KEYGUARD_STORE_ENDPOINTS``."""
    raw = os.environ.get(STORE_ENDPOINTS_ENV, "")
    return {
        _origin(parse_base_url(entry, f"an entry of {STORE_ENDPOINTS_ENV}"))
        for entry in raw.replace(",", " ").split()
    }


def check_store_endpoint(url: str, setting: str) -> str:
    """``url`` in normal form if its origin is listed in ``KEYGUARD_STORE_ENDPOINTS``.

    A store URI comes from a ``keyguard.toml`` that a cloned repository may carry: an endpoint
    in it would send the keys and the cloud credentials to any host. It is used only when the
    person running keyguard chose that endpoint too (same scheme, host and port).
    """
    normal = parse_base_url(url, setting)
    origin = _origin(normal)
    if origin in chosen_store_endpoints():
        return normal
    raise ConfigError(
        f"{setting} ({redact_url(normal)}) sends keys and cloud credentials to a host that "
        f"only the store URI names (a keyguard.toml or argument); to use it, export "
        f"{STORE_ENDPOINTS_ENV}={origin} (several: space-separated); otherwise remove the option"
    )
