"""Working-tree scan against `cat` over the same files: one command, one table.

    python bench/tree_bench.py                    # 50 MB and 500 MB corpora, 5 timed runs each
    python bench/tree_bench.py --sizes 50 --repeat 9

Goal (issue 16): `keyguard scan` of a 50 MB tree within 2x the time `cat` takes to read it.
The corpora are bench/scan_bench.py's (bench/out/tree-*/, git-ignored, reused when unchanged).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import corpus, tools  # noqa: E402

#: keyguard may take this many times cat's time on the 50 MB tree.
GOAL = 2.0


def _time(
    cmd: list[str], cwd: Path, env: dict[str, str], out: Path, repeat: int
) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user + system, the whole process tree)."""
    tools.measure(cmd, out, cwd, env)  # warm page cache and imports
    runs = [tools.measure(cmd, out, cwd, env) for _ in range(repeat)]
    return statistics.median(r.seconds for r in runs), statistics.median(
        r.cpu_seconds for r in runs
    )


def _user_env(env: dict[str, str], source: bool = False) -> dict[str, str]:
    """Run keyguard as an installed copy runs: from compiled bytecode. (With
    PYTHONDONTWRITEBYTECODE set, every run would compile every module it imports again;
    ``--from-source`` measures that.)"""
    if source:
        return {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "keyguard")], check=True)
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=float, nargs="+", default=[50, 500], help="corpus MB")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per row (median kept)")
    p.add_argument("--seed", type=int, default=20251125)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument(
        "--from-source",
        action="store_true",
        help="no bytecode: every run compiles what it imports (PYTHONDONTWRITEBYTECODE=1)",
    )
    args = p.parse_args(argv)
    out: Path = args.out.resolve()
    env = _user_env(tools.base_env(REPO, out), args.from_source)
    accel = subprocess.run([sys.executable, "-c", "import hyperscan, isal"], capture_output=True)
    default = "hyperscan + isal" if accel.returncode == 0 else "stdlib (no accelerators)"
    rows: list[tuple[str, str, float, float, float]] = []
    verdicts: list[str] = []
    for size in args.sizes:
        cdir = out / f"tree-{size:g}"
        man = corpus.generate(cdir, size, args.seed)
        case = f"{man.bytes / 1e6:.0f} MB, {man.files:,} files"
        cat, cat_cpu = _time(
            tools.sh("find . -type f -print0 | xargs -0 cat > /dev/null"),
            cdir,
            env,
            out / "tree-cat.out",
            args.repeat,
        )
        rows.append((case, "cat (read limit)", cat, cat_cpu, 1.0))
        scan = [sys.executable, "-m", "keyguard", "scan", ".", "-f", "json", "--output"]
        for name, extra in (
            (f"keyguard scan ({default})", {}),
            ("keyguard scan (stdlib)", {"KEYGUARD_SCAN_ENGINE": "stdlib"}),
        ):
            report = out / "tree-keyguard.json"
            secs, cpu = _time(
                [*scan, str(report)], cdir, {**env, **extra}, out / "tree-kg.out", args.repeat
            )
            found = tools.found_keyguard(report)
            planted = {pl.sha256 for pl in man.plants}
            rows.append(
                (case, f"{name}, {len(found & planted)}/{len(planted)} keys", secs, cpu, secs / cat)
            )
            if size == 50 and not extra:
                ok = secs / cat <= GOAL
                verdicts.append(
                    f"{'PASS' if ok else 'MISS'} 50 MB working tree within {GOAL:g}x cat: "
                    f"{secs / cat:.2f}x ({secs:.3f} s vs {cat:.3f} s)"
                )
    load = os.getloadavg()[0]
    print(f"\nload average at the end: {load:.1f} on {os.cpu_count()} cores")
    print("\n| tree | command | seconds | CPU s | x cat |\n|---|---|---:|---:|---:|")
    for case, name, secs, cpu, ratio in rows:
        print(f"| {case} | {name} | {secs:.3f} | {cpu:.3f} | {ratio:.2f} |")
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
