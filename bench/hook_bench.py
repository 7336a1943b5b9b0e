"""How long the pre-commit hook takes to start and pass a clean commit: one command, one table.

    python bench/hook_bench.py              # 21 runs of each row, median kept
    python bench/hook_bench.py --repeat 51

Goal (issue 16): a clean staged scan within 4x a bare `python -c pass`. Each row runs in a
temporary git repository with a staged change of a few source files; nothing is committed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: The hook may take this many times a bare interpreter start.
GOAL = 4.0


def _median(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)  # warm caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _repo(root: Path, files: int) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q")
    for i in range(files):
        (root / f"module_{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 40)
    git("add", ".")


def _user_env(env: dict[str, str]) -> dict[str, str]:
    """Run keyguard as an installed copy runs: from compiled bytecode. (With
    PYTHONDONTWRITEBYTECODE set, every run would compile every module it imports again.)"""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "keyguard")], check=True)
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeat", type=int, default=21, help="timed runs per row (median kept)")
    p.add_argument("--files", type=int, default=5, help="staged files in the commit")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "KEYGUARD_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    env = _user_env(env)
    bindir = Path(sys.executable).parent
    entry = shutil.which("keyguard-scan", path=str(bindir)) or shutil.which("keyguard-scan")
    rows: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _repo(root, args.files)
        py = sys.executable
        rows.append(("python -c pass", _median([py, "-c", "pass"], root, env, args.repeat)))
        rows.append(
            (
                "git diff --cached --quiet",
                _median(["git", "diff", "--cached", "--quiet"], root, env, args.repeat),
            )
        )
        rows.append(
            (
                f"python -m keyguard.scanner.hook ({args.files} staged files)",
                _median([py, "-m", "keyguard.scanner.hook"], root, env, args.repeat),
            )
        )
        if entry:
            rows.append(
                (
                    f"keyguard-scan ({args.files} staged files)",
                    _median([entry], root, env, args.repeat),
                )
            )
        rows.append(
            (
                f"keyguard scan --staged ({args.files} staged files)",
                _median([py, "-m", "keyguard", "scan", "--staged"], root, env, args.repeat),
            )
        )
    base = rows[0][1]
    print("\n| command | ms | x python -c pass |\n|---|---:|---:|")
    for name, secs in rows:
        print(f"| {name} | {secs * 1000:.1f} | {secs / base:.2f} |")
    hook = rows[3][1] if entry else rows[2][1]
    ok = hook / base <= GOAL
    print(f"\n{'PASS' if ok else 'MISS'} hook within {GOAL:g}x python -c pass: {hook / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
