"""The real pre-commit framework installs keyguard's hook from this repository and runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from tests.scanner.conftest import git, write

ROOT = Path(__file__).parents[2]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KEYGUARD_CONFIG")}
    env["PRE_COMMIT_HOME"] = str(home)
    return env


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A snapshot of this work tree (committed or not) as a git repository pre-commit can pin."""
    dest = tmp_path_factory.mktemp("hook-repo")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for raw in listed.split(b"\0"):
        name = os.fsdecode(raw)
        if name and (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", ".")
    git(dest, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "snapshot")
    yield dest, git(dest, "rev-parse", "HEAD").stdout.strip()


def test_pre_commit_framework_refuses_keys_and_accepts_clean_commits(
    repo: Path, hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    path, rev = hook_repo
    write(
        repo / ".pre-commit-config.yaml",
        f"repos:\n- repo: {path}\n  rev: {rev}\n  hooks:\n  - id: keyguard-scan\n",
    )
    env = _env(tmp_path / "pre-commit-home")
    subprocess.run(["pre-commit", "install"], cwd=repo, env=env, check=True, capture_output=True)
    git(repo, "add", ".pre-commit-config.yaml")

    def commit(message: str) -> tuple[int, str]:
        """Exit code and everything shown (git prints a hook's output on stderr)."""
        proc = subprocess.run(
            ["git", "commit", "-m", message], cwd=repo, env=env, capture_output=True, text=True
        )
        return proc.returncode, proc.stdout + proc.stderr

    key = generate_key().reveal()
    write(repo / "client.py", f"client = Anthropic(api_key='{key}')\n")
    git(repo, "add", "client.py")
    code, shown = commit("plain key")
    assert code != 0, shown
    assert "client.py:1:" in shown and "anthropic-api-key" in shown and key not in shown

    git(repo, "rm", "-q", "--cached", "client.py")
    admin = generate_key("admin").reveal()
    cell = {"cell_type": "code", "source": [f'ADMIN = "{admin}"\n', "print(1)"]}
    write(repo / "explore.ipynb", json.dumps({"cells": [cell], "nbformat": 4}, indent=1))
    git(repo, "add", "explore.ipynb")
    code, shown = commit("notebook key")
    assert code != 0, shown
    assert "explore.ipynb:" in shown and "anthropic-admin-key" in shown and admin not in shown

    write(repo / "explore.ipynb", json.dumps({"cells": [], "nbformat": 4}))
    git(repo, "add", "explore.ipynb")
    code, shown = commit("clean")
    assert code == 0, shown
    assert "Passed" in shown


def test_pre_commit_framework_refuses_a_merge_commit_that_brings_a_key(
    repo: Path, hook_repo: tuple[Path, str], tmp_path: Path
) -> None:
    path, rev = hook_repo
    write(
        repo / ".pre-commit-config.yaml",
        f"repos:\n- repo: {path}\n  rev: {rev}\n  hooks:\n  - id: keyguard-scan\n",
    )
    env = _env(tmp_path / "pre-commit-home")
    subprocess.run(
        ["pre-commit", "install", "-t", "pre-commit", "-t", "pre-merge-commit"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    git(repo, "add", ".pre-commit-config.yaml")
    git(repo, "commit", "-qm", "config", "--no-verify")
    git(repo, "checkout", "-qb", "side")
    key = generate_key().reveal()
    write(repo / "side.py", f"KEY = '{key}'\n")
    git(repo, "add", "side.py")
    git(repo, "commit", "-qm", "key", "--no-verify")
    git(repo, "checkout", "-q", "main")
    write(repo / "main.txt", "moved on\n")
    git(repo, "add", "main.txt")
    git(repo, "commit", "-qm", "main", "--no-verify")
    proc = subprocess.run(
        ["git", "merge", "--no-ff", "--no-edit", "side"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    shown = proc.stdout + proc.stderr
    assert proc.returncode != 0, shown
    assert "side.py:1:" in shown and "anthropic-api-key" in shown and key not in shown
    assert git(repo, "rev-list", "--count", "HEAD").stdout.strip() == "2"  # no merge
