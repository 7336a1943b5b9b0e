"""keyguard's own repository holds no key: `keyguard scan` over it finds nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_scanning_this_repository_finds_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", str(ROOT), "-f", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["findings"]
    assert report["stats"]["files"] > 30 and report["stats"]["bytes"] > 100_000
