"""The one atomic file write (stdlib only, cheap to import: the scanner's hook uses it).

A temp file beside the target, written, flushed and fsync'd, given its mode, then renamed over
the target: a reader sees the old file or the new one, never half of either, and a crash leaves
no temp file behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["link_target", "write_atomic"]


def link_target(path: Path) -> Path:
    """The file a write to ``path`` should replace: ``path``, or what it links to (the link is
    kept)."""
    try:
        linked = path.is_symlink()
    except OSError:
        linked = False  # unreadable folder: the write that follows reports it
    return Path(os.path.realpath(path)) if linked else path


def write_atomic(
    path: Path,
    text: str,
    *,
    mode: int = 0o644,
    dir_mode: int = 0o777,
    make_folder: bool = True,
    follow_symlinks: bool = False,
    sync_dir: bool = False,
    replace: Callable[[str, str], None] = os.replace,
) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically with ``mode`` (0o600 for private files).

    ``dir_mode`` is for a missing parent folder; without ``make_folder`` a missing folder is
    FileNotFoundError (a report goes where asked, never into folders made for it). With
    ``follow_symlinks``, a symlink at ``path`` stays and the file it points at is replaced.
    With ``sync_dir``, the folder is fsync'd too (the rename itself survives a power cut).
    ``replace`` is the rename (tests swap it to simulate a crash). OSError propagates; the temp
    file is gone by then.
    """
    import tempfile  # not at the top: the scanner's hook imports this module on every commit

    target = link_target(path) if follow_symlinks else path
    folder = target.parent
    if make_folder:
        folder.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        replace(tmp, str(target))
        if sync_dir:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
