"""``keyguard demo`` walks an environment from its static key to federation, offline."""

from __future__ import annotations

import subprocess

from keyguard.keys import API_KEY_RE


def test_the_demo_has_the_keyless_chapter(demo_run: subprocess.CompletedProcess[str]) -> None:
    done = demo_run
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for says in (
        "keyguard wif plan ci",
        "created rule keyguard-ci",
        "exchange: ok",
        "scope: workspace:inference",
        "grace period",
        "ci: federated",
    ):
        assert says in out, says
    assert "sk-ant-oat01-" not in out + done.stderr
    assert not API_KEY_RE.search(out + done.stderr)
