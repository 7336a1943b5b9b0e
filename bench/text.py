"""Deterministic filler: source-like text, minified JS and base64 blobs, built from a seed."""

from __future__ import annotations

import base64
import random

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(1, 4)))


class Vocabulary:
    """Pseudo-words and identifiers; nothing here can form an ``sk-ant-`` prefix."""

    def __init__(self, rng: random.Random, size: int = 600) -> None:
        self.rng = rng
        self.words = [_word(rng) for _ in range(size)]
        self.idents = [f"{_word(rng)}_{_word(rng)}" for _ in range(size)]

    def w(self) -> str:
        return self.rng.choice(self.words)

    def i(self) -> str:
        return self.rng.choice(self.idents)

    def n(self) -> int:
        return self.rng.randint(0, 4096)

    def phrase(self, lo: int = 3, hi: int = 10) -> str:
        return " ".join(self.w() for _ in range(self.rng.randint(lo, hi)))


def _py(v: Vocabulary) -> str:
    r = v.rng.random()
    if r < 0.12:
        return f"def {v.i()}({v.i()}, {v.i()}={v.n()}):"
    if r < 0.2:
        return f'    """{v.phrase().capitalize()}."""'
    if r < 0.35:
        return f"    {v.i()} = {v.i()}.{v.i()}({v.i()}, {v.n()})"
    if r < 0.45:
        return f'    logger.info("{v.phrase()} %s", {v.i()})'
    if r < 0.55:
        return f"    # {v.phrase()}"
    if r < 0.62:
        return f"from {v.w()}.{v.w()} import {v.i()}"
    if r < 0.7:
        return f"class {v.w().capitalize()}{v.w().capitalize()}:"
    if r < 0.8:
        return f"        return [{v.i()} for {v.i()} in {v.i()} if {v.i()} > {v.n()}]"
    if r < 0.9:
        return f'    {v.i()}["{v.w()}"] = "{v.phrase(1, 4)}"'
    return ""


def _js(v: Vocabulary) -> str:
    r = v.rng.random()
    if r < 0.2:
        return f"const {v.i()} = require('{v.w()}/{v.w()}');"
    if r < 0.4:
        return f"function {v.i()}({v.i()}, {v.i()}) {{ return {v.i()}.map((x) => x * {v.n()}); }}"
    if r < 0.6:
        return f"  {v.i()}.{v.i()}('{v.phrase(1, 5)}', {{ {v.w()}: {v.n()} }});"
    if r < 0.8:
        return f"// {v.phrase()}"
    return f"export default {{ {v.w()}: '{v.w()}', {v.w()}: {v.n()} }};"


def _yaml(v: Vocabulary) -> str:
    r = v.rng.random()
    if r < 0.3:
        return f"{v.w()}:"
    if r < 0.7:
        return f"  {v.w()}: {v.phrase(1, 4)}"
    return f'    - name: {v.i()}\n      value: "{v.n()}"'


def _md(v: Vocabulary) -> str:
    r = v.rng.random()
    if r < 0.15:
        return f"## {v.phrase(2, 5).capitalize()}"
    if r < 0.8:
        return v.phrase(8, 25).capitalize() + "."
    return f"- `{v.i()}`: {v.phrase()}"


def _log(v: Vocabulary) -> str:
    lvl = v.rng.choice(("INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR"))
    r = v.rng.randint
    ts = f"2025-0{r(1, 9)}-1{r(0, 9)}T1{r(0, 9)}:{r(10, 59)}:{r(10, 59)}Z"
    return f"{ts} {lvl} {v.w()}.{v.w()} request_id={v.rng.getrandbits(64):016x} {v.phrase(2, 8)}"


LANGS = {"py": _py, "js": _js, "yaml": _yaml, "md": _md, "log": _log}


def make_pools(rng: random.Random, pool_bytes: int) -> dict[str, str]:
    """One pool of lines per language, sliced later into files."""
    v = Vocabulary(rng)
    pools: dict[str, str] = {}
    for lang, line in LANGS.items():
        parts: list[str] = []
        total = 0
        while total < pool_bytes:
            s = line(v) + "\n"
            parts.append(s)
            total += len(s)
        pools[lang] = "".join(parts)
    # Minified JS: statements joined with no newline, the way bundlers emit them.
    js = pools["js"].replace("\n", "").replace("// ", "/*") + "\n"
    pools["minjs"] = js
    return pools


def slice_lines(rng: random.Random, pool: str, size: int) -> str:
    """About ``size`` characters of whole lines from a random place in ``pool``."""
    size = min(size, len(pool) - 1)
    start = rng.randrange(0, len(pool) - size)
    start = pool.find("\n", start) + 1
    end = pool.find("\n", start + size)
    if end < 0:
        end = len(pool)
    return pool[start:end] + "\n"


def insert_lines(rng: random.Random, text: str, lines: list[str]) -> str:
    """Insert each of ``lines`` at a random line boundary of ``text``."""
    for line in lines:
        pos = text.find("\n", rng.randrange(0, max(1, len(text)))) + 1
        text = text[:pos] + line + "\n" + text[pos:]
    return text


def base64_blob(rng: random.Random, nbytes: int) -> str:
    """Base64 of random bytes, like an embedded PNG in a notebook output."""
    return base64.b64encode(rng.randbytes(nbytes)).decode("ascii")
