"""What to scan: work-tree files, staged blobs, blobs of history, each as a ``Target``."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keyguard.errors import UsageError
from keyguard.scanner.unread import Unread, shown

#: What a listing reports besides targets: remarks, and what it could not read.
Notes = list[str | Unread]


@dataclass(frozen=True)
class Target:
    """One thing to read: a file (``fs_path``) or a git blob (``oid`` in ``repo``)."""

    path: str  # what reports show
    size: int
    fs_path: str | None = None
    oid: str | None = None
    repo: str | None = None
    commit: str | None = None
    tree: bool = False  # a git tree: only the names of its entries are scanned


@dataclass
class Listing:
    """Targets plus what could not be listed (symlink loops, unreadable folders)."""

    targets: list[Target] = field(default_factory=list)
    notes: Notes = field(default_factory=list)


def _git(args: list[str], cwd: str | Path, env: dict[str, str] | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, env=env or git_env()
        )
    except FileNotFoundError:
        raise UsageError("git is not installed; install it or scan a plain folder") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise UsageError(f"git {' '.join(args[:2])} failed in {cwd}: {err}")
    return proc.stdout


def git_env() -> dict[str, str]:
    """The environment of every git the scanner runs. A repository's own ``refs/replace/*``
    (``git replace``: fetched and pushed like any ref) would make git show other commits and
    blobs in place of the real ones, and hide a key: a scan reads the objects themselves."""
    env = dict(os.environ)
    env.setdefault("LC_ALL", "C")
    env["GIT_NO_REPLACE_OBJECTS"] = "1"
    return env


def git_toplevel(path: str | Path) -> Path | None:
    """The work tree holding ``path``, or None when it is not in one."""
    where = Path(path)
    folder = where if where.is_dir() else where.parent
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=folder or ".",
            capture_output=True,
            check=False,
        )
    except (FileNotFoundError, NotADirectoryError):
        return None
    if proc.returncode != 0:
        return None
    return Path(os.fsdecode(proc.stdout.rstrip(b"\n")))


def _display(path: str) -> str:
    # relpath() costs two abspath() calls per file (measured: ~20% of listing a 12,800-file
    # tree); a path under the current folder only needs its prefix cut.
    cwd = os.getcwd()
    full = os.path.normpath(os.path.join(cwd, path))
    prefix = cwd if cwd.endswith(os.sep) else cwd + os.sep
    if full.startswith(prefix):
        return full[len(prefix) :].replace(os.sep, "/")
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


def iter_paths(paths: list[str], notes: Notes) -> Iterator[Target]:
    """Files under ``paths``: in a git work tree tracked + untracked-not-ignored, else all.

    Yielded as they are found, so a scan can start before the walk ends; what cannot be listed
    is appended to ``notes``. A path that does not exist raises here, before any walk."""
    found: list[tuple[str, os.stat_result | None]] = []
    for arg in paths:
        try:
            found.append((arg, os.stat(arg)))
        except OSError as exc:
            if not os.path.lexists(arg):
                raise UsageError(f"{shown(arg)}: no such file or folder; check the path") from None
            found.append((arg, None))
            notes.append(Unread(arg, "unreadable", f"cannot read ({exc.strerror})"))
    return _iter_found(found, notes)


def _iter_found(found: list[tuple[str, os.stat_result | None]], notes: Notes) -> Iterator[Target]:
    seen: set[tuple[int, int]] = set()
    for arg, st in found:
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISREG(st.st_mode):
            notes.append(  # a FIFO, socket or device named on the command line: never silent
                Unread(
                    _display(arg),
                    "unreadable",
                    "not a regular file (a pipe, socket or device); scan a stream with "
                    "`keyguard scan -`",
                )
            )
        elif not stat.S_ISDIR(st.st_mode):
            if (t := _add_file(arg, notes, seen)) is not None:
                yield t
        elif (top := git_toplevel(arg)) is not None:
            yield from _list_git(arg, top, notes, seen)
        else:
            yield from _walk(arg, notes, seen)


def _add_file(
    path: str,
    notes: Notes,
    seen: set[tuple[int, int]],
    shown: str | None = None,
    entry: os.DirEntry[str] | None = None,
    st: os.stat_result | None = None,
) -> Target | None:
    """The file at ``path`` as a target; None when it is no regular file or was seen already."""
    try:
        if st is None:
            st = entry.stat() if entry is not None else os.stat(path)
    except OSError as exc:
        if os.path.islink(path) or os.path.exists(path):
            notes.append(
                Unread(shown or _display(path), "unreadable", f"cannot read ({exc.strerror})")
            )
        return None  # tracked but deleted from the work tree: nothing to read
    if not stat.S_ISREG(st.st_mode):
        return None
    ident = (st.st_dev, st.st_ino)
    if ident in seen:
        return None
    seen.add(ident)
    return Target(shown or _display(path), st.st_size, fs_path=path)


def _inside(path: str, root: str) -> bool:
    """Whether ``path``, links resolved, is ``root`` (a real path) or lies under it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _list_git(folder: str, top: Path, notes: Notes, seen: set[tuple[int, int]]) -> Iterator[Target]:
    """What git lists. A link whose target stays in the work tree is read after every listed
    file (so a finding names the file itself when git lists it too; a target git ignores, a
    local ``.env``, is read through the link); a link out of the work tree (a file beside the
    checkout, ``/proc/self/environ``) is never followed."""
    out = _git(["ls-files", "-z", "--cached", "--others", "--exclude-standard"], folder)
    root = os.path.realpath(top)
    links: list[str] = []
    for raw in out.split(b"\0"):
        if not raw:
            continue
        path = os.path.join(folder, os.fsdecode(raw))
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            if _inside(path, root):
                links.append(path)
            else:
                notes.append(f"{_display(path)}: symlink to outside the work tree, not followed")
            continue
        if (t := _add_file(path, notes, seen, st=st)) is not None:
            yield t
    for path in links:
        if (t := _add_file(path, notes, seen)) is not None:
            yield t


