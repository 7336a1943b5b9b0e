"""Run one tool under measurement (wall time, peak RSS) and read which planted keys it found."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

#: Any key-shaped string in a tool's report (gitleaks prints Secret/Match in full).
_KEY = re.compile(r"sk-ant-(?:api03|admin01)-[A-Za-z0-9_-]{93}AA")

#: Runs a command, then prints its wall seconds, its exit code and the peak RSS (KiB) of the
#: largest process in its tree. RUSAGE_CHILDREN of a fresh wrapper counts that command only.
_WRAPPER = """
import json, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
out = open(sys.argv[2], "wb")
t0 = time.perf_counter()
rc = subprocess.run(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=sys.argv[3]).returncode
dt = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps([dt, rc, ru.ru_maxrss, ru.ru_utime + ru.ru_stime]))
"""


@dataclass
class Run:
    """One timed run of one tool."""

    seconds: float
    exit_code: int
    rss_kib: int
    stdout: Path
    cpu_seconds: float


def measure(cmd: list[str], stdout: Path, cwd: Path, env: dict[str, str]) -> Run:
    """Run ``cmd`` once in a fresh wrapper process; stdout goes to ``stdout``."""
    stdout.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, json.dumps(cmd), str(stdout), str(cwd)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    dt, rc, rss, cpu = json.loads(proc.stdout)
    return Run(dt, rc, rss, stdout, cpu)


def sh(script: str) -> list[str]:
    """A shell pipeline as a command list."""
    return ["sh", "-c", script]


def throwaway_venv(root: Path, name: str, package: str, exe: str) -> Path | None:
    """``root/venv-NAME/bin/EXE``, installing ``package`` there first if needed (never globally)."""
    target = root / f"venv-{name}" / "bin" / exe
    if target.exists():
        return target
    print(f"  installing {package} into a throwaway venv under {root} ...", flush=True)
    venv.create(root / f"venv-{name}", with_pip=True)
    pip = [str(root / f"venv-{name}" / "bin" / "python"), "-m", "pip", "install", "-q", package]
    if subprocess.run(pip, capture_output=True).returncode != 0 or not target.exists():
        print(f"  could not install {package}: that tool is left out", flush=True)
        return None
    return target


def which(exe: str) -> str | None:
    """Path of ``exe`` on PATH, or None."""
    return shutil.which(exe)


# ---- reading each tool's report: the set of SHA-256 fingerprints of keys it found ----------


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def found_in_lines(path: Path) -> set[str]:
    """grep -o / rg -o output: one matched key per line."""
    return {_sha(m) for m in _KEY.findall(path.read_text(errors="replace"))}


def found_keyguard(path: Path) -> set[str]:
    """keyguard's JSON report: each finding carries the key's SHA-256 fingerprint."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    return {f["fingerprint"] for f in data.get("findings", []) if "fingerprint" in f}


def keyguard_stats(path: Path) -> dict[str, float]:
    """keyguard's own count of files and bytes scanned (a check that it scanned everything)."""
    try:
        stats: dict[str, float] = json.loads(path.read_text()).get("stats", {})
        return stats
    except (OSError, ValueError):
        return {}


def found_gitleaks(path: Path) -> set[str]:
    """gitleaks' JSON report: key-shaped strings in any finding's Secret or Match."""
    try:
        data = json.loads(path.read_text() or "[]")
    except (OSError, ValueError):
        return set()
    out: set[str] = set()
    for f in data or []:
        for m in _KEY.findall(f"{f.get('Secret', '')} {f.get('Match', '')}"):
            out.add(_sha(m))
    return out


def gitleaks_findings(path: Path) -> int:
    """How many findings gitleaks reported in all."""
    try:
        return len(json.loads(path.read_text() or "[]") or [])
    except (OSError, ValueError):
        return 0


def found_detect_secrets(path: Path, sha1_to_sha256: dict[str, str]) -> tuple[set[str], int]:
    """detect-secrets' baseline: SHA-1 hashes, mapped back to planted keys; plus all it reported."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set(), 0
    hashes = {s["hashed_secret"] for items in data.get("results", {}).values() for s in items}
    return {sha1_to_sha256[h] for h in hashes if h in sha1_to_sha256}, len(hashes)


def base_env(repo: Path, ceiling: Path) -> dict[str, str]:
    """The environment every tool runs in: keyguard importable, the corpus outside any work tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo)
    # bench/out sits inside keyguard's own (git-ignored) tree: stop git discovery there, so the
    # corpus is a plain directory to every tool.
    env["GIT_CEILING_DIRECTORIES"] = str(ceiling)
    env.pop("GITLEAKS_CONFIG", None)
    env.pop("GITLEAKS_CONFIG_TOML", None)
    env["LC_ALL"] = "C"
    return env


def installed_env(env: dict[str, str], source: bool = False) -> dict[str, str]:
    """Run keyguard as an installed copy runs: from compiled bytecode. (With
    PYTHONDONTWRITEBYTECODE set, every run would compile every module it imports again;
    ``--from-source`` measures that.)"""
    if source:
        return {**env, "PYTHONDONTWRITEBYTECODE": "1"}
    package = Path(__file__).resolve().parent.parent / "keyguard"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
