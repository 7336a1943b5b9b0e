"""The scanner reports a workload file where ANTHROPIC_API_KEY shadows federation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.scanner.shadow import shadowed_lines

ROOT = Path(__file__).resolve().parents[2]
BOTH_ENV = "ANTHROPIC_FEDERATION_RULE_ID=fdrl_01abc\nANTHROPIC_API_KEY=\n"
WORKFLOW = """on: push
jobs:
  build:
    env:
      ANTHROPIC_FEDERATION_RULE_ID: fdrl_01abc
      ANTHROPIC_API_KEY: ${{ secrets.KEY }}
"""
MANIFEST = """apiVersion: v1
kind: Pod
spec:
  containers:
    - name: app
      env:
        - name: ANTHROPIC_API_KEY
          valueFrom: {secretKeyRef: {name: k, key: k}}
        - name: "ANTHROPIC_FEDERATION_RULE_ID"
          value: fdrl_01abc
"""
TWO_WORKLOADS = """kind: Pod
env:
  - name: ANTHROPIC_API_KEY
---
kind: Pod
env:
  - name: ANTHROPIC_FEDERATION_RULE_ID
"""


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (BOTH_ENV, [2]),
        ("export ANTHROPIC_API_KEY=x\nexport ANTHROPIC_FEDERATION_RULE_ID=y\n", [1]),
        (WORKFLOW, [6]),
        (MANIFEST, [7]),
        (TWO_WORKLOADS, []),
        ("ANTHROPIC_FEDERATION_RULE_ID=fdrl_01abc\n", []),
        ("# unset ANTHROPIC_API_KEY before using ANTHROPIC_FEDERATION_RULE_ID\n", []),
        ("MY_ANTHROPIC_API_KEY=x\nANTHROPIC_FEDERATION_RULE_ID=y\n", []),
    ],
)
def test_shadowed_lines(text: str, lines: list[int]) -> None:
    assert shadowed_lines(text) == lines


def test_keyguard_scan_reports_the_file_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(BOTH_ENV)
    (tmp_path / "ok.yaml").write_text("env:\n  ANTHROPIC_FEDERATION_RULE_ID: fdrl_01abc\n")
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", str(tmp_path)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 1
    assert ".env:2" in done.stderr
    assert "anthropic-federation-shadowed" in done.stderr
    assert "ok.yaml" not in done.stderr
