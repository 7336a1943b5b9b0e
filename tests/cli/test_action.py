"""action.yml (the GitHub Action): it parses, uploads even after a failed scan, and its scan
step, run as GitHub runs it (bash -eo pipefail), finds a key a pull request added."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from keyguard.keys import generate_key

ROOT = Path(__file__).resolve().parents[2]


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    return data


def step(name_or_id: str) -> dict[str, Any]:
    for s in action()["runs"]["steps"]:
        if name_or_id in (s.get("id"), s.get("name")):
            return dict(s)
    raise AssertionError(f"no step {name_or_id}")


def test_the_action_is_composite_and_uploads_even_when_the_scan_failed() -> None:
    data = action()
    assert data["runs"]["using"] == "composite"
    assert {"scan", "sarif-file", "upload-sarif"} <= set(data["inputs"])
    upload = step("Upload SARIF to code scanning")
    assert upload["uses"].startswith("github/codeql-action/upload-sarif@")
    assert upload["if"].startswith("always()")
    names = [s.get("id") or s.get("name") for s in data["runs"]["steps"]]
    assert names.index("scan") < names.index("Upload SARIF to code scanning")
    assert "${{" not in step("scan")["run"], "inputs reach the script through env, never inline"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def run_scan(repo: Path, **inputs: str) -> tuple[int, str, Path]:
    out = repo / "github-output"
    out.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYGUARD_", "ANTHROPIC_"))}
    env.update(
        KG_SCAN=inputs.get("scan", "auto"),
        KG_SARIF="keyguard.sarif",
        KG_EVENT=inputs.get("event", "push"),
        KG_BASE=inputs.get("base", ""),
        KG_HEAD=inputs.get("head", ""),
        GITHUB_OUTPUT=str(out),
    )
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step("scan")["run"]],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr + out.read_text(), repo / "keyguard.sarif"


def test_the_scan_step_fails_on_a_key_a_pull_request_added(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "app.py").write_text("print('hello')\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")

    code, shown, sarif = run_scan(repo, event="pull_request", base=base, head=base)
    assert code == 0, shown
    assert "exit-code=0" in shown and json.loads(sarif.read_text())["runs"][0]["results"] == []

    key = generate_key().reveal()
    (repo / "client.py").write_text(f"KEY = '{key}'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "oops")
    head = git(repo, "rev-parse", "HEAD")
    code, shown, sarif = run_scan(repo, event="pull_request", base=base, head=head)
    assert code == 1, shown
    assert "exit-code=1" in shown and "::error::keyguard found" in shown
    assert key not in shown and key not in sarif.read_text()
    results = json.loads(sarif.read_text())["runs"][0]["results"]
    assert len(results) == 1

    code, shown, _ = run_scan(repo, scan="history")
    assert code == 1, shown
    code, shown, _ = run_scan(repo, scan="pull-request")
    assert code == 2 and "pull_request event" in shown
