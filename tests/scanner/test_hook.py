"""The hook: `keyguard install-hook` + real `git commit`, the `keyguard-scan` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.cli.scan import hook_script
from keyguard.keys import generate_key, redact
from keyguard.scanner.engine import ScanResult
from keyguard.scanner.run import ScanRun, check_hook
from tests.scanner.conftest import git, write

ROOT = Path(__file__).parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("KEYGUARD_CONFIG", None)
    return env


def _hook(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keyguard.scanner.hook", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )


def test_installed_hook_refuses_a_commit_with_a_key_and_accepts_a_clean_one(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["install-hook"]) == 0
    hook = repo / ".git" / "hooks" / "pre-commit"
    assert os.access(hook, os.X_OK)
    key = generate_key().reveal()
    write(repo / "settings.py", f"ANTHROPIC_API_KEY = '{key}'\n")
    git(repo, "add", ".")
    env = _env()
    commit = subprocess.run(
        ["git", "commit", "-m", "oops"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert commit.returncode != 0
    # git shows a hook's stdout on stderr
    assert f"settings.py:1:22: anthropic-api-key (critical) {redact(key)}" in commit.stderr
    assert "commit refused" in commit.stderr
    assert key not in commit.stdout + commit.stderr
    assert git(repo, "rev-parse", "--verify", "HEAD", check=False).returncode != 0

    write(repo / "settings.py", "import os\nANTHROPIC_API_KEY = os.environ['ANTHROPIC_API_KEY']\n")
    git(repo, "add", ".")
    commit = subprocess.run(
        ["git", "commit", "-qm", "clean"], cwd=repo, capture_output=True, text=True, env=env
    )
    assert commit.returncode == 0, commit.stderr
    assert "scanned 1 file" in commit.stderr


def test_install_hook_writes_the_packaged_script_with_this_python(repo: Path) -> None:
    assert main(["install-hook"]) == 0
    installed = (repo / ".git" / "hooks" / "pre-commit").read_text()
    assert installed == (repo / ".git" / "hooks" / "pre-merge-commit").read_text()
    assert installed == hook_script(sys.executable)
    *same, fallback = installed.splitlines()
    assert same == hook_script().splitlines()[:-1]
    assert fallback.startswith("exec ") and sys.executable in fallback


def test_install_hook_replaces_a_hook_an_earlier_version_installed(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    write(hook, "#!/bin/sh\n# installed by keyguard install-hook\nexec keyguard-scan\n")
    assert main(["install-hook"]) == 0
    assert hook.read_text() == hook_script(sys.executable)


def test_every_package_data_pattern_matches_a_file_and_the_hook_is_one() -> None:
    """A pattern that matches nothing ships nothing; the hook script must ship in the wheel."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["keyguard"]
    for pattern in patterns:
        assert list((ROOT / "keyguard").glob(pattern)), pattern
    assert "hooks/pre-commit" in patterns


