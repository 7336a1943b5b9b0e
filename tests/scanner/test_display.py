"""Report paths: the fast prefix cut gives exactly what ``os.path.relpath`` would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from keyguard.scanner.sources import _display


def _slow(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel.replace(os.sep, "/")


@pytest.mark.parametrize(
    "make",
    [
        lambda d: "a/b.txt",
        lambda d: "./a/../a/b.txt",
        lambda d: ".",
        lambda d: str(d / "a" / "b.txt"),
        lambda d: str(d) + "//a/./b.txt",
        lambda d: str(d),
        lambda d: "../outside.txt",
        lambda d: str(d.parent / "sibling" / "c.txt"),
        lambda d: "/",
    ],
)
def test_display_matches_relpath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make) -> None:  # type: ignore[no-untyped-def]
    here = tmp_path / "here"
    (here / "a").mkdir(parents=True)
    monkeypatch.chdir(here)
    path = make(here)
    assert _display(path) == _slow(path)
