"""Store URIs (`scheme:PATH` or `scheme://AUTHORITY/PATH`, `?options`, `#FIELD`) and JSON fields.

Shared by every backend so that option errors and ``#FIELD`` behaviour read the same
everywhere. The lease record helpers live in :mod:`keyguard.stores.lease` (import them there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from keyguard.errors import ConfigError
from keyguard.urls import check_store_endpoint

__all__ = [
    "STORE_CA_BUNDLES_ENV",
    "StoreURI",
    "chosen_ca_bundles",
    "extract_field",
    "merge_field",
    "parse_store_uri",
]

#: CA bundles the person running keyguard chose for stores (paths separated by ``os.pathsep``).
STORE_CA_BUNDLES_ENV = "KEYGUARD_STORE_CA_BUNDLES"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI. ``authority`` is set only for ``scheme://authority/path`` forms."""

    raw: str
    scheme: str
    authority: str | None
    path: str
    options: dict[str, str] = field(default_factory=dict)
    field: str | None = None

    def check_options(self, allowed: Iterable[str]) -> None:
        """``ConfigError`` naming the first option this backend does not know."""
        known = set(allowed)
        for name in self.options:
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                raise ConfigError(
                    f"store {self.raw!r}: unknown option {name!r}; {self.scheme} knows: {listed}"
                )

    def opt(self, name: str, default: str | None = None) -> str | None:
        return self.options.get(name, default)

    def opt_bool(self, name: str, default: bool = False) -> bool:
        value = self.options.get(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"store {self.raw!r}: option {name}={value!r} must be true or false")

    def opt_float(self, name: str, default: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(
                f"store {self.raw!r}: option {name}={value!r} must be a number"
            ) from None
        if number < 0:
            raise ConfigError(f"store {self.raw!r}: option {name} must not be negative")
        return number

    def opt_int(self, name: str, default: int) -> int:
        number = self.opt_float(name, float(default))
        if number != int(number):
            raise ConfigError(f"store {self.raw!r}: option {name} must be a whole number")
        return int(number)

    def opt_endpoint(
        self, name: str, *, host_port: bool = False, insecure: bool = False
    ) -> str | None:
        """Option ``name`` (an endpoint), refused unless the person running keyguard chose it.

        ``host_port``: the value is ``HOST[:PORT]`` (gRPC), reached over https, or plain http when
        ``insecure`` (loopback only). See :func:`keyguard.urls.check_store_endpoint`.
        """
        value = self.options.get(name)
        if not value:
            return None
        where = f"store {self.scheme}://{self.authority or ''}/{self.path}: option {name}"
        if host_port:
            if any(c in value for c in "/@?#\\") or not value.strip():
                raise ConfigError(f"{where} must be HOST[:PORT] (no scheme, path or user name)")
            checked = urlsplit(
                check_store_endpoint(f"{'http' if insecure else 'https'}://{value}", where)
            )
            # What gRPC dials is what was checked: normalized, the default port spelled out.
            port = "" if checked.port else f":{80 if insecure else 443}"
            return checked.netloc + port
        return check_store_endpoint(value, where)

    def opt_ca_bundle(self, name: str = "ca_bundle") -> str | None:
        """Option ``name`` (a CA bundle path), refused unless the person running keyguard chose it.

        Trusting a CA decides who may answer for the store's host, and so who receives the keys
        and cloud credentials sent there: a cloned repository's keyguard.toml must not decide
        that. The path is used only when ``KEYGUARD_STORE_CA_BUNDLES`` lists it (same real path).
        """
        value = self.options.get(name)
        if value is None:
            return None
        path = Path(value).expanduser()
        where = f"store {self.scheme}://{self.authority or ''}/{self.path}: option {name}"
        real = os.path.realpath(path)  # the file checked is the file used: no symlink swap
        if real not in chosen_ca_bundles():
            raise ConfigError(
                f"{where} ({path}) would choose the certificates trusted with keys and cloud "
                f"credentials, and only the store URI names it (a keyguard.toml or argument); "
                f"to use it, export {STORE_CA_BUNDLES_ENV}={path} (several: separated by "
                f"{os.pathsep!r}); otherwise remove the option"
            )
        if not Path(real).is_file():
            raise ConfigError(f"{where}: {path} is not a readable file")
        return real

    def require_authority(self, what: str, example: str) -> tuple[str, str]:
        """``(authority, path)`` for ``scheme://AUTHORITY/PATH`` URIs, both non-empty."""
        if not self.authority or not self.path:
            raise ConfigError(
                f"store {self.raw!r}: expected {self.scheme}://{what} (e.g. {example})"
            )
        return self.authority, self.path


def chosen_ca_bundles() -> set[str]:
    """The real paths of the CA bundles listed in ``KEYGUARD_STORE_CA_BUNDLES``."""
    raw = os.environ.get(STORE_CA_BUNDLES_ENV, "")
    return {os.path.realpath(Path(entry).expanduser()) for entry in raw.split(os.pathsep) if entry}


def parse_store_uri(uri: str) -> StoreURI:
    """Split a store URI; both ``PATH?opts#FIELD`` and ``PATH#FIELD?opts`` are accepted."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not scheme:
        raise ConfigError(f"store {uri!r}: expected SCHEME:..., e.g. file:.keyguard/dev.json")
    main, hsep, fragment = rest.partition("#")
    fieldname: str | None = None
    query = ""
    if hsep:
        # Config normalisation may leave the field before the query: accept both orders.
        fieldname, _, tail = fragment.partition("?")
        query = tail
        if not fieldname:
            raise ConfigError(f"store {uri!r}: '#' must be followed by a JSON field name")
        fieldname = unquote(fieldname)
    main, qsep, head_query = main.partition("?")
    if qsep:
        query = f"{head_query}&{query}" if query else head_query
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"store {uri!r}: cannot parse the options {query!r}") from None
    for name, value in pairs:
        if name in options:
            raise ConfigError(f"store {uri!r}: option {name!r} given twice")
        options[name] = value
    authority: str | None = None
    path = main
    if main.startswith("//"):
        authority, _, path = main[2:].partition("/")
        authority = unquote(authority)
    path = unquote(path)
    return StoreURI(uri, scheme, authority, path, options, fieldname)


def _load_object(raw: str, fieldname: str, where: str) -> dict[str, object]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        data = None
    if not isinstance(data, dict):
        raise ConfigError(
            f"store {where}: the secret is not a JSON object, but the URI selects the field "
            f"#{fieldname}; drop #{fieldname} from the URI or store a JSON object there"
        )
    return data


def extract_field(raw: str | None, fieldname: str | None, where: str) -> str | None:
    """The key inside a stored value: the whole value, or one field of a JSON object."""
    if raw is None or fieldname is None:
        return raw
    data = _load_object(raw, fieldname, where)
    value = data.get(fieldname)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"store {where}: field #{fieldname} holds a non-string JSON value")
    return value


def merge_field(existing: str | None, fieldname: str | None, value: str, where: str) -> str:
    """The value to store: ``value`` itself, or ``existing`` with one field set (others kept)."""
    if fieldname is None:
        return value
    data = _load_object(existing, fieldname, where) if existing else {}
    data[fieldname] = value
    return json.dumps(data)


def drop_field(existing: str | None, fieldname: str, where: str) -> str | None:
    """``existing`` without the field (others kept); None when there is nothing to keep."""
    data = _load_object(existing, fieldname, where) if existing else {}
    data.pop(fieldname, None)
    return json.dumps(data) if data else None