def _walk(root: str, notes: Notes, seen: set[tuple[int, int]]) -> Iterator[Target]:
    """Depth first, names sorted, symlinked folders followed once (a loop is noted)."""
    visited: set[tuple[int, int]] = set()
    links: list[tuple[str, str, os.DirEntry[str]]] = []
    stack: list[tuple[str, str]] = [(root, _display(root))]
    real_root = os.path.realpath(root)
    while stack:
        folder, shown = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in visited:
            notes.append(f"{shown}: symlink loop, not followed again")
            continue
        visited.add(ident)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            notes.append(Unread(shown, "unreadable", f"cannot read folder ({exc.strerror})"))
            continue
        prefix = "" if shown == "." else shown.rstrip("/") + "/"
        subdirs: list[tuple[str, str]] = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if e.is_symlink() and not _inside(e.path, real_root):
                # A link out of the folder (a file beside it, /proc/self/environ) is not what
                # was asked for: only a path named on the command line is followed anywhere.
                notes.append(
                    f"{prefix + e.name}: symlink to outside the scanned folder, not followed"
                )
                continue
            if is_dir:
                subdirs.append((e.path, prefix + e.name))
            elif e.is_symlink():
                # A link is read after every real file, so a finding names the file itself.
                links.append((e.path, prefix + e.name, e))
            else:
                if (t := _add_file(e.path, notes, seen, prefix + e.name, e)) is not None:
                    yield t
        stack.extend(reversed(subdirs))
    for path, shown_link, entry in links:
        if (t := _add_file(path, notes, seen, shown_link, entry)) is not None:
            yield t


def _raw_entries(out: bytes) -> Iterator[tuple[str, str, str]]:
    """(new mode, new oid, path) from ``git diff/log --raw -z`` output."""
    parts = out.split(b"\0")
    i = 0
    while i < len(parts):
        head = parts[i]
        if head.startswith(b":") and i + 1 < len(parts):
            fields = head[1:].split(b" ")
            yield fields[1].decode(), fields[3].decode(), os.fsdecode(parts[i + 1])
            i += 2
        else:
            i += 1


