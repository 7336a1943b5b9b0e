"""`[scan] baseline` in keyguard.toml: honoured by `keyguard scan`, `keyguard-scan` and the
installed hook; a missing file is named; the hook's advice is a command that works; a broken
keyguard.toml is one clear line."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.keys import generate_key
from tests.scanner.conftest import git, write
from tests.scanner.test_hook import _env, _hook


def _commit(repo: Path, message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-m", message], cwd=repo, capture_output=True, text=True, env=_env()
    )


def _advice(stderr: str) -> str:
    """The command the hook suggests for accepting the keys."""
    commands = re.findall(r"`(keyguard scan [^`]*)`", stderr)
    assert commands, stderr
    return commands[-1]


def test_hook_advice_records_the_key_in_the_configured_baseline_and_the_commit_passes(
    repo: Path,
) -> None:
    write(repo / "keyguard.toml", '[scan]\nbaseline = "ci/keyguard-baseline.json"\n')
    assert main(["install-hook"]) == 0
    key = generate_key().reveal()
    write(repo / "tests" / "fixture.py", f"TEST_KEY = '{key}'\n")
    git(repo, "add", ".")
    refused = _commit(repo, "fixture")
    assert refused.returncode != 0
    command = _advice(refused.stderr)
    assert "ci/keyguard-baseline.json" in refused.stderr
    accepted = subprocess.run(
        shlex.split(command), cwd=repo, capture_output=True, text=True, env=_env()
    )
    assert accepted.returncode == 0, accepted.stderr
    assert key not in (repo / "ci" / "keyguard-baseline.json").read_text()
    git(repo, "add", ".")
    done = _commit(repo, "fixture, accepted")
    assert done.returncode == 0, done.stderr
    assert "1 in the baseline" in done.stderr


def test_configured_baseline_is_honoured_by_scan_and_keyguard_scan(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key().reveal()
    write(repo / "a.py", f"K = '{key}'\n")
    git(repo, "add", ".")
    assert main(["scan", "--baseline", "b.json", "--update-baseline"]) == 0
    write(repo / "keyguard.toml", '[scan]\nbaseline = "b.json"\n')
    capsys.readouterr()
    assert main(["scan"]) == 0
    assert main(["scan", "--staged"]) == 0
    assert "1 in the baseline" in capsys.readouterr().err
    assert _hook(repo).returncode == 0
    assert _hook(repo, ".").returncode == 0


def test_a_missing_baseline_file_is_named_in_a_warning(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(repo / "keyguard.toml", '[scan]\nbaseline = "nowhere.json"\n')
    write(repo / "a.py", "clean\n")
    git(repo, "add", ".")
    assert main(["scan"]) == 0
    assert "warning: baseline " in capsys.readouterr().err
    proc = _hook(repo)
    assert proc.returncode == 0
    assert "warning: baseline" in proc.stderr and "nowhere.json" in proc.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'[scan]\nexclude = ["caf\xe9"]\n', "keyguard.toml:2: not UTF-8"),
        (b"[scan\nexclude = 1\n", "keyguard.toml: "),
        (b"[scan]\nbaseline = 3\n", "[scan] baseline must be a file name"),
        (b'[scan]\nexclude = "x"\n', "[scan] exclude must be a list"),
    ],
)
def test_a_broken_keyguard_toml_gives_the_hook_one_clear_line(
    repo: Path, content: bytes, expected: str
) -> None:
    write(repo / "keyguard.toml", content)
    write(repo / "a.py", "clean\n")
    git(repo, "add", "a.py")
    proc = _hook(repo)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("keyguard: error: ")
    assert expected in proc.stderr
