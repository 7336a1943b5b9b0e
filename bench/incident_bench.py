"""How fast does ``keyguard revoke --leaked -`` take a leaked key to inactive?

One command: ``python bench/incident_bench.py [--runs 20] [--keys 2000]``. An in-process
sandbox holds a crowded organization (``--keys`` keys, so the key list is paged); each run
mints a leaked key that prod (two file stores, a new key already delivered) and staging serve,
then runs the real CLI in a subprocess with the key on stdin. It prints the time keyguard
reports from its start to the deactivation, and the whole command's wall time (interpreter
start, imports, store reads, prod's rotation, the usage report), median and p95 against the
issue's 2 s goal. Loopback only; no key is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keyguard.admin.sandbox import Sandbox  # noqa: E402
from keyguard.config import load_config  # noqa: E402
from keyguard.rotation import open_engine  # noqa: E402

GOAL_SECONDS = 2.0


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def one_run(sb: Sandbox, folder: Path, index: int) -> tuple[float, float, int]:
    """One incident in a fresh project; (seconds to deactivation, wall seconds, exit code)."""
    (folder / "keyguard.toml").write_text(
        '[environments.prod]\nstores = ["file:prod-a.json", "file:prod-b.json"]\n\n'
        '[environments.staging]\nstores = ["file:staging.json"]\n'
    )
    _, leaked = sb.mint_key(f"leaked-{index}")
    for name in ("prod-a.json", "prod-b.json", "staging.json"):
        path = folder / name
        path.write_text(leaked.reveal() + "\n")
        path.chmod(0o600)
    _, new = sb.mint_key(f"prod-new-{index}")
    config = load_config(folder / "keyguard.toml")
    with sb.client() as admin:
        open_engine(config, "prod", admin).deliver(new)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        KEYGUARD_CONFIG=str(folder / "keyguard.toml"),
        ANTHROPIC_ADMIN_KEY=sb.admin_key.reveal(),
        ANTHROPIC_BASE_URL=sb.url,
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "revoke", "--leaked", "-", "--yes"],
        input=leaked.reveal() + "\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode not in (0, 5):
        sys.exit(f"run {index}: keyguard revoke exited {done.returncode}:\n{done.stderr}")
    log = folder / ".keyguard" / "incidents.jsonl"
    record = json.loads(log.read_text("utf-8").splitlines()[-1])
    if record["writes"] != 1:
        sys.exit(f"run {index}: {record['writes']} Admin API writes, expected 1")
    return float(record["seconds_to_deactivate"]), wall, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="incidents to time (default 20)")
    parser.add_argument("--keys", type=int, default=2000, help="keys in the organization")
    args = parser.parse_args()
    with Sandbox() as sb, tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        for i in range(args.keys):
            sb.state.mint_key(f"crowd-{i}")
        deact: list[float] = []
        wall: list[float] = []
        for i in range(args.runs):
            folder = Path(tmp) / f"run-{i}"
            folder.mkdir()
            d, w, _ = one_run(sb, folder, i)
            deact.append(d)
            wall.append(w)
    keys = args.keys + 2 * args.runs
    print(f"keyguard revoke --leaked -: {args.runs} runs, organization of {args.keys}+ keys")
    print(f"(about {keys} at the end), in-process sandbox on 127.0.0.1, goal {GOAL_SECONDS:.0f} s")
    print()
    print(f"{'measure':<32} {'median':>8} {'p95':>8} {'max':>8}  {'goal':>6}  verdict")
    for label, values in (
        ("start -> deactivated (keyguard)", deact),
        ("whole command (wall clock)", wall),
    ):
        med, high, top = statistics.median(values), p95(values), max(values)
        verdict = "met" if high < GOAL_SECONDS else "MISSED"
        print(
            f"{label:<32} {med:>7.3f}s {high:>7.3f}s {top:>7.3f}s  {GOAL_SECONDS:>5.1f}s  "
            f"{verdict} (p95)"
        )
    return 0 if p95(deact) < GOAL_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
