"""Fixtures for scanner tests: real git repositories in temp dirs, keys built at run time."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keyguard.cli import main

#: Prefixes are assembled so that no key shape ever appears in the repository.
PREFIX = "sk-" + "ant-"


def git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=check)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository as the working directory."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    git(path, "config", "commit.gpgsign", "false")
    monkeypatch.chdir(path)
    monkeypatch.delenv("KEYGUARD_CONFIG", raising=False)
    return path


@pytest.fixture
def plain_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside any git work tree, as the working directory."""
    path = tmp_path / "plain"
    path.mkdir()
    monkeypatch.chdir(path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.delenv("KEYGUARD_CONFIG", raising=False)
    return path


Scan = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture
def scan_json(capsys: pytest.CaptureFixture[str]) -> Scan:
    """Run ``keyguard scan ARGS -f json`` in-process: (exit code, parsed JSON, stderr)."""

    def run(*args: str) -> tuple[int, dict[str, Any], str]:
        capsys.readouterr()
        code = main(["scan", *args, "-f", "json"])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else {}), err

    return run


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def env_without_keyguard_config() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("KEYGUARD_CONFIG", None)
    return env


@pytest.fixture(params=["stdlib", "fast"])
def scan_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with the stdlib search and inflaters, once with hyperscan and isal."""
    monkeypatch.setenv("KEYGUARD_SCAN_ENGINE", request.param)
    return str(request.param)