def _is_blob(mode: str, oid: str) -> bool:
    return mode in ("100644", "100755", "120000") and oid.strip("0") != ""


def list_staged(cwd: str | Path = ".") -> tuple[Listing, int]:
    """Blobs the index would commit that differ from HEAD, and how many staged files have content
    (additions and changes; deletions and submodule bumps have none to read)."""
    top = git_toplevel(cwd)
    if top is None:
        raise UsageError(f"{Path(cwd).resolve()} is not in a git work tree; --staged needs one")
    out = _git(["diff", "--cached", "--raw", "-z", "--no-abbrev", "--no-renames"], top)
    listing = Listing()
    staged = 0
    oids: list[tuple[str, str]] = []
    for mode, oid, path in _raw_entries(out):
        if _is_blob(mode, oid):
            staged += 1
            oids.append((oid, path))
    sizes = _sizes(top, [oid for oid, _ in oids])
    for oid, path in oids:
        listing.targets.append(Target(path, sizes.get(oid, 0), oid=oid, repo=str(top)))
    return listing, staged


def list_history(rev_range: str | None, cwd: str | Path = ".") -> Listing:
    """Each distinct blob reachable in ``rev_range`` (default all refs) once, with the commit
    and path that introduced it."""
    top = git_toplevel(cwd)
    if top is None:
        raise UsageError(f"{Path(cwd).resolve()} is not in a git work tree; --history needs one")
    if rev_range and rev_range.startswith("-"):
        raise UsageError(f"--history {rev_range!r}: a revision range cannot start with '-'")
    return list_blobs(top, [rev_range] if rev_range else ["--all"], rev_range or "--all")


