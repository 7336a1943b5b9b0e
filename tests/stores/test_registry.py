"""The lazy registry: every entry resolves, unknown schemes and options are config errors."""

from __future__ import annotations

import importlib

import pytest

from keyguard.errors import ConfigError
from keyguard.stores import BACKENDS, open_store

IMPLEMENTED = {"file", "aws-sm"}  # other branches add theirs


@pytest.mark.parametrize("scheme", sorted(IMPLEMENTED))
def test_every_backend_entry_resolves_to_a_class_with_from_uri(scheme: str) -> None:
    module_name, _, attr = BACKENDS[scheme].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert callable(cls.from_uri)


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must start with one of"):
        open_store("vault://x/y")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("aws-sm://us-east-1/x?endpoint=http://h", "unknown option 'endpoint'"),
        ("aws-sm:///x", "aws-sm://REGION/NAME"),
        ("aws-sm://us-east-1/x?max_attempts=lots", "must be a number"),
        ("file:/tmp/x.json?passphrase=hunter2", "unknown option 'passphrase'"),
        ("file:", "expected file:PATH"),
    ],
)
def test_bad_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(uri)


def test_opening_a_file_store_does_not_import_boto3(tmp_path: object) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from keyguard.stores import open_store; "
        "open_store('file:/tmp/kg-none.json'); print('boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
