"""Shared fixtures. Fake keys are built at run time: no key literal lives in the repository."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from keyguard.keys import Secret, generate_key

if TYPE_CHECKING:
    from keyguard.admin.sandbox import Sandbox


@pytest.fixture
def api_key() -> Secret:
    return generate_key("api")


@pytest.fixture
def admin_key() -> Secret:
    return generate_key("admin")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh Admin API sandbox on 127.0.0.1 (in memory), stopped after the test."""
    from keyguard.admin.sandbox import Sandbox

    sb = Sandbox().start()
    try:
        yield sb
    finally:
        sb.stop()
