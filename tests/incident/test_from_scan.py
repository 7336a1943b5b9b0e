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


def _scan(repo: Path, out: Path, *args: str) -> list[dict[str, object]]:
    """``keyguard scan ARGS --format json`` run in ``repo``: the real scanner's report."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KEYGUARD_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", *args, "--format", "json", "--output", str(out)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # findings
    findings: list[dict[str, object]] = json.loads(out.read_text())["findings"]
    return findings


def _scan_history(repo: Path, out: Path) -> None:
    """A history report of ``repo``: the real scanner's JSON, each finding with its commit."""
    findings = _scan(repo, out, "--history")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert {f.get("commit") for f in findings} == {head}


def _look_alike(key: Secret) -> Secret:
    """A different string with the same ``partial_key_hint``: anyone who saw the hint can."""
    raw = key.reveal()
    twin = Secret(raw[:20] + ("x" if raw[20] != "x" else "y") + raw[21:])
    assert twin.hint == key.hint and twin != key
    return twin


def test_from_scan_reads_each_key_again_and_proves_it(incident: Incident, tmp_path: Path) -> None:
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
    (repo / "app.env").write_text("# keys moved to the secret store\n")  # the work tree moved on
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
    # The stranger's key does not authenticate: reported, never acted on.
    assert "not acted on" in run.err and stranger.hint in run.err
    assert "not a live key of this organization" in run.err
    records = [json.loads(chunk) for chunk in _objects(run.out)]
    by_id = {r["key"]["id"]: r for r in records}
    dev = by_id[in_store_id]
    assert dev["matched"].startswith("read again from app.env:1 in commit")
    assert [e["environment"] for e in dev["environments"]] == ["dev"]
    # The window starts at the commit that leaked it, not at the key's creation.
    assert dev["exposure"]["since_reason"] == "first commit the scanner found it in"
    assert datetime.fromisoformat(dev["exposure"]["since"]) == commit_at
    assert dev["exposure"]["tokens"] == 42
    ci = by_id[by_hint_id]
    assert ci["matched"].startswith("read again from app.env:2") and ci["environments"] == []
    assert ci["key"]["fingerprint"] == by_hint.fingerprint
    assert ci["key"]["name"].startswith("leaked-") and ci["key"]["name"].endswith(" ci-1")
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
    assert "was proven" in run.err and "nothing was changed" in run.err
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


def _report_of(path: Path, key: Secret, commit: str | None, where: str = "app.env") -> None:
    """A hand-written report: a fingerprint, a hint and a place; never the key."""
    finding = {
        "rule": "anthropic-api-key",
        "severity": "critical",
        "path": where,
        "line": 1,
        "column": 1,
        "redacted": key.hint,
        "fingerprint": key.fingerprint,
    }
    if commit:
        finding["commit"] = commit
    path.write_text(json.dumps({"findings": [finding], "stats": {}}))


@pytest.mark.parametrize("where", ["other repo", "not a repo", "no git"])
def test_from_scan_with_commits_git_cannot_read_is_not_acted_on(
    incident: Incident, tmp_path: Path, where: str
) -> None:
    key_id, key = incident.mint("dev-1", created_at=datetime.now(UTC) - timedelta(days=3))
    incident.serve("dev", key)  # a store holds it, but a hint or a store is never enough
    repo = tmp_path / "repo"
    repo.mkdir()
    if where == "other repo":
        _git(repo, "init", "-q")
        _git(repo, "commit", "-q", "--allow-empty", "-m", "unrelated")
    report = tmp_path / "scan.json"
    _report_of(report, key, "0123456789abcdef0123456789abcdef01234567")
    extra_env = {"PATH": str(tmp_path / "empty-bin")} if where == "no git" else {}

    run = incident.revoke("--from-scan", str(report), "--repo", str(repo), "--yes", env=extra_env)

    assert run.code == 1, run.err
    assert "not acted on" in run.err and "0123456789ab" in run.err
    assert incident.status(key_id) == "active"
    assert incident.sandbox.writes() == []


def test_a_planted_look_alike_in_a_repo_never_deactivates_the_real_key(
    incident: Incident, tmp_path: Path
) -> None:
    prod_id, prod = incident.mint("prod-api")
    incident.serve("prod", prod)
    forged = _look_alike(prod)
    incident.secrets.append(forged)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.py").write_text(f'API_KEY = "{forged.reveal()}"\n')
    report = tmp_path / "scan.json"
    (finding,) = _scan(repo, report, ".")
    assert finding["redacted"] == prod.hint  # the report shows the real key's hint

    run = incident.revoke("--from-scan", str(report), "--repo", str(repo), "--yes")

    assert run.code == 1, run.err
    assert "look-alike" in run.err and prod_id in run.err
    assert incident.sandbox.writes() == []
    assert incident.status(prod_id) == "active"
    assert incident.served("prod") == [prod, prod]


def test_a_finding_whose_text_changed_since_the_scan_is_reported_not_acted_on(
    incident: Incident, tmp_path: Path
) -> None:
    real_id, real = incident.mint("ci-1")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".env").write_text(f"ANTHROPIC_API_KEY={real.reveal()}\n")
    report = tmp_path / "scan.json"
    _scan(repo, report, ".")
    other_id, other = incident.mint("ci-2")
    (repo / ".env").write_text(f"ANTHROPIC_API_KEY={other.reveal()}\n")  # changed since

    run = incident.revoke("--from-scan", str(report), "--repo", str(repo), "--yes")

    assert run.code == 1, run.err
    assert "changed since the scan" in run.err
    assert incident.status(real_id) == "active" and incident.status(other_id) == "active"
    assert incident.sandbox.writes() == []


def test_from_scan_reads_a_key_again_from_an_archive_member(
    incident: Incident, tmp_path: Path
) -> None:
    import zipfile

    key_id, key = incident.mint("ci-1")
    repo = tmp_path / "repo"
    repo.mkdir()
    with zipfile.ZipFile(repo / "bundle.zip", "w") as z:
        z.writestr("conf/app.env", f"ANTHROPIC_API_KEY={key.reveal()}\n")
    report = tmp_path / "scan.json"
    (finding,) = _scan(repo, report, ".")
    assert str(finding["path"]).startswith("bundle.zip!")

    run = incident.revoke("--from-scan", str(report), "--repo", str(repo), "--yes")

    assert run.code == 0, run.err
    assert incident.status(key_id) == "inactive"


def test_an_admin_key_in_the_report_is_named_and_the_api_key_still_handled(
    incident: Incident, tmp_path: Path
) -> None:
    key_id, key = incident.mint("ci-1")
    admin_key = generate_key("admin")
    incident.secrets.append(admin_key)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".env").write_text(f"A={key.reveal()}\nB={admin_key.reveal()}\n")
    report = tmp_path / "scan.json"
    assert len(_scan(repo, report, ".")) == 2

    run = incident.revoke("--from-scan", str(report), "--repo", str(repo), "--yes")

    assert run.code == 1, run.err  # one finding not acted on; the rest done
    assert incident.status(key_id) == "inactive"
    assert "not acted on" in run.err and admin_key.hint in run.err and "Console" in run.err
