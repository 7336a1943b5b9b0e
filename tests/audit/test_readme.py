"""docs/audit.md's example: its commands, run as shown, print the report it shows."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AUDIT = ROOT / "docs" / "audit.md"


def audit_section() -> str:
    text = AUDIT.read_text("utf-8")
    start = text.index("## Try it in the sandbox")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def normalise(text: str) -> list[str]:
    """Lines with what changes from run to run (ids, hints, dates) replaced, right-stripped."""
    text = re.sub(r"(apikey|user)_[0-9A-Za-z]+", r"\1_ID", text)
    text = re.sub(r"sk-ant-api03-\S{3}\.\.\.\S{4}", "HINT", text)
    text = re.sub(r"\d{4}-\d\d-\d\d( \d\d:\d\d)?", "DATE", text)
    return [line.rstrip() for line in text.splitlines()]


def test_the_audit_example_is_the_real_output(tmp_path: Path) -> None:
    section = audit_section()
    (commands,) = re.findall(r"```console\n(.*?)```", section, re.S)
    shown = re.findall(r"```text\n(.*?)```", section, re.S)[0]
    # Same commands in a fresh folder holding examples/, waiting for the sandbox, not `sleep 2`.
    script = commands.replace("sleep 2", "until grep -q ADMIN_KEY sandbox.env; do sleep 0.1; done")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    run_dir = tmp_path / "kg-audit"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env["PYTHONPATH"] = str(ROOT)
    assert script.startswith("python examples/audit_demo.py kg-audit")
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # interleaved, as on a terminal
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    first = next(i for i, x in enumerate(lines) if "keyguard audit, " in x)
    last = next(i for i, x in enumerate(lines) if "written to audit.md" in x)
    assert normalise("\n".join(lines[first : last + 1])) == normalise(shown.rstrip("\n"))
    assert "exit 0" in lines[last:]  # `--fail-on due prod dev`: both are ok
    assert (run_dir / "audit.md").read_text().startswith("# keyguard audit, ")
    assert "<svg" in (run_dir / "audit.html").read_text()
    assert (run_dir / "audit.csv").read_text().startswith("kind,environment,verdict,")
    doc = json.loads((run_dir / "prod-dev.json").read_text())
    assert [e["name"] for e in doc["environments"]] == ["prod", "dev"]
