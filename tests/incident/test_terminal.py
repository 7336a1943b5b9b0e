"""``keyguard revoke --leaked -`` on a real terminal (a pty): hidden prompt, then confirmation."""

from __future__ import annotations

import os
import pty
import sys

import pytest

from keyguard.keys import API_KEY_RE
from tests.incident.conftest import ROOT, Incident


class Terminal:
    """The real CLI as a child process whose stdin, stdout and stderr are one pty."""

    def __init__(self, incident: Incident, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            KEYGUARD_CONFIG=str(incident.root / "keyguard.toml"),
            ANTHROPIC_ADMIN_KEY=incident.sandbox.admin_key.reveal(),
            ANTHROPIC_BASE_URL=incident.sandbox.url,
            TERM="dumb",
        )
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the real CLI on a terminal
            os.chdir(incident.root)
            os.execve(sys.executable, [sys.executable, "-m", "keyguard", "revoke", *args], env)
        self.seen = b""

    def expect(self, marker: bytes) -> None:
        while marker not in self.seen:
            chunk = os.read(self.fd, 4096)
            assert chunk, self.seen
            self.seen += chunk

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode() + b"\r")

    def finish(self) -> tuple[int, str]:
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status), self.seen.decode(errors="replace")


@pytest.mark.parametrize("answer", ["y", "n"])
def test_hidden_prompt_then_confirmation(incident: Incident, answer: str) -> None:
    key_id, key = incident.mint("prod-1")
    term = Terminal(incident, "--leaked", "-")
    term.expect(b"Leaked key (input hidden)")
    term.type(key.reveal())
    term.expect(b"Go ahead?")
    asked = term.seen.decode(errors="replace")
    assert incident.sandbox.writes() == []  # nothing written before the answer
    term.type(answer)
    code, text = term.finish()

    assert not API_KEY_RE.search(text), "the key was echoed"
    incident.assert_no_leak(text)
    assert f"About to deactivate {key_id}" in asked and key.hint in asked
    if answer == "y":
        assert code == 0, text
        assert incident.status(key_id) == "inactive"
        assert "deactivated" in text and "1 Admin API write" in text
    else:
        assert code == 130, text
        assert incident.status(key_id) == "active"
        assert incident.sandbox.writes() == []
