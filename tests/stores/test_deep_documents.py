"""Store documents nested past the JSON parser's depth: a one-line error or an ignored
annotation, never a RecursionError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from keyguard.errors import ConfigError
from keyguard.stores.gcp.metadata import metas_of
from keyguard.stores.uri import extract_field

DEEP = "[" * 100_000


def test_a_file_store_nested_too_deep_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "keyguard.toml").write_text('[environments.dev]\nstores = ["file:dev.json"]\n')
    (tmp_path / "dev.json").write_text(DEEP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGUARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "get", "dev"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_gcp_annotation_nested_too_deep_is_ignored() -> None:
    secret = SimpleNamespace(annotations={"keyguard-v1": DEEP, "keyguard-v2": '{"stage": "x"}'})
    assert metas_of(secret) == {2: {"stage": "x"}}


def test_a_field_document_nested_too_deep_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a JSON object"):
        extract_field(DEEP, "KEY", "file:dev.json#KEY")
