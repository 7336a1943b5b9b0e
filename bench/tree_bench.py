"""Working-tree scan against `cat` over the same files: one command, one table.

    python bench/tree_bench.py                    # 50 MB and 500 MB corpora, 5 timed runs each
    python bench/tree_bench.py --sizes 50 --repeat 9

Goal (issue 16): `keyguard scan` of a 50 MB tree within 2x the time `cat` takes to read it.
The corpora are bench/scan_bench.py's (bench/out/tree-*/, git-ignored, reused when unchanged).

Rows: `keyguard scan . -f json --output FILE` (the JSON report tells which planted keys were
found), the plain `keyguard scan .` (no option: it starts without click; its text report is
counted), the same JSON scan in one process (`--jobs 1`: what the worker pool costs or buys),
and with `KEYGUARD_SCAN_ENGINE=stdlib`. Each keyguard row alternates with a `cat` run, so both
see the same load; "x cat" compares wall times, "CPU x cat" CPU seconds (user + system).
"""

from __future__ import annotations

import argparse
import os
import re
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
    cmd: list[str], cwd: Path, env: dict[str, str], out: Path, repeat: int, cat: list[str]
) -> tuple[float, float, float, float]:
    """Median wall and CPU seconds (user + system, the whole process tree) of ``cmd``, and of
    ``cat`` run just before each of its runs (so a ratio compares runs under the same load)."""
    tools.measure(cmd, out, cwd, env)  # warm page cache and imports
    cats, runs = [], []
    for _ in range(repeat):
        cats.append(tools.measure(cat, out.with_suffix(".cat"), cwd, env))
        runs.append(tools.measure(cmd, out, cwd, env))
    med = statistics.median
    return (
        med(r.seconds for r in runs),
        med(r.cpu_seconds for r in runs),
        med(r.seconds for r in cats),
        med(r.cpu_seconds for r in cats),
    )


def _text_findings(report: Path) -> int:
    """Findings in a text report: one ``PATH:LINE:COLUMN: RULE`` line each."""
    text = report.read_text("utf-8", "replace")
    return len(re.findall(r"^\S.*:\d+:\d+: anthropic-", text, re.MULTILINE))


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
    env = tools.installed_env(tools.base_env(REPO, out), args.from_source)
    accel = subprocess.run([sys.executable, "-c", "import hyperscan, isal"], capture_output=True)
    default = "hyperscan + isal" if accel.returncode == 0 else "stdlib (no accelerators)"
    rows: list[tuple[str, str, float, float, float, float]] = []
    verdicts: list[str] = []
    loads = [os.getloadavg()[0]]
    cat_cmd = tools.sh("find . -type f -print0 | xargs -0 cat > /dev/null")
    for size in args.sizes:
        cdir = out / f"tree-{size:g}"
        man = corpus.generate(cdir, size, args.seed)
        case = f"{man.bytes / 1e6:.0f} MB, {man.files:,} files"
        planted = {pl.sha256 for pl in man.plants}
        report = out / "tree-keyguard.json"
        scan = [sys.executable, "-m", "keyguard", "scan", "."]
        json_out = ["-f", "json", "--output", str(report)]
        cases: list[tuple[str, list[str], dict[str, str]]] = [
            (f"keyguard scan . -f json -o FILE ({default})", [*scan, *json_out], {}),
            (f"keyguard scan . ({default}; no click)", scan, {}),
            (
                f"keyguard scan . --jobs 1 -f json -o FILE ({default})",
                [*scan, "--jobs", "1", *json_out],
                {},
            ),
            (
                "keyguard scan . -f json -o FILE (stdlib)",
                [*scan, *json_out],
                {"KEYGUARD_SCAN_ENGINE": "stdlib"},
            ),
        ]
        cats: list[tuple[float, float]] = []
        for name, cmd, extra in cases:
            stdout = out / "tree-kg.out"
            secs, cpu, cat, cat_cpu = _time(
                cmd, cdir, {**env, **extra}, stdout, args.repeat, cat_cmd
            )
            cats.append((cat, cat_cpu))
            if "-f" in cmd:
                found = f"{len(tools.found_keyguard(report) & planted)}/{len(planted)} keys"
            else:
                found = f"{_text_findings(stdout)} findings"
            rows.append((case, f"{name}, {found}", secs, cpu, secs / cat, cpu / cat_cpu))
            loads.append(os.getloadavg()[0])
            if size == 50 and not extra and "--jobs" not in cmd:
                ok = secs / cat <= GOAL
                verdicts.append(
                    f"{'PASS' if ok else 'MISS'} 50 MB working tree within {GOAL:g}x cat, "
                    f"`{' '.join(cmd[3:]).replace(str(report), 'FILE')}`: {secs / cat:.2f}x "
                    f"({secs:.3f} s vs {cat:.3f} s; CPU {cpu / cat_cpu:.2f}x)"
                )
        cat = statistics.median(c for c, _ in cats)
        cat_cpu = statistics.median(c for _, c in cats)
        rows.insert(-len(cases), (case, "cat (read limit)", cat, cat_cpu, 1.0, 1.0))
    print(
        f"\nload average (1 min) during the run: {min(loads):.1f} to {max(loads):.1f} "
        f"on {os.cpu_count()} cores"
    )
    print("\n| tree | command | seconds | CPU s | x cat | CPU x cat |")
    print("|---|---|---:|---:|---:|---:|")
    for case, name, secs, cpu, ratio, cpu_ratio in rows:
        print(f"| {case} | {name} | {secs:.3f} | {cpu:.3f} | {ratio:.2f} | {cpu_ratio:.2f} |")
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
