"""Shared fixtures. Fake keys are built at run time: no key literal lives in the repository."""

from __future__ import annotations

import pytest

from keyguard.keys import Secret, generate_key


@pytest.fixture
def api_key() -> Secret:
    return generate_key("api")


@pytest.fixture
def admin_key() -> Secret:
    return generate_key("admin")
