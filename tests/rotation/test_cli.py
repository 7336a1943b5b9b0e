"""The real CLI in a subprocess against the sandbox over HTTP and real file stores."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from keyguard.admin.sandbox import Sandbox
from keyguard.keys import API_KEY_RE, generate_key
from keyguard.stores.interface import Stage
from tests.rotation.conftest import Project, make_project


def test_rotate_with_key_on_stdin_adopts_and_finishes(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert project.served() == [new, new]
    assert project.status_of(old) == "inactive" and project.status_of(new) == "active"
    assert "rotation finished" in done.stdout and old.hint in done.stdout
    text = project.journal.read_text()
    assert not API_KEY_RE.search(text) and new.hint in text


def test_deliver_then_rotate_waits_for_grace(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    done = project.run("deliver", "prod", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert "stored as pending" in done.stdout and project.served() == [old, old]
    done = project.run("rotate", "prod")
    assert done.returncode == 5, done.stderr
    assert "grace period" in done.stdout and project.served() == [new, new]
    assert project.status_of(old) == "active"
    status = project.run("status", "prod")
    assert status.returncode == 0 and "grace period" in status.stdout
    # Another key piped in mid-rotation is refused out loud, never dropped in silence.
    _, other = project.mint("prod-other")
    done = project.run("rotate", "prod", input=other.reveal())
    assert done.returncode == 2 and "in the middle of rotation" in done.stderr


def test_deliver_refuses_a_key_the_organization_does_not_know(project: Project) -> None:
    done = project.run("deliver", "prod", input=generate_key().reveal())
    assert done.returncode == 1 and "no API key with hint" in done.stderr
    assert project.served() == [None, None]


def test_no_key_waits_with_exit_5_and_never_hangs_on_an_open_stdin(project: Project) -> None:
    read_end, write_end = os.pipe()  # a writer that never writes nor closes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "keyguard", "rotate", "prod"],
            stdin=read_end,
            capture_output=True,
            text=True,
            env=project.env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert done.returncode == 5, done.stderr
    assert "waiting for a new key" in done.stdout and "keyguard deliver prod" in done.stdout


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_due_prints_and_posts_a_rotation_request(tmp_path: Path, sandbox: Sandbox) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        project = make_project(tmp_path, sandbox, extra=f'\n[notify]\nwebhook = "{hook}"\n')
        _, old = project.mint("prod-legacy", created_at=datetime.now(UTC) - timedelta(days=85))
        project.seed(old)
        done = project.run("rotate", "--due")
    finally:
        server.shutdown()
    assert done.returncode == 5, done.stderr
    name = f"prod-{datetime.now(UTC):%Y%m%d}"
    assert name in done.stdout and project.workspace in done.stdout
    assert "keyguard deliver prod" in done.stdout
    (payload,) = _Hook.received
    assert name in payload["text"] and payload["workspace"] == project.workspace


def test_due_leaves_a_fresh_key_alone(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    done = project.run("rotate", "--due")
    assert done.returncode == 0 and "not due" in done.stdout


def test_dry_run_changes_nothing(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    before = [Path(u.removeprefix("file:")).read_bytes() for u in project.stores]
    done = project.run("rotate", "prod", "--dry-run", input=new.reveal())
    assert done.returncode == 0, done.stderr
    assert "would store the new key" in done.stdout and "dry run" in done.stdout
    assert [Path(u.removeprefix("file:")).read_bytes() for u in project.stores] == before
    assert not project.journal.exists()
    assert project.status_of(old) == "active"


def test_rollback_serves_the_previous_key_again(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert project.run("rotate", "prod", "--grace", "0", input=new.reveal()).returncode == 0
    assert project.status_of(old) == "inactive"
    done = project.run("rollback", "prod", "--yes")
    assert done.returncode == 0, done.stderr
    assert project.served() == [old, old] and project.status_of(old) == "active"


def test_two_concurrent_rotates_exactly_one_proceeds(tmp_path: Path, sandbox: Sandbox) -> None:
    gate = tmp_path / "gate"
    project = make_project(
        tmp_path,
        sandbox,
        check=f"touch {gate}.in; i=0; while [ ! -e {gate}.go ] && [ $i -lt 600 ]; "
        "do sleep 0.05; i=$((i+1)); done",
    )
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    keyfile = tmp_path / "new.key"
    keyfile.write_text(new.reveal())
    keyfile.chmod(0o600)
    with keyfile.open() as stdin:
        first = subprocess.Popen(
            [sys.executable, "-m", "keyguard", "rotate", "prod", "--grace", "0"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=project.env(),
        )
    for _ in range(1200):  # the first run sits in its verify step, holding the lease
        if Path(f"{gate}.in").exists() or first.poll() is not None:
            break
        threading.Event().wait(0.05)
    second = project.run("rotate", "prod", "--grace", "0")
    Path(f"{gate}.go").touch()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 5
    assert "another keyguard run is rotating" in second.stderr
    assert project.served() == [new, new] and project.status_of(old) == "inactive"


def test_demo_exits_0_without_credentials(demo_run: subprocess.CompletedProcess[str]) -> None:
    done = demo_run
    assert done.returncode == 0, done.stderr
    assert "still carries traffic" in done.stdout and "is inactive" in done.stdout
    assert not API_KEY_RE.search(done.stdout + done.stderr)


def test_deliver_on_a_terminal_says_what_to_create_and_hides_the_key(project: Project) -> None:
    import pty

    _, new = project.mint(f"prod-{datetime.now(UTC):%Y%m%d}")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.execve(
            sys.executable, [sys.executable, "-m", "keyguard", "deliver", "prod"], project.env()
        )
    seen = b""
    while b"New key" not in seen:
        chunk = os.read(fd, 4096)
        assert chunk, seen
        seen += chunk
    os.write(fd, new.reveal().encode() + b"\r")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert f"prod-{datetime.now(UTC):%Y%m%d}" in text and project.workspace in text
    assert "stored as pending" in text
    assert not API_KEY_RE.search(text), "the key was echoed"


def _on_a_terminal(
    project: Project, args: list[str], script: list[tuple[bytes, bytes]]
) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal; for each (expected, reply) wait for it, then type."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a terminal
        os.execve(sys.executable, [sys.executable, "-m", "keyguard", *args], project.env())
    seen = b""
    for expected, reply in script:
        while expected not in seen:
            chunk = os.read(fd, 4096)
            assert chunk, seen
            seen += chunk
        os.write(fd, reply + b"\r")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert not API_KEY_RE.search(text), "a key was echoed"
    return os.waitstatus_to_exitcode(status), text


def test_rotate_on_a_terminal_without_yes_shows_the_plan_and_asks(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint(f"prod-{datetime.now(UTC):%Y%m%d}")
    key = new.reveal().encode()
    code, text = _on_a_terminal(
        project, ["rotate", "prod", "--grace", "0"], [(b"New key", key), (b"Go ahead?", b"n")]
    )
    assert code == 130, text
    assert "would store the new key" in text and "would revoke" in text
    assert project.served() == [old, old] and not project.journal.exists()
    code, text = _on_a_terminal(
        project, ["rotate", "prod", "--grace", "0"], [(b"New key", key), (b"Go ahead?", b"y")]
    )
    assert code == 0 and "rotation finished" in text, text
    assert project.served() == [new, new] and project.status_of(old) == "inactive"


def test_continuing_on_a_terminal_without_yes_asks_before_revoking(project: Project) -> None:
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert project.run("deliver", "prod", input=new.reveal()).returncode == 0
    code, text = _on_a_terminal(project, ["rotate", "prod", "--grace", "0"], [(b"Go ahead?", b"n")])
    assert code == 130 and "would revoke" in text, text
    assert project.served() == [old, old] and project.status_of(old) == "active"
    code, text = _on_a_terminal(project, ["rotate", "prod", "--grace", "0", "--yes"], [])
    assert code == 0 and "Go ahead?" not in text, text
    assert project.served() == [new, new] and project.status_of(old) == "inactive"


def test_all_and_due_cover_every_environment(project: Project) -> None:
    dev_store = project.root / "stores" / "dev.json"
    with (project.root / "keyguard.toml").open("a") as fh:
        fh.write(f'\n[environments.dev]\nstores = ["file:{dev_store}"]\n')
    _, old = project.mint("prod-legacy")
    project.seed(old)
    dev_id, dev_old = project.mint("dev-legacy")
    dev_store.write_text(dev_old.reveal() + "\n")
    dev_store.chmod(0o600)
    _, new = project.mint("prod-20261125")
    assert project.run("deliver", "prod", input=new.reveal()).returncode == 0
    # A key piped into a run over several environments is refused, not silently dropped.
    _, stray = project.mint("stray")
    for args in (["--all"], ["--due"], ["prod", "dev"]):
        refused = project.run("rotate", *args, "--yes", input=stray.reveal())
        assert refused.returncode == 2 and "belongs to one" in refused.stderr, refused.stderr
    # --due: the delivered prod key is put in service; dev's fresh key is left alone.
    done = project.run("rotate", "--due", "--grace", "10m", "--yes")
    assert done.returncode == 5, done.stderr
    assert "grace period" in done.stdout and "dev: not due" in done.stdout
    assert project.served() == [new, new]
    # --all: prod finishes; dev, though not due, gets a rotation request (exit 5 overall).
    done = project.run("rotate", "--all", "--grace", "0", "--yes")
    assert done.returncode == 5, done.stderr
    assert "prod: rotation finished" in done.stdout
    assert "keyguard deliver dev" in done.stdout and "*dev*" in done.stdout
    assert project.status_of(old) == "inactive"
    assert project.run("rotate", "--due", "--yes").returncode == 0  # nothing due now
    both = project.run("rotate", "--all", "--due")
    assert both.returncode == 2 and "exactly one" in both.stderr
    status = project.run("status")
    assert status.returncode == 0 and status.stdout.count("waiting for:") == 2
    assert dev_id in status.stdout


def test_due_with_a_dead_webhook_warns_and_still_prints_the_request(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = f"http://127.0.0.1:{port}/hook"
    project = make_project(tmp_path, sandbox, extra=f'\n[notify]\nwebhook = "{hook}"\n')
    _, old = project.mint("prod-legacy", created_at=datetime.now(UTC) - timedelta(days=85))
    project.seed(old)

    done = project.run("rotate", "--due")

    assert done.returncode == 5, done.stderr
    assert "keyguard: warning:" in done.stderr
    assert f"http://127.0.0.1:{port}/…" in done.stderr and hook not in done.stderr  # redacted
    assert f"prod-{datetime.now(UTC):%Y%m%d}" in done.stdout
    assert "keyguard deliver prod" in done.stdout


def test_custom_key_name_template_reaches_the_rotation_request(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(
        tmp_path, sandbox, extra='key_name = "{env}-{service}-{date:%Y%m}"\nservice = "billing"\n'
    )
    _, old = project.mint("prod-legacy", created_at=datetime.now(UTC) - timedelta(days=85))
    project.seed(old)

    done = project.run("rotate", "--due")

    assert done.returncode == 5, done.stderr
    assert f"'prod-billing-{datetime.now(UTC):%Y%m}'" in done.stdout
    status = project.run("status", "prod")
    assert f"'prod-billing-{datetime.now(UTC):%Y%m}'" in status.stdout


def test_deliver_refuses_a_key_of_another_workspace(tmp_path: Path, sandbox: Sandbox) -> None:
    project = make_project(tmp_path, sandbox)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    elsewhere = sandbox.add_workspace("staging")
    _, stray = sandbox.mint_key("prod-20261125", workspace_id=elsewhere)

    done = project.run("deliver", "prod", input=stray.reveal())

    assert done.returncode == 2, done.stderr
    assert f"belongs to workspace {elsewhere}" in done.stderr and project.workspace in done.stderr
    assert project.served() == [old, old]
    assert [s.get(Stage.PENDING) for s in project.open_stores()] == [None, None]
    assert not project.journal.exists()


def test_workspace_mismatch_at_verify_serves_the_old_key_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    _, new = project.mint("prod-20261125")
    assert project.run("deliver", "prod", input=new.reveal()).returncode == 0
    # The environment moves to another workspace while the delivered key waits as pending.
    moved = sandbox.add_workspace("prod-eu")
    toml = project.root / "keyguard.toml"
    toml.write_text(toml.read_text().replace(project.workspace, moved))

    done = project.run("rotate", "prod", "--grace", "0", "--yes")

    assert done.returncode == 2, done.stderr
    # verify sends anthropic-workspace-id: the key cannot reach the environment's workspace
    assert f"cannot reach workspace {moved}" in done.stderr
    assert project.served() == [old, old]  # not promoted for good: the old key serves again
    assert project.status_of(old) == "active" and project.status_of(new) == "active"
    entries = [json.loads(line) for line in project.journal.read_text().splitlines()]
    closed = [e for e in entries if (e["step"], e["phase"]) == ("verify", "closed")]
    assert len(closed) == 1 and "workspace" in closed[0]["reason"]
    assert project.run("rollback", "prod", "--yes").returncode == 2  # never back to it


def test_a_first_key_that_fails_verify_leaves_the_stores_empty_and_shows_the_check(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    check = "echo consumer-on-stdout; echo consumer-on-stderr >&2; exit 3"
    project = make_project(tmp_path, sandbox, check=check)
    _, failed = project.mint("prod-first")
    done = project.run("rotate", "prod", "--grace", "0", "--yes", input=failed.reveal())
    assert done.returncode == 2, done.stdout + done.stderr
    assert "consumer-on-stdout" in done.stderr and "consumer-on-stderr" in done.stderr
    assert "exited 3" in done.stderr and "Traceback" not in done.stderr
    assert project.served() == [None, None]  # as before the rotation: nothing served
    assert [s.get(Stage.PREVIOUS) for s in project.open_stores()] == [None, None]
    # The next run leaves that state: a key that passes goes in, nothing is left behind.
    toml = project.root / "keyguard.toml"
    toml.write_text(toml.read_text().replace(f"check = {check!r}\n", ""))
    assert "check" not in toml.read_text()
    _, good = project.mint("prod-second")
    again = project.run("rotate", "prod", "--grace", "0", "--yes", input=good.reveal())
    assert again.returncode == 0, again.stdout + again.stderr
    assert project.served() == [good, good]
    assert [s.get(Stage.PREVIOUS) for s in project.open_stores()] == [None, None]
    assert project.status_of(failed) == "active"  # never served: keyguard leaves it alone
