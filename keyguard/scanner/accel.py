"""Optional native accelerators: hyperscan finds every needle in one pass, isal inflates.

Both are imported lazily, on the first scan that needs them, and only when
``KEYGUARD_SCAN_ENGINE`` allows it: ``auto`` (the default) uses whichever is installed,
``stdlib`` uses neither, ``fast`` insists on both. Findings are the same either way: the
accelerators only produce candidate positions and inflated bytes; every check after that
is shared.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import IO, Any

from keyguard.errors import UsageError

ENV = "KEYGUARD_SCAN_ENGINE"
ENGINES = ("auto", "stdlib", "fast")

#: Candidate positions: (needle index, start offset), in any order.
Candidates = list[tuple[int, int]]

_loaded: dict[str, Any] = {}


def engine() -> str:
    """The engine asked for in the environment (``auto`` when unset)."""
    name = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if name not in ENGINES:
        raise UsageError(f"{ENV}={name!r} is not an engine; use one of: {', '.join(ENGINES)}")
    return name


def _module(name: str) -> Any:
    """The accelerator module ``name`` (hyperscan or isal), or None when not installed."""
    if name not in _loaded:
        try:
            if name == "hyperscan":
                import hyperscan

                _loaded[name] = hyperscan
            else:
                from isal import igzip, isal_zlib

                _loaded[name] = (igzip, isal_zlib)
        except ImportError:
            _loaded[name] = None
    return _loaded[name]


def _want(name: str) -> Any:
    chosen = engine()
    if chosen == "stdlib":
        return None
    found = _module(name)
    if found is None and chosen == "fast":
        raise UsageError(
            f"{ENV}=fast needs {name}; install it with `pip install 'keyguard[fast]'`, "
            f"or set {ENV}=auto"
        )
    return found


class Finder:
    """A compiled hyperscan database of literal needles, with its scratch space."""

    def __init__(self, hs: Any, needles: Sequence[bytes]) -> None:
        self.lengths = [len(n) for n in needles]
        self._db = hs.Database(mode=hs.HS_MODE_BLOCK)
        # Each byte written as \xNN: a literal expression would end at its first NUL (C
        # strings), and the UTF-16 needle holds NULs.
        self._db.compile(
            expressions=[b"".join(b"\\x%02x" % c for c in n) for n in needles],
            ids=list(range(len(needles))),
            elements=len(needles),
            flags=[0] * len(needles),
        )

    def find(self, data: Any, base: int = 0) -> Candidates:
        """Every occurrence of every needle in ``data``, overlapping ones included."""
        out: Candidates = []
        lengths = self.lengths

        def on_match(ident: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            out.append((ident, base + to - lengths[ident]))

        self._db.scan(data, match_event_handler=on_match)
        return out


_finders: dict[tuple[bytes, ...], Finder] = {}


def finder(needles: Sequence[bytes]) -> Finder | None:
    """A one-pass multi-needle finder when hyperscan is installed and allowed, else None."""
    hs = _want("hyperscan")
    if hs is None:
        return None
    key = tuple(needles)
    if key not in _finders:
        _finders[key] = Finder(hs, key)
    return _finders[key]


def gzip_file(stream: IO[bytes]) -> Any:
    """A reader of the gzip stream ``stream``: isal's when allowed, else the stdlib's."""
    isal = _want("isal")
    if isal is None:
        import gzip

        return gzip.GzipFile(fileobj=stream, mode="rb")
    return isal[0].GzipFile(fileobj=stream, mode="rb")


def raw_inflater() -> Any:
    """A raw-deflate decompressor (zip members) from isal when allowed, else None."""
    isal = _want("isal")
    return None if isal is None else isal[1].decompressobj(-15)


def inflate_errors() -> tuple[type[Exception], ...]:
    """Errors a corrupt deflate stream raises under either inflater."""
    import zlib

    isal = _module("isal") if engine() != "stdlib" else None
    return (zlib.error,) if isal is None else (zlib.error, isal[1].error)
