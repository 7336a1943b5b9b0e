"""Bare mirrors in the cache, fetched incrementally, with git locked down for hostile URLs.

git runs with: only the file, git, http(s) and ssh transports (no ``ext::``), no terminal
prompt, no system or global config (a user's ``url.insteadOf`` or credential helper does not
apply), and credentials only as ``http.<origin>.extraHeader`` set through ``GIT_CONFIG_*``
environment variables: never in argv, never in the mirror's config, never in a report.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

from keyguard.fleet.sources import Auth, RepoSpec, redact_url

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: How a note says a cached mirror was not trusted (a note of that run, never carried over).
RECLONED = "the cached mirror was cloned again"
GIT_TIMEOUT = 3600.0


class MirrorError(Exception):
    """A clone or fetch failed; the message is already redacted."""


def cache_dir(cache: Path, spec: RepoSpec) -> Path:
    """Where a repository's bare mirror lives: a hash of its identity plus a readable tail."""
    digest = hashlib.sha256(spec.key.encode("utf-8")).hexdigest()[:16]
    tail = _SAFE.sub("-", spec.key.rsplit("/", 1)[-1])[:40].strip(".-") or "repo"
    return cache / f"{digest}-{tail}.git"


def git_env(auth: Auth | None) -> dict[str, str]:
    """The environment every git command of a fleet scan runs in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_ALLOW_PROTOCOL="file:git:http:https:ssh",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ASKPASS="true",  # never ask: a missing credential fails instead of hanging
        SSH_ASKPASS="true",
        GIT_SSH_COMMAND="ssh -o BatchMode=yes",
    )
    config = [
        ("http.followRedirects", "false"),
        ("core.hooksPath", os.devnull),
        # No background maintenance after each fetch: one process less per repository.
        ("maintenance.auto", "false"),
        ("gc.auto", "0"),
        ("fetch.writeCommitGraph", "false"),
        # Git reads a commit's parents from a commit-graph file when there is one, without
        # checking them against the commit: a planted one cuts the history a scan walks (and a
        # multi-pack index names where each object lies). Read the objects themselves.
        ("core.commitGraph", "false"),
        ("core.multiPackIndex", "false"),
    ]
    header = _auth_header(auth)
    if auth is not None and header is not None:
        config.append((f"http.{auth.scope}.extraHeader", header))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def mirror_env(where: Path, auth: Auth | None = None) -> dict[str, str]:
    """The environment of a git run on the mirror ``where``: addressed by ``GIT_DIR`` (git never
    looks in the folders above it, where a shared cache could hold a repository of its own), and
    with the cache folder as a ceiling should git look for one anyway."""
    env = git_env(auth)
    env["GIT_DIR"] = str(where.absolute())
    env["GIT_CEILING_DIRECTORIES"] = str(where.absolute().parent)
    return env


def _auth_header(auth: Auth | None) -> str | None:
    import base64

    if auth is None:
        return None
    if auth.basic:
        return f"Authorization: Basic {auth.basic}"
    token = os.environ.get(auth.token_env or "")
    if not token:
        return None
    pair = base64.b64encode(f"{auth.user}:{token}".encode()).decode()
    return f"Authorization: Basic {pair}"


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
            timeout=GIT_TIMEOUT,
        )
    except FileNotFoundError:
        raise MirrorError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise MirrorError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = next((line for line in reversed(err) if line.strip()), "no message")
        raise MirrorError(f"git {args[0]} failed: {redact_url(last.strip())[:300]}")
    return proc.stdout


#: The config a mirror may hold: what ``clone --mirror`` and keyguard write (name -> the one
#: value allowed, or None for any). Anything else (``core.gitProxy``, ``credential.helper``,
#: ``remote.origin.uploadpack``, ``include.path``, ``url.*.insteadOf``, ``http.proxy``...) could
#: run a command, send a token elsewhere or hide history: such a mirror is cloned again.
_MIRROR_CONFIG: dict[str, str | None] = {
    "core.repositoryformatversion": None,
    "extensions.objectformat": None,
    "core.filemode": None,
    "core.bare": "true",
    "core.ignorecase": None,
    "core.precomposeunicode": None,
    "core.symlinks": None,
    "core.usereplacerefs": "false",
    "remote.origin.url": None,
    "remote.origin.fetch": "+refs/*:refs/*",
    "remote.origin.mirror": "true",
}
#: Files that change what git reads in a repository (other object stores, a cut history, a
#: commit-graph or multi-pack index that git trusts over the objects, a shared git dir): never
#: written by keyguard, so a mirror holding one is cloned again.
_FOREIGN = (
    "objects/info/alternates",
    "objects/info/http-alternates",
    "objects/info/commit-graph",
    "objects/info/commit-graphs",
    "objects/pack/multi-pack-index",
    "objects/pack/multi-pack-index.d",
    "info/grafts",
    "shallow",
)


def _untrusted(where: Path) -> str | None:
    """Why a cached mirror is not one keyguard wrote (None when it is). The cache may be shared
    (a CI cache, a volume): git obeys a repository's own config, which GIT_CONFIG_* can add to
    but not take keys out of."""
    if where.is_symlink() or os.path.lexists(where / "commondir"):
        return "it is a link to another repository"
    # What makes a folder a repository for git: HEAD, objects/ and refs/ (real folders, not
    # links to elsewhere); a ``.git`` inside would be read before the mirror itself.
    for name in ("objects", "refs"):
        if (where / name).is_symlink() or not (where / name).is_dir():
            return f"its {name} is not a folder"
    head_file = where / "HEAD"
    if head_file.is_symlink() or not head_file.is_file():
        return "its HEAD is not a plain file"
    try:
        if _HEAD.fullmatch(head_file.read_bytes()) is None:
            return "its HEAD is not a ref"
    except OSError:
        return "its HEAD is unreadable"
    if os.path.lexists(where / ".git"):
        return "it holds .git"
    for name in _FOREIGN:
        if os.path.lexists(where / name):
            return f"it holds {name}"
    config = where / "config"
    if config.is_symlink() or not config.is_file():
        return "its config is not a plain file"
    try:
        text = config.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return "its config is unreadable"
    # Only the plain lines git itself writes are understood; anything else (a comment, quotes,
    # a backslash, another section spelling) is not trusted: the price is one clone, and this
    # costs no git process per repository and run.
    section = ""
    seen: set[str] = set()
    for line in text.split("\n"):
        if not line:
            continue
        head = _SECTION.fullmatch(line)
        if head is not None:
            section = head.group(1) or f"remote.{head.group(2)}"
            continue
        entry = _ENTRY.fullmatch(line)
        if entry is None or not section:
            return "its config holds a line keyguard does not write"
        key = f"{section}.{entry.group(1)}".lower()
        value = entry.group(2).strip()
        allowed = _MIRROR_CONFIG.get(key, "")
        if key not in _MIRROR_CONFIG or key in seen or allowed not in (None, value.lower()):
            return f"its config sets {shown_name(key)}"
        seen.add(key)
    return None


_HEAD = re.compile(rb"(?:ref: refs/[^\x00-\x20\x7f]+|[0-9a-f]{40}|[0-9a-f]{64})\n?")
_SECTION = re.compile(r'\[(?:(core|extensions)|remote "(origin)")\]')
_ENTRY = re.compile(r'[ \t]*([A-Za-z][A-Za-z0-9-]*) = ([^"\\;#\x00-\x1f\x7f]*)')


def shown_name(name: str) -> str:
    """A config key from a hostile file, fit for a note: short, no control characters."""
    return _SAFE.sub("?", name)[:80]


def update(spec: RepoSpec, cache: Path, notes: list[str] | None = None) -> Path:
    """Clone the mirror, or fetch what changed into it; returns the bare repository. A cached
    mirror whose config or files keyguard did not write is removed and cloned again (with a
    note): it could run commands, send credentials elsewhere or hide history."""
    where = cache_dir(cache, spec)
    env = mirror_env(where, spec.auth)
    if where.is_symlink() or (where / "HEAD").exists():
        why = _untrusted(where)
        if why is not None:
            if notes is not None:
                notes.append(f"{RECLONED}: {why}")
            _remove(where)
    if (where / "HEAD").exists():
        if _origin_url(where) != spec.url:
            _run(["config", "remote.origin.url", spec.url], env, where)
        if _config_value(where, "core.usereplacerefs") is None:
            _run(["config", "core.useReplaceRefs", "false"], env, where)
        fetch = ["fetch", "--prune", "--force", "--quiet", "--no-write-fetch-head"]
        _run([*fetch, "--no-show-forced-updates", "origin"], env, where)
    else:
        cache.mkdir(parents=True, exist_ok=True)
        partial = where.with_name(where.name + ".partial")
        if partial.is_symlink() or partial.exists():
            _remove(partial)
        _run(["clone", "--mirror", "--quiet", "--", spec.url, str(partial)], git_env(spec.auth))
        # A repository's own refs/replace/* (fetched like any ref) must not make git read one
        # commit as another: the scan reads the objects the refs really point to.
        _run(["config", "core.useReplaceRefs", "false"], mirror_env(partial), partial)
        partial.rename(where)
    return where


def _remove(path: Path) -> None:
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)


def _config_value(repo: Path, name: str) -> str | None:
    """One key's value from the mirror's config file (read without git)."""
    section, _, key = name.rpartition(".")
    current = ""
    try:
        text = (repo / "config").read_text("utf-8", "replace")
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]").strip().lower()
        elif current == section:
            k, _, v = line.partition("=")
            if k.strip().lower() == key:
                return v.strip()
    return None


def remote_tips(spec: RepoSpec) -> dict[str, str] | None:
    """Every ref the remote advertises and its object, without fetching anything (one
    ``git ls-remote``: the ref advertisement only); None when the answer looks unusual, so
    that the caller fetches and reads the mirror instead."""
    out = _run(["ls-remote", "--refs", "--", spec.url], git_env(spec.auth))
    found: dict[str, str] = {}
    for line in out.splitlines():
        oid, tab, raw = line.partition(b"\t")
        ref = raw.decode("utf-8", "surrogateescape")
        if not tab or not _OID.fullmatch(oid) or not ref.startswith("refs/") or ref in found:
            return None
        found[ref] = oid.decode()
    return found


def _origin_url(repo: Path) -> str | None:
    """The mirror's origin URL read from its config file (one git process less per fetch)."""
    try:
        text = (repo / "config").read_text("utf-8", "replace")
    except OSError:
        return None
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == '[remote "origin"]' and line.startswith("url"):
            key, _, value = line.partition("=")
            if key.strip() == "url":
                return value.strip()
    return None


