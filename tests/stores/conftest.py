"""The backends the contract suite runs against, each with its server fixture.

To add a backend: write ``tests/stores/servers/<name>.py`` with a session fixture returning a
``Harness``, import the fixture here, and add one line to ``BACKENDS``.
"""

from __future__ import annotations

import pytest

from tests.stores.lease_clock import lease_clock  # noqa: F401  (fixture)
from tests.stores.servers.aws import aws_server  # noqa: F401  (fixture)
from tests.stores.servers.azure import (  # noqa: F401  (fixtures)
    azure_kv,
    azure_kv_server,
    azure_server,
)
from tests.stores.servers.base import Harness
from tests.stores.servers.file import file_server  # noqa: F401  (fixture)
from tests.stores.servers.gcp import gcp, gcp_fake, gcp_server  # noqa: F401  (fixtures)

#: backend name -> (server fixture name, fault kinds its server can inject)
BACKENDS: dict[str, tuple[str, frozenset[str]]] = {
    "file": ("file_server", frozenset()),
    "aws": ("aws_server", frozenset({"throttle", "denied", "unreachable"})),
    "azure": ("azure_server", frozenset({"throttle", "denied", "unreachable"})),
    "gcp": ("gcp_server", frozenset({"throttle", "denied", "unreachable"})),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_factory" not in metafunc.fixturenames:
        return
    if "fault" in metafunc.fixturenames:
        combos = [(name, kind) for name, (_, kinds) in BACKENDS.items() for kind in sorted(kinds)]
        metafunc.parametrize(
            ("store_factory", "fault"),
            combos,
            indirect=["store_factory"],
            ids=[f"{name}-{kind}" for name, kind in combos],
        )
    else:
        only = metafunc.definition.get_closest_marker("backends")
        names = list(only.args) if only is not None else list(BACKENDS)
        metafunc.parametrize("store_factory", names, indirect=True)


@pytest.fixture
def store_factory(request: pytest.FixtureRequest) -> Harness:
    """The named backend's harness: call it for a fresh store on a secret of its own."""
    fixture_name, _ = BACKENDS[request.param]
    harness: Harness = request.getfixturevalue(fixture_name)
    return harness
