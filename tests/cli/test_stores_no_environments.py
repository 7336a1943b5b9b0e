"""A configuration without environments: one sentence everywhere, one exit code where it stops.

`rotate --due`, `rotate --all`, `status` and `stores check` act on environments: with none they
stop with exit 2 (a configuration error) and say where they looked and how to add one. `audit`
says the same sentence as a warning and still audits the organization: a scheduled audit keeps
its report and its exit code by verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.admin.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "no environments configured in"
FIX = "`keyguard init` writes one, or add [environments.NAME]"
STOPPING = [["rotate", "--due"], ["rotate", "--all"], ["status"], ["stores", "check"]]


def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return subprocess.run(
        [sys.executable, "-m", "keyguard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("args", STOPPING, ids=" ".join)
@pytest.mark.parametrize("config", ["empty-file", "no-file"])
def test_commands_that_act_on_environments_stop_with_exit_2(
    tmp_path: Path, args: list[str], config: str
) -> None:
    if config == "empty-file":
        (tmp_path / "keyguard.toml").write_text("[policy]\nfile = 'default'\n")
    done = run(tmp_path, *args)
    assert done.returncode == 2, (args, done.stderr)
    [line] = done.stderr.strip().splitlines()
    assert SENTENCE in line and FIX in line, line
    where = (
        tmp_path / "keyguard.toml" if config == "empty-file" else "keyguard.toml (none found here)"
    )
    assert f"{SENTENCE} {where};" in line


def test_audit_says_the_same_sentence_as_a_warning_and_audits(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (tmp_path / "keyguard.toml").write_text("[policy]\nfile = 'default'\n")
    done = run(
        tmp_path,
        "audit",
        "--format",
        "json",
        ANTHROPIC_ADMIN_KEY=sandbox.admin_key.reveal(),
        ANTHROPIC_BASE_URL=sandbox.url,
    )
    assert done.returncode == 0, done.stderr
    assert f"keyguard: warning: {SENTENCE} {tmp_path / 'keyguard.toml'}" in done.stderr
    assert "every active key is listed as unmanaged" in done.stderr and FIX in done.stderr
    assert '"environments"' in done.stdout, "the report is still written"