def tips(repo: Path) -> dict[str, str]:
    """Every ref of the mirror and the object it points at."""
    found = _read_refs(repo)
    if found is not None:
        return found
    out = _run(["for-each-ref", "--format=%(objectname) %(refname)"], mirror_env(repo), repo)
    found = {}
    for line in out.decode("utf-8", "replace").splitlines():
        oid, _, ref = line.partition(" ")
        if ref:
            found[ref] = oid
    return found


_OID = re.compile(rb"[0-9a-f]{40}")


def _read_refs(repo: Path) -> dict[str, str] | None:
    """The refs read from ``packed-refs`` and ``refs/`` (no git process: this runs once per
    repository per run); None when anything looks unusual, and git is asked instead."""
    found: dict[str, str] = {}
    try:
        packed = (repo / "packed-refs").read_bytes() if (repo / "packed-refs").exists() else b""
        for line in packed.splitlines():
            if line.startswith((b"#", b"^")) or not line:
                continue
            oid, _, ref = line.partition(b" ")
            if not _OID.fullmatch(oid) or not ref.startswith(b"refs/"):
                return None
            found[ref.decode("utf-8", "surrogateescape")] = oid.decode()
        for folder, _, names in os.walk(repo / "refs"):
            for name in names:
                path = Path(folder) / name
                data = path.read_bytes().strip()
                if not _OID.fullmatch(data):
                    return None  # a symbolic ref or something else: let git say
                found[path.relative_to(repo).as_posix()] = data.decode()
    except OSError:
        return None
    return dict(sorted(found.items()))


def still_reachable(repo: Path, old: dict[str, str], now: dict[str, str]) -> bool:
    """True when every old tip is still in the history of some current ref (no rewrite)."""
    current = set(now.values())
    env = mirror_env(repo)
    try:
        for oid in set(old.values()) - current:
            _run(["cat-file", "-e", oid], env, repo)
            out = _run(["for-each-ref", "--count=1", "--contains", oid, "--format=x"], env, repo)
            if not out.strip():
                return False
    except MirrorError:
        return False  # an old tip that is gone or no commit: the history was rewritten
    return True
