"""``--verify`` against keyguard's sandbox, ``--executor dask://`` on a real cluster, and the
progress line on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import Secret, generate_key
from tests.fleet.conftest import ROOT, DaskCluster, GitDaemon, Run, comparable, make_repo, report


def test_verify_checks_each_distinct_key_once_and_puts_live_keys_first(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, sandbox: Sandbox
) -> None:
    live_id, live = sandbox.mint_key("prod-1")
    dead_id, dead = sandbox.mint_key("prod-0")
    with sandbox.client() as admin:
        admin.update_key(dead_id, status="inactive")
    admin_key = generate_key("admin")
    # The dead key sorts first by fingerprint order in half the runs: live must still lead.
    make_repo(git_daemon.base, "a", [dead, live])
    make_repo(git_daemon.base, "b", [live, admin_key])
    make_repo(git_daemon.base, "c", [dead])
    (tmp_path / "repos.txt").write_text(
        "\n".join(git_daemon.url(n) for n in ("a", "b", "c")) + "\n"
    )
    before = len(sandbox.request_log())
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        f"@{tmp_path / 'repos.txt'}",
        "--verify",
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
        env={"ANTHROPIC_BASE_URL": sandbox.url},
    )

    assert done.returncode == 1, done.stderr
    keys = report(out)["keys"]
    assert keys[0]["fingerprint"] == live.fingerprint and keys[0]["verdict"] == "live"
    verdicts = {k["fingerprint"]: k["verdict"] for k in keys}
    assert verdicts[dead.fingerprint] == "revoked"
    assert verdicts[admin_key.fingerprint] == "unknown"  # never sent
    log = sandbox.request_log()[before:]
    assert [r[:2] for r in log] == [("GET", "/v1/models")] * 2  # one per distinct API key
    assert sandbox.requests(live_id) == 1
    for key in (live, dead, admin_key):
        assert key.reveal() not in done.stdout + done.stderr + out.read_text()


def test_dask_executor_gives_the_same_report_as_the_local_pool(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, dask_cluster: DaskCluster
) -> None:
    keys = [generate_key() for _ in range(3)]
    names = [f"r{i}" for i in range(6)]
    for i, name in enumerate(names):
        make_repo(git_daemon.base, name, [keys[i % 3]])
    (tmp_path / "repos.txt").write_text("\n".join(git_daemon.url(n) for n in names) + "\n")
    local, remote = tmp_path / "local.json", tmp_path / "dask.json"
    src = f"@{tmp_path / 'repos.txt'}"
    fleet("scan", src, "--cache", str(tmp_path / "c1"), "-f", "json", "-o", str(local))

    done = fleet(
        "scan",
        src,
        "--executor",
        f"dask://{dask_cluster.address}",
        "--cache",
        str(tmp_path / "c2"),
        "-f",
        "json",
        "-o",
        str(remote),
    )

    assert done.returncode == 1, done.stderr
    assert comparable(report(remote)) == comparable(report(local))
    assert report(remote)["stats"]["failed"] == 0


def test_a_dask_scheduler_that_is_not_there_is_a_clear_error(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    from tests.fleet.conftest import free_port

    make_repo(git_daemon.base, "a")
    done = fleet(
        "scan",
        git_daemon.url("a"),
        "--executor",
        f"dask://127.0.0.1:{free_port()}",
        "--cache",
        str(tmp_path / "c"),
    )
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "cannot connect" in done.stderr


def test_progress_on_a_terminal_shows_repositories_bytes_findings_and_the_slowest(
    tmp_path: Path, git_daemon: GitDaemon
) -> None:
    key: Secret = generate_key()
    make_repo(git_daemon.base, "a", [key])
    make_repo(git_daemon.base, "b")
    main, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyguard",
            "fleet",
            "scan",
            git_daemon.url("a"),
            git_daemon.url("b"),
            "--cache",
            str(tmp_path / "c"),
            "-o",
            str(tmp_path / "r.txt"),
        ],
        stderr=follower,
        stdout=subprocess.DEVNULL,
        env=env,
        timeout=120,
        check=False,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    text = shown.decode()
    assert proc.returncode == 1
    assert "2/2 repositories" in text and "1 finding(s)" in text and "MB" in text
    assert "slowest git://127.0.0.1" in text
    assert key.reveal() not in text