def list_blobs(
    git_dir: str | Path, revs: list[str], label: str = "--all", env: dict[str, str] | None = None
) -> Listing:
    """Each distinct blob reachable from ``revs`` (rev-list arguments, e.g. ``--all --not
    TIP``) once, with the commit and path that introduced it; ``git_dir`` may be bare. ``env``
    replaces ``git_env()`` for its gits (the fleet's, which names the repository in GIT_DIR)."""
    # One walk that reads each tree once: `rev-list --objects` lists every reachable object
    # once, and with `--topo-order --reverse --in-commit-order` each blob right after the first
    # commit that holds it (parents come first, so one none of whose parents holds it), under
    # its path there. Which objects are blobs, and their sizes, come from the object store's
    # index at the same time. (A `log --raw` walk costs a tree diff per commit: commits x files.)
    top = Path(git_dir)
    walk = ["rev-list", "--objects", "--in-commit-order", "--topo-order", "--reverse"]
    walk += ["--missing=print", *revs]  # a missing blob is named, not a failed walk
    check = ["cat-file", "--batch-all-objects", "--unordered", _BLOB_CHECK]
    try:
        lister = subprocess.Popen(
            ["git", *walk, "--"],
            cwd=top,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env or git_env(),
        )
    except FileNotFoundError:
        raise UsageError("git is not installed; install it or scan a plain folder") from None
    sizes, others = _blob_sizes(_git(check, top, env))
    # Trees too: a key in a file name must be found even when the file's content (an empty
    # file, say) is a blob already listed under another name.
    trees = {oid: size for oid, (kind, size) in others.items() if kind == b"tree"}
    tree_bytes, blob_bytes = sum(trees.values()), sum(sizes.values())
    # Trees are read for names only while they cost at most half as much as the blobs (a long
    # history of a wide tree holds far more tree bytes than content): past that, say so.
    read_trees = tree_bytes <= max(TREE_BYTES, blob_bytes // 2)
    out, err = lister.communicate()
    if lister.returncode != 0:
        msg = err.decode("utf-8", "replace").strip()
        raise UsageError(f"git rev-list {label} failed in {top}: {msg}")
    listing = Listing()
    seen: set[bytes] = set()
    commit = ""
    missing: list[bytes] = []
    for line in out.split(b"\n"):
        oid = line[:40]
        if line.startswith(b"?"):
            missing.append(line[1:41])
        elif len(line) == 40:
            commit = line.decode()
        elif oid in seen:
            continue
        elif oid in trees:
            seen.add(oid)
            size = trees[oid]
            if read_trees:
                listing.targets.append(
                    Target(os.fsdecode(line[41:]), size, oid=oid.decode(), repo=str(top), tree=True)
                )
        elif oid not in sizes:
            if len(line) > 41 and oid not in others:  # a path, but no object at all
                seen.add(oid)
                listing.notes.append(
                    Unread(
                        os.fsdecode(line[41:]),
                        "missing-blob",
                        f"blob {oid.decode()} (commit {commit[:12]}) missing from the repository",
                    )
                )
        else:
            seen.add(oid)
            listing.targets.append(
                Target(
                    os.fsdecode(line[41:]),
                    sizes[oid],
                    oid=oid.decode(),
                    repo=str(top),
                    commit=commit,
                )
            )
    if missing:
        listing.notes.extend(_missing(top, revs, missing, env))
    if not read_trees:
        listing.notes.append(
            Unread(
                top.name,
                "names",
                f"file names of {len(trees)} trees ({tree_bytes >> 20} MiB) not scanned: a file "
                "named with a key is found only under the path that introduced its content; "
                "scan a narrower --history REV-RANGE to read them",
            )
        )
    return listing


def _missing(
    top: Path, revs: list[str], oids: list[bytes], env: dict[str, str] | None = None
) -> Iterator[Unread]:
    """Each missing object named with a path and commit that hold it (a slow walk, but only
    a damaged repository takes it)."""
    where: dict[str, tuple[str, str]] = {}
    wanted = {o.decode() for o in oids}
    out = _git(["log", "--raw", "-z", "--no-abbrev", "--format=%H", "-m", *revs, "--"], top, env)
    parts = [p.lstrip(b"\n") for p in out.split(b"\0")]
    commit = ""
    for i, head in enumerate(parts):
        if len(head) == 40:
            commit = head.decode()
        elif head.startswith(b":") and i + 1 < len(parts):
            oid = head[1:].split(b" ")[3].decode()
            if oid in wanted and oid not in where:
                where[oid] = (os.fsdecode(parts[i + 1]), commit)
    for oid in sorted(wanted):
        path, commit = where.get(oid, (f"<blob {oid}>", ""))
        at = f" (commit {commit[:12]})" if commit else ""
        yield Unread(path, "missing-blob", f"blob {oid}{at} missing from the repository")


#: Tree bytes always worth reading for the names they hold.
TREE_BYTES = 64 << 20

_BLOB_CHECK = "--batch-check=%(objecttype) %(objectname) %(objectsize)"


def _blob_sizes(out: bytes) -> tuple[dict[bytes, int], dict[bytes, tuple[bytes, int]]]:
    """(blob id -> size, other object id -> (type, size)) from ``cat-file --batch-check``."""
    sizes: dict[bytes, int] = {}
    others: dict[bytes, tuple[bytes, int]] = {}
    for line in out.split(b"\n"):
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].isdigit():
            continue
        if parts[0] == b"blob":
            sizes[parts[1]] = int(parts[2])
        else:
            others[parts[1]] = (parts[0], int(parts[2]))
    return sizes, others


def _sizes(top: Path, oids: list[str]) -> dict[str, int]:
    if not oids:
        return {}
    proc = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectname) %(objectsize)"],
        env=git_env(),
        cwd=top,
        input="\n".join(oids).encode() + b"\n",
        capture_output=True,
        check=False,
    )
    sizes: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            sizes[parts[0].decode()] = int(parts[1])
    return sizes
