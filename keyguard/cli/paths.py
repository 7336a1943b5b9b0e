"""Paths the command line will write: checked before any work (or any irreversible write).

Cheap to import (no click, no configuration): a plain `keyguard scan -o FILE` uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyguard.errors import UsageError
from keyguard.scanner.unread import shown


def check_writable(path: str, option: str) -> None:
    """UsageError now, before any work (or any irreversible write), if ``path`` can't be written."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    problem = None
    if target.is_dir():
        problem = "it is a folder"
    elif target.exists() and not os.access(target, os.W_OK):
        problem = "the file is not writable"
    elif not target.exists() and folder.exists() and not folder.is_dir():
        problem = f"{folder} is not a folder"
    elif not target.exists() and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        problem = f"the folder {folder} is not writable"
    if problem:
        raise UsageError(
            f"{option} {shown(path)}: cannot write there ({shown(problem)}); choose another path"
        )