def test_install_hook_keeps_a_foreign_hook_unless_forced(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    write(hook, "#!/bin/sh\necho mine\n")
    assert main(["install-hook"]) == 2
    assert "mine" in hook.read_text()
    assert main(["install-hook", "--force"]) == 0
    assert "keyguard" in hook.read_text()
    assert main(["install-hook"]) == 0  # reinstalling our own hook is fine


def test_the_hook_script_copied_by_hand_runs_the_scanner(repo: Path) -> None:
    """keyguard/hooks/pre-commit, the one copy of the script, works as a plain copy too."""
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_bytes((ROOT / "keyguard" / "hooks" / "pre-commit").read_bytes())
    assert hook.read_text() == hook_script()
    hook.chmod(0o755)
    write(repo / "a.txt", generate_key("admin").reveal())
    git(repo, "add", ".")
    commit = subprocess.run(
        ["git", "commit", "-qm", "x"], cwd=repo, capture_output=True, env=_env()
    )
    assert commit.returncode != 0 and b"anthropic-admin-key" in commit.stderr


def test_keyguard_scan_entry_scans_the_index(repo: Path) -> None:
    proc = _hook(repo)
    assert proc.returncode == 0 and "scanned 0 files" in proc.stderr
    key = generate_key().reveal()
    write(repo / "nb.ipynb", json.dumps({"cells": [{"source": [f'key = "{key}"\n']}]}))
    git(repo, "add", ".")
    proc = _hook(repo, "-f", "json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["findings"][0]["path"] == "nb.ipynb"
    assert _hook(repo, "--format", "nope").returncode == 2


def test_a_hook_run_that_scanned_nothing_while_files_were_staged_fails() -> None:
    assert check_hook(ScanRun(ScanResult(files=0), staged_paths=2)) is not None
    assert check_hook(ScanRun(ScanResult(files=2), staged_paths=2)) is None
    assert check_hook(ScanRun(ScanResult(files=0, excluded=2), staged_paths=2)) is None


def test_hook_entry_imports_nothing_heavy() -> None:
    code = (
        "import sys, keyguard.scanner.hook\n"
        "heavy = {'click', 'httpx', 'rich', 'boto3', 'google', 'azure', 'multiprocessing'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    assert proc.stdout.strip() == "[]"


def test_staged_blobs_that_cannot_be_read_fail_the_hook_and_the_commit(repo: Path) -> None:
    """A broken index read (the staged blob is gone) scans nothing: an error, never a pass."""
    write(repo / "settings.py", f"KEY = '{generate_key().reveal()}'\n")
    git(repo, "add", "settings.py")
    oid = git(repo, "rev-parse", ":settings.py").stdout.strip()
    (repo / ".git" / "objects" / oid[:2] / oid[2:]).unlink()
    proc = _hook(repo)
    assert proc.returncode == 2, proc.stderr
    assert "scanned 0 files" in proc.stderr
    assert "1 staged file(s) but nothing was scanned" in proc.stderr
    assert main(["scan", "--staged"]) == 2
    assert main(["install-hook"]) == 0
    commit = subprocess.run(
        ["git", "commit", "-m", "x"], cwd=repo, capture_output=True, text=True, env=_env()
    )
    assert commit.returncode != 0
    assert "nothing was scanned" in commit.stderr


def _branch_with_a_key(repo: Path) -> str:
    """A side branch whose commit (made with --no-verify) holds a key; main moved on too."""
    write(repo / "README", "start\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "start", "--no-verify")
    git(repo, "checkout", "-qb", "side")
    key = generate_key().reveal()
    write(repo / "side.py", f"KEY = '{key}'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "key", "--no-verify")
    git(repo, "checkout", "-q", "main")
    write(repo / "main.txt", "main moved\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "main", "--no-verify")
    return key


def test_installed_hook_refuses_a_merge_commit_that_brings_a_key(repo: Path) -> None:
    key = _branch_with_a_key(repo)
    assert main(["install-hook"]) == 0
    assert os.access(repo / ".git" / "hooks" / "pre-merge-commit", os.X_OK)
    merge = subprocess.run(
        ["git", "merge", "--no-ff", "--no-edit", "side"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert merge.returncode != 0
    assert "side.py:1:" in merge.stderr and "anthropic-api-key" in merge.stderr
    assert key not in merge.stdout + merge.stderr
    assert git(repo, "rev-list", "--count", "HEAD").stdout.strip() == "2"  # no merge commit


@pytest.mark.parametrize(
    "args",
    [("--bogus", "{key}"), ("-f", "{key}"), ("--format={key}",), ("--{key}",), ("--output",)],
    ids=["unrecognized", "choice", "choice-inline", "option", "missing-value"],
)
def test_hook_argument_errors_never_repeat_a_key(repo: Path, args: tuple[str, ...]) -> None:
    key = generate_key().reveal()
    argv = [a.format(key=key) for a in args]
    done = _hook(repo, *argv)
    assert done.returncode == 2, done.stderr
    assert "keyguard-scan: error:" in done.stderr
    assert key not in done.stdout + done.stderr
    assert key[: len("sk-ant-api03-") + 8] not in done.stderr  # not even most of it
    if argv[0] not in ("--bogus", "--output"):  # (--bogus: the key is taken as a path)
        assert redact(key) in done.stderr  # the user still sees which argument it was


@pytest.mark.parametrize("prog", ["hook", "scan"])
def test_a_missing_path_with_control_bytes_is_escaped(repo: Path, prog: str) -> None:
    name = "nope\x1b]0;pwned\x07\x1b[31m"
    if prog == "hook":
        done = _hook(repo, name)
    else:
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", "scan", name],
            cwd=repo,
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr, repr(done.stderr)
    assert "nope\\x1b]0;pwned\\x07\\x1b[31m: no such file or folder" in done.stderr


def test_hook_argument_errors_escape_control_bytes(repo: Path) -> None:
    done = _hook(repo, "-f", "x\x1b[31m")
    assert done.returncode == 2
    assert "\x1b" not in done.stderr and "x\\x1b[31m" in done.stderr, repr(done.stderr)


@pytest.mark.parametrize("prog", ["hook", "scan-output", "scan-baseline"])
def test_an_unwritable_output_name_with_control_bytes_is_escaped(repo: Path, prog: str) -> None:
    write(repo / "a.txt", "clean\n")
    target = "a.txt/\x1b]0;pwned\x07o"
    cmd = {
        "hook": [sys.executable, "-m", "keyguard.scanner.hook", "a.txt", "--output", target],
        "scan-output": [sys.executable, "-m", "keyguard", "scan", "a.txt", "--output", target],
        "scan-baseline": [
            *(sys.executable, "-m", "keyguard", "scan", "a.txt", "--update-baseline"),
            *("--baseline", target),
        ],
    }[prog]
    done = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=_env(), check=False)
    assert done.returncode == 2, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr, repr(done.stderr)
    assert "a.txt/\\x1b]0;pwned\\x07o" in done.stderr


def test_keyguard_scan_of_a_small_tree_loads_no_config_layer_and_no_pool(repo: Path) -> None:
    """`keyguard scan . -o FILE` needs the scanner and click: not the config/policy layer,
    httpx, rich or a process pool for a handful of files (each costs start-up time)."""
    write(repo / "a.txt", "clean\n")
    code = (
        "import sys\n"
        "from keyguard.cli import main\n"
        "code = main(['scan', '.', '-f', 'json', '-o', 'report.json'])\n"
        "heavy = {'keyguard.config', 'keyguard.policy', 'keyguard.cli.common', 'httpx', 'rich',\n"
        "         'multiprocessing'}\n"
        "print(code, sorted(heavy & set(sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=_env()
    )
    assert proc.stdout.strip() == "0 []", proc.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_scan_pinned_to_one_core_starts_no_worker_pool(repo: Path) -> None:
    """A process allowed on one core gets nothing from workers: it starts none (the pool
    threshold is set to 0 so that even this small tree would otherwise get a pool)."""
    write(repo / "a.txt", f"KEY = '{generate_key().reveal()}'\n")
    code = (
        "import os, sys\n"
        "import keyguard.scanner.engine as engine\n"
        "engine.POOL_MIN_BYTES = 0\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from keyguard.cli import main\n"
        "code = main(['scan', '.'])\n"
        "print(code, 'multiprocessing' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=_env()
    )
    assert proc.stdout.strip().splitlines()[-1] == "1 False", proc.stderr
