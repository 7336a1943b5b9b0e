"""The hook's quick pass: it proves a clean staged change clean with few imports, and hands
every other change to the full scanner, which then finds what is there."""

from __future__ import annotations

import base64
import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner.quick import staged_clean
from tests.scanner.conftest import git, write
from tests.scanner.test_hook import _env, _hook

#: What a clean staged scan must not import: each costs the hook start-up time.
NOT_NEEDED = {
    "argparse",
    "dataclasses",
    "hashlib",
    "json",
    "multiprocessing",
    "tarfile",
    "tempfile",
    "tomllib",
    "typing",
    "zipfile",
    "keyguard.keys",
    "keyguard.scanner.detect",
    "keyguard.scanner.engine",
    "keyguard.scanner.archives",
}


def test_a_clean_staged_scan_imports_only_what_it_needs(repo: Path) -> None:
    write(repo / "app.py", "print('hello')\n" * 100)
    write(repo / "keyguard.toml", "[environments.dev]\nstores = ['file:dev.json']\n")
    git(repo, "add", ".")
    # Measured against what the interpreter had loaded before keyguard: a site-wide .pth
    # (a certifi patch, say) may import tempfile or zipfile for every Python program.
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from keyguard.scanner.hook import main\n"
        "code = main([])\n"
        "print(code, sorted(m for m in set(sys.modules) - before if m in NOT_NEEDED))\n"
    ).replace("NOT_NEEDED", repr(NOT_NEEDED - {"tomllib", "typing"}))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=_env()
    )
    assert proc.stdout.strip() == "0 []", proc.stderr
    assert "scanned 2 files" in proc.stderr
    (repo / "keyguard.toml").unlink()
    git(repo, "rm", "-q", "--cached", "keyguard.toml")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace(repr(NOT_NEEDED - {"tomllib", "typing"}), repr(NOT_NEEDED)),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert proc.stdout.strip() == "0 []", proc.stderr


def _zip(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return out.getvalue()


KEY = generate_key().reveal()
B64 = base64.b64encode(b"token: " + KEY.encode()).decode()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("plain.py", f"K = '{KEY}'\n".encode()),
        ("split.js", f'k = "{KEY[:3]}" + "{KEY[3:]}";\n'.encode()),
        ("secret.yaml", f"data:\n  token: {B64}\n".encode()),
        ("wrapped.pem", "\n".join(B64[i : i + 64] for i in range(0, len(B64), 64)).encode()),
        ("wide.txt", f"k={KEY}".encode("utf-16")),
        ("bundle.zip", _zip("x.txt", KEY.encode())),
        ("logs.gz", gzip.compress(KEY.encode())),
        (f"{KEY}.txt", b"nothing inside"),
    ],
)
def test_anything_the_full_scanner_finds_is_handed_to_it(
    repo: Path, name: str, content: bytes
) -> None:
    write(repo / "clean.py", "x = 1\n")
    write(repo / name, content)
    git(repo, "add", ".")
    assert staged_clean() is None
    proc = _hook(repo)
    assert proc.returncode == 1, proc.stderr
    assert KEY not in proc.stdout + proc.stderr


def test_quick_pass_counts_files_and_bytes_like_the_full_scan(repo: Path) -> None:
    write(repo / "a.txt", "hello\n")
    write(repo / "b.bin", bytes(range(256)))
    git(repo, "add", ".")
    assert staged_clean() is not None
    quick = _hook(repo).stderr
    full = subprocess.run(
        ["keyguard", "scan", "--staged"], cwd=repo, capture_output=True, text=True, env=_env()
    ).stderr
    assert quick.split(" in ")[0] == full.split(" in ")[0] == "keyguard: scanned 2 files, 262 bytes"
