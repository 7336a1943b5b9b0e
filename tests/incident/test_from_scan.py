"""``keyguard revoke --from-scan``: a real ``keyguard scan --history`` report of a real repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from keyguard.keys import Secret, generate_key
from tests.incident.conftest import ROOT, Incident


def _git(repo: Path, *args: str, when: datetime | None = None) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = when.isoformat()
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def _scan_history(repo: Path, out: Path) -> None:
    """A history report of ``repo``: the real scanner's JSON, each finding with its commit."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KEYGUARD_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyguard",
            "scan",
            "--history",
            "--format",
            "json",
            "--output",
            str(out),
        ],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # findings
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert {f.get("commit") for f in json.loads(out.read_text())["findings"]} == {head}


def test_from_scan_matches_through_stores_and_hints(incident: Incident, tmp_path: Path) -> None:
    sb = incident.sandbox
    now = datetime.now(UTC)
    in_store_id, in_store = incident.mint("dev-1", created_at=now - timedelta(days=10))
    by_hint_id, by_hint = incident.mint("ci-1", created_at=now - timedelta(days=10))
    stranger = generate_key()
    incident.secrets.append(stranger)
    incident.serve("dev", in_store)
    commit_at = (now - timedelta(days=2)).replace(microsecond=0)
    sb.record_usage(in_store_id, at=now - timedelta(days=4), input_tokens=1000, output_tokens=0)
    sb.record_usage(in_store_id, at=now - timedelta(days=1), input_tokens=42, output_tokens=0)

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "app.env").write_text(
        f"ANTHROPIC_API_KEY={in_store.reveal()}\nCI_KEY={by_hint.reveal()}\n"
        f"OLD={stranger.reveal()}\n"
    )
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "config", when=commit_at)
    report = tmp_path / "scan.json"
    _scan_history(repo, report)
    incident.assert_no_leak(report.read_text())
    assert {f["fingerprint"] for f in json.loads(report.read_text())["findings"]} == {
        in_store.fingerprint,
        by_hint.fingerprint,
        stranger.fingerprint,
    }

    run = incident.revoke(
        "--from-scan", str(report), "--repo", str(repo), "--yes", "--format", "json"
    )

    assert run.code == 5, run.err  # dev serves a deactivated key and waits for a new one
    assert incident.status(in_store_id) == "inactive"
    assert incident.status(by_hint_id) == "inactive"
    assert len(sb.writes()) == 2  # one per leaked key
    assert "not matched" in run.err and stranger.hint in run.err
    records = [json.loads(chunk) for chunk in _objects(run.out)]
    by_id = {r["key"]["id"]: r for r in records}
    dev = by_id[in_store_id]
    assert dev["matched"].startswith("matched in file:")
    assert [e["environment"] for e in dev["environments"]] == ["dev"]
    # The window starts at the commit that leaked it, not at the key's creation.
    assert dev["exposure"]["since_reason"] == "first commit the scanner found it in"
    assert datetime.fromisoformat(dev["exposure"]["since"]) == commit_at
    assert dev["exposure"]["tokens"] == 42
    ci = by_id[by_hint_id]
    assert "hint" in ci["matched"] and ci["environments"] == []
    assert ci["key"]["fingerprint"] == by_hint.fingerprint
    assert len(incident.audit()) == 2


def test_from_scan_with_nothing_matched_exits_1(incident: Incident, tmp_path: Path) -> None:
    report = tmp_path / "scan.json"
    stranger = generate_key()
    finding = {
        "rule": "anthropic-api-key",
        "severity": "critical",
        "path": "a",
        "line": 1,
        "column": 1,
        "redacted": stranger.hint,
        "fingerprint": stranger.fingerprint,
    }
    report.write_text(json.dumps({"findings": [finding], "stats": {}}))
    run = incident.revoke("--from-scan", str(report), "--yes")
    assert run.code == 1
    assert "could be matched" in run.err
    assert incident.sandbox.writes() == []


def _objects(text: str) -> list[str]:
    """Split concatenated pretty-printed JSON objects."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth, start = depth + 1, start if depth else i
        elif ch == "}":
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
    return out


def _report_of(path: Path, key: Secret, commit: str) -> None:
    finding = {
        "rule": "anthropic-api-key",
        "severity": "critical",
        "path": "app.env",
        "line": 1,
        "column": 1,
        "redacted": key.hint,
        "fingerprint": key.fingerprint,
        "commit": commit,
    }
    path.write_text(json.dumps({"findings": [finding], "stats": {}}))


@pytest.mark.parametrize("where", ["other repo", "not a repo", "no git"])
def test_from_scan_with_commits_git_cannot_resolve(
    incident: Incident, tmp_path: Path, where: str
) -> None:
    key_id, key = incident.mint("dev-1", created_at=datetime.now(UTC) - timedelta(days=3))
    incident.serve("dev", key)
    repo = tmp_path / "repo"
    repo.mkdir()
    if where == "other repo":
        _git(repo, "init", "-q")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "unrelated")
    report = tmp_path / "scan.json"
    _report_of(report, key, "0123456789abcdef0123456789abcdef01234567")
    extra_env = {"PATH": str(tmp_path / "empty-bin")} if where == "no git" else {}

    run = incident.revoke(
        "--from-scan",
        str(report),
        "--repo",
        str(repo),
        "--yes",
        "--format",
        "json",
        env=extra_env,
    )

    assert run.code == 5, run.err  # deactivated; dev waits for a new key
    assert incident.status(key_id) == "inactive"
    exposure = run.json()["exposure"]
    assert exposure["since_reason"].startswith("key creation")
    assert "0123456789ab" in exposure["since_reason"] and "--since" in exposure["since_reason"]
    assert "0123456789ab" in run.err  # warned, not silently dropped


def test_from_scan_refuses_to_guess_between_keys_that_share_a_hint(
    incident: Incident, tmp_path: Path
) -> None:
    first = generate_key()
    raw = first.reveal()
    twin = Secret(raw[:16] + ("x" if raw[16] != "x" else "y") + raw[17:])  # same hint
    assert twin.hint == first.hint and twin != first
    a_id, _ = incident.mint("a", secret=first)
    b_id, _ = incident.mint("b", secret=twin)
    report = tmp_path / "scan.json"
    _report_of(report, first, "0" * 40)  # no store holds it: only its hint could match
    run = incident.revoke("--from-scan", str(report), "--yes")
    assert run.code == 1, run.err
    assert "2 keys share this hint" in run.err and a_id in run.err and b_id in run.err
    assert "keyguard revoke --leaked -" in run.err
    assert incident.sandbox.writes() == []
    assert incident.status(a_id) == "active" and incident.status(b_id) == "active"
