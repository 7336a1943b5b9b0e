"""The Admin API Protocols: written once, the same as AdminClient's methods, light to import."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from collections.abc import Callable

import pytest

from keyguard.admin import AdminClient
from keyguard.admin.protocol import AdminApi
from keyguard.audit import AdminReader
from keyguard.rotation import Admin
from tests.rotation.fakes import FakeAdmin


def members(protocol: type) -> list[str]:
    """The methods a Protocol declares, its bases' included."""
    return sorted(
        name
        for cls in protocol.__mro__
        if getattr(cls, "_is_protocol", False) and cls is not typing.Protocol
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    )


def shape(fn: Callable[..., object]) -> tuple[object, ...]:
    """Parameters (name, kind, default) and resolved annotations of a function."""
    params = [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
    return (params, typing.get_type_hints(fn))


def test_admin_api_declares_every_public_client_method() -> None:
    public = sorted(
        name
        for name, value in vars(AdminClient).items()
        if inspect.isfunction(value) and not name.startswith("_")
    )
    assert members(AdminApi) == [n for n in public if n != "close"]


@pytest.mark.parametrize(
    ("implementation", "protocol"),
    [(AdminClient, AdminApi), (FakeAdmin, Admin)],
    ids=["AdminClient", "rotation-FakeAdmin"],
)
def test_signatures_match_exactly(implementation: type, protocol: type) -> None:
    for name in members(protocol):
        assert shape(getattr(implementation, name)) == shape(getattr(protocol, name)), name


def test_layer_protocols_are_subsets_of_the_admin_api() -> None:
    assert members(AdminReader) == ["list_keys", "usage"]
    assert members(Admin) == [
        "find_key",
        "get_key",
        "list_keys",
        "update_key",
        "usage",
        "verify_key",
    ]
    for protocol in (AdminReader, Admin):
        for name in members(protocol):
            assert getattr(protocol, name) is getattr(AdminApi, name), name


def test_the_protocols_load_without_httpx() -> None:
    code = (
        "import sys, keyguard.admin.protocol, keyguard.rotation, keyguard.audit\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'httpx', 'httpcore'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
