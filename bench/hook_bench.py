"""How long the pre-commit hook takes to start and pass a clean commit: one command, one table.

    python bench/hook_bench.py              # 21 runs of each row, median kept
    python bench/hook_bench.py --repeat 51

Goal (issue 16): a clean staged scan within 4x a bare `python -c pass`. Each row runs in a
temporary git repository with a staged change of a few source files; nothing is committed.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import tools  # noqa: E402

#: The hook may take this many times a bare interpreter start.
GOAL = 4.0


def _median(cmd: list[str], cwd: Path, env: dict[str, str], repeat: int) -> tuple[float, float]:
    """Median wall seconds, and median CPU seconds (user + system of the command's processes,
    which a busy machine inflates far less than wall time)."""
    subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)  # warm caches
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def _repo(root: Path, files: int) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q")
    for i in range(files):
        (root / f"module_{i}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 40)
    git("add", ".")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--repeat", type=int, default=21, help="timed runs per row (median kept)")
    p.add_argument("--files", type=int, default=5, help="staged files in the commit")
    p.add_argument(
        "--from-source",
        action="store_true",
        help="no bytecode: every run compiles what it imports (PYTHONDONTWRITEBYTECODE=1)",
    )
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "KEYGUARD_CONFIG"}
    env["PYTHONPATH"] = str(REPO)
    env = tools.installed_env(env, args.from_source)
    bindir = Path(sys.executable).parent
    entry = shutil.which("keyguard-scan", path=str(bindir)) or shutil.which("keyguard-scan")
    rows: list[tuple[str, tuple[float, float]]] = []
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
    (base, base_cpu) = rows[0][1]
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\n| command | ms | x python -c pass | CPU ms | CPU x python -c pass |")
    print("|---|---:|---:|---:|---:|")
    for name, (secs, cpu) in rows:
        print(
            f"| {name} | {secs * 1000:.1f} | {secs / base:.2f} | {cpu * 1000:.1f} "
            f"| {cpu / base_cpu:.2f} |"
        )
    hook, cpu = rows[3][1] if entry else rows[2][1]
    ok = hook / base <= GOAL
    print(
        f"\n{'PASS' if ok else 'MISS'} hook within {GOAL:g}x python -c pass: {hook / base:.2f}x "
        f"(CPU: {cpu / base_cpu:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
