"""What gets scanned: work trees, plain folders, the index, history, stdin, awkward files."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner import detect, engine
from tests.scanner.conftest import Scan, git, write


def test_work_tree_scans_tracked_and_untracked_but_not_ignored(repo: Path, scan_json: Scan) -> None:
    keys = [generate_key().reveal() for _ in range(3)]
    write(repo / ".gitignore", "ignored.env\n")
    write(repo / "tracked.py", f"KEY = '{keys[0]}'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    write(repo / "untracked.txt", f"{keys[1]}\n")
    write(repo / "ignored.env", f"{keys[2]}\n")
    code, report, err = scan_json()
    assert code == 1
    assert sorted(f["path"] for f in report["findings"]) == ["tracked.py", "untracked.txt"]
    assert report["stats"]["files"] == 3  # .gitignore, tracked.py, untracked.txt
    assert "scanned 3 files" in err


def test_plain_folder_scans_every_file_including_binaries(plain_dir: Path, scan_json: Scan) -> None:
    key = generate_key().reveal().encode()
    write(plain_dir / "cache" / "mod.cpython-311.pyc", b"\xa7\r\r\n\x00\x00\xfa" + key + b"\x00")
    write(plain_dir / "db.sqlite", b"SQLite format 3\x00" + b"\x00" * 100 + key + b"\xff\xfe")
    write(plain_dir / ".env", b"ANTHROPIC_API_KEY=" + key + b"\n")
    code, report, _ = scan_json(".")
    assert code == 1
    paths = sorted(f["path"] for f in report["findings"])
    assert paths == [".env", "cache/mod.cpython-311.pyc", "db.sqlite"]


def test_clean_tree_exits_zero_and_states_what_it_scanned(plain_dir: Path, scan_json: Scan) -> None:
    write(plain_dir / "a.txt", "hello\n")
    write(plain_dir / "b.bin", bytes(range(256)))
    code, report, err = scan_json(".")
    assert code == 0
    assert report == {
        "findings": [],
        "unread": [],
        "stats": {"files": 2, "bytes": 262, "seconds": report["stats"]["seconds"], "unread": 0},
    }
    assert "scanned 2 files, 262 bytes" in err


def test_usage_errors_exit_two(plain_dir: Path, scan_json: Scan) -> None:
    assert scan_json("does-not-exist")[0] == 2
    assert scan_json("--staged")[0] == 2  # not a git work tree
    assert scan_json("--update-baseline")[0] == 2


def test_staged_scans_the_index_not_the_work_tree(repo: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    write(repo / "app.py", f"KEY = '{key}'\n")
    git(repo, "add", "app.py")
    write(repo / "app.py", "KEY = os.environ['ANTHROPIC_API_KEY']\n")  # fixed, but not staged
    code, report, err = scan_json("--staged")
    assert code == 1
    assert [(f["path"], f["line"]) for f in report["findings"]] == [("app.py", 1)]
    assert "scanned 1 file," in err

    git(repo, "add", "app.py")  # the fix staged, a new key only in the work tree
    write(repo / "other.py", f"K = '{generate_key().reveal()}'\n")
    code, report, _ = scan_json("--staged")
    assert (code, report["findings"], report["stats"]["files"]) == (0, [], 1)


@pytest.mark.usefixtures("scan_engine")
@pytest.mark.parametrize("replaced", ["commit", "blob"])
def test_a_repositorys_own_replace_refs_never_hide_a_key_from_history(
    repo: Path, scan_json: Scan, replaced: str
) -> None:
    """`git replace` (refs/replace/*, fetched like any ref) makes git show other objects in
    place of the real ones: a history scan reads what the repository really holds."""
    key = generate_key().reveal()
    write(repo / "README.md", "hello\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    write(repo / "leak.env", f"KEY={key}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "leak")
    if replaced == "commit":  # the leaking commit shown as one that changed nothing
        clean = git(repo, "commit-tree", "HEAD~1^{tree}", "-p", "HEAD~1", "-m", "leak")
        git(repo, "replace", "HEAD", clean.stdout.strip())
    else:  # the key's blob shown as a harmless one
        blob = git(repo, "rev-parse", "HEAD:leak.env").stdout.strip()
        harmless = write(repo / "harmless.txt", "nothing\n")
        other = git(repo, "hash-object", "-w", str(harmless)).stdout.strip()
        harmless.unlink()
        git(repo, "replace", blob, other)
    code, report, err = scan_json("--history")
    assert code == 1, err
    assert [f["path"] for f in report["findings"]] == ["leak.env"]


def test_history_reads_each_blob_once_and_names_the_introducing_commit(
    repo: Path, scan_json: Scan
) -> None:
    key = generate_key("admin").reveal()
    write(repo / "README.md", "hello\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    write(repo / "config" / "prod.env", f"# prod\nADMIN={key}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "leak")
    leak = git(repo, "rev-parse", "HEAD").stdout.strip()
    for i in range(3):
        write(repo / "README.md", f"hello {i}\n")
        git(repo, "commit", "-qam", f"edit {i}")
    git(repo, "rm", "-q", "config/prod.env")
    git(repo, "commit", "-qm", "remove the key")
    git(repo, "checkout", "-qb", "side", leak)
    write(repo / "copy.env", f"# prod\nADMIN={key}\n")  # the same blob again, elsewhere
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "copy")
    git(repo, "checkout", "-q", "main")

    code, report, _ = scan_json("--history")
    assert code == 1
    assert [(f["path"], f["line"], f["commit"]) for f in report["findings"]] == [
        ("config/prod.env", 2, leak)
    ]
    objects = git(repo, "rev-list", "--objects", "--all").stdout.split()
    blobs = {o for o in objects if git(repo, "cat-file", "-t", o, check=False).stdout == "blob\n"}
    assert report["stats"]["files"] == len(blobs) == 5

    code, report, _ = scan_json("--history", f"{leak}..main")
    assert (code, report["findings"]) == (0, [])
    assert scan_json("--history", "--all")[0] == 2


@pytest.mark.parametrize("flag", ["-", "--stdin"])
def test_stdin(flag: str) -> None:
    key = generate_key().reveal()
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", flag, "-f", "json"],
        input=f"line one\nkey: {key}\n".encode(),
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert [(f["path"], f["line"], f["column"]) for f in report["findings"]] == [("<stdin>", 2, 6)]
    assert key.encode() not in proc.stdout + proc.stderr


def test_a_missing_path_is_a_usage_error_before_anything_is_scanned(
    plain_dir: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    write(plain_dir / "a.txt", generate_key().reveal())
    code, report, err = scan_json("a.txt", "missing.txt", "--jobs", "2")
    assert code == 2
    assert "missing.txt: no such file or folder" in err
    assert report == {}  # no report: nothing was scanned


@pytest.mark.parametrize("pooled", [False, True], ids=["one-process", "pool"])
def test_symlink_loops_and_unreadable_files_are_reported_not_fatal(
    plain_dir: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch, pooled: bool
) -> None:
    if pooled:  # the walk then runs while workers scan: its notes must still be reported
        monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    key = generate_key().reveal()
    write(plain_dir / "d" / "k.txt", key)
    (plain_dir / "d" / "loop").symlink_to("..")
    (plain_dir / "self").symlink_to("self")
    (plain_dir / "dangling").symlink_to("nowhere")
    (plain_dir / "alias.txt").symlink_to("d/k.txt")
    code, report, err = scan_json(".", "--jobs", "2")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["d/k.txt"]  # the alias is the same file
    assert "symlink loop" in err
    assert "self: cannot read" in err
    code, _, err = scan_json("/proc/self/mem")
    assert code == 0 and "read failed" in err


def test_a_tracked_symlink_is_never_followed_out_of_the_work_tree(
    repo: Path, scan_json: Scan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack: a pull request commits links to a file beside the checkout and to the
    runner's own environment. A work-tree scan reads what git tracks, the links, not their
    targets: no finding "in" the repository is the runner's key, and nothing outside is read."""
    runner_key, beside = generate_key().reveal(), generate_key().reveal()
    monkeypatch.setenv("ANTHROPIC_API_KEY", runner_key)
    write(tmp_path / "outside" / "secret.env", f"KEY={beside}\n")
    (repo / "innocent.txt").symlink_to("../outside/secret.env")
    (repo / "env.txt").symlink_to("/proc/self/environ")
    write(repo / "real.txt", "nothing here\n")
    (repo / "alias.txt").symlink_to("real.txt")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "links")
    code, report, err = scan_json()
    assert (code, report["findings"]) == (0, []), err
    assert "innocent.txt: symlink to outside the work tree, not followed" in err
    assert "env.txt: symlink to outside the work tree, not followed" in err
    assert "alias.txt" not in err  # a link inside the tree: its target is scanned as itself


def test_a_tracked_link_to_an_ignored_file_in_the_work_tree_is_still_read(
    repo: Path, scan_json: Scan
) -> None:
    """A link that stays inside the work tree is followed: its target may be a file git ignores
    (a local `.env`), and the committed link is how the key reaches whoever uses the repo."""
    key = generate_key().reveal()
    write(repo / ".gitignore", ".env.local\n")
    write(repo / ".env.local", f"KEY={key}\n")
    (repo / "app.env").symlink_to(".env.local")
    git(repo, "add", ".gitignore", "app.env")
    git(repo, "commit", "-qm", "link")
    code, report, err = scan_json()
    assert code == 1, err
    assert [f["path"] for f in report["findings"]] == ["app.env"]


def test_a_folder_walk_never_follows_links_out_of_the_folder(
    plain_dir: Path, scan_json: Scan, tmp_path: Path
) -> None:
    inside, beside, below = (generate_key().reveal() for _ in range(3))
    write(plain_dir / "d" / "k.txt", inside)
    write(tmp_path / "beside.env", beside)
    write(tmp_path / "other" / "deep.txt", below)
    (plain_dir / "x.txt").symlink_to(tmp_path / "beside.env")
    (plain_dir / "up").symlink_to(tmp_path / "other")
    (plain_dir / "d" / "again").symlink_to("k.txt")
    code, report, err = scan_json(".")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["d/k.txt"], err
    assert "x.txt: symlink to outside the scanned folder, not followed" in err
    assert "up: symlink to outside the scanned folder, not followed" in err
    code, report, _ = scan_json("x.txt")  # named on the command line: the person chose it
    assert code == 1 and len(report["findings"]) == 1


@pytest.mark.usefixtures("scan_engine")
def test_keys_across_chunk_boundaries_and_in_huge_lines(plain_dir: Path, scan_json: Scan) -> None:
    keys = [generate_key().reveal().encode() for _ in range(4)]
    step = detect.CHUNK
    data = bytearray(b"a" * (3 * step + 10_000))  # one huge line
    spots = [step - 50, 2 * step - detect.RIGHT + 3, 3 * step - detect.LEFT - 20]
    for spot, key in zip(spots, keys, strict=False):
        data[spot - 1 : spot + len(key) + 1] = b" " + key + b" "
    data += b"\n" + keys[3]
    write(plain_dir / "big.min.js", bytes(data))
    code, report, _ = scan_json(".")
    assert code == 1
    got = [(f["line"], f["column"]) for f in report["findings"]]
    assert got == [(1, spot + 1) for spot in spots] + [(2, 1)]


@pytest.mark.usefixtures("scan_engine")
def test_lines_in_a_long_file_with_far_apart_keys(plain_dir: Path, scan_json: Scan) -> None:
    """Lines are counted only when a key needs one, reading back what the scan already
    dropped: the reported places must still be exact, in the file and from stdin alike."""
    rng = random.Random(7)
    keys = [generate_key().reveal().encode() for _ in range(6)]
    step = detect.CHUNK
    data = bytearray()
    while len(data) < 12 * step:
        data += b"x" * rng.randrange(0, 300) + b"\n"
    spots = [
        100,  # in the first round
        7 * step + 11,  # six rounds later, none of them with a key
        7 * step + 5_000,  # a second key in the same round
        9 * step - detect.RIGHT + 1,  # the first byte of the next round
        11 * step + 3,
    ]
    for spot, key in zip(spots, keys, strict=False):
        data[spot - 1 : spot + len(key) + 1] = b" " + key + b" "
    b64 = base64.b64encode(b"user:" + keys[5])
    at = 10 * step - detect.RIGHT - 2  # a base64 group that starts just before a round
    data[at - 1 : at + len(b64) + 1] = b" " + b64 + b" "
    write(plain_dir / "long.log", bytes(data))

    def where(p: int) -> tuple[int, int]:
        return data.count(b"\n", 0, p) + 1, p - data.rfind(b"\n", 0, p)

    expected = sorted([where(p) for p in spots] + [where(at + 4)])  # the group holding "sk-"
    code, report, _ = scan_json("long.log", "--jobs", "1")
    assert code == 1
    assert sorted((f["line"], f["column"]) for f in report["findings"]) == expected
    proc = subprocess.run(
        [sys.executable, "-m", "keyguard", "scan", "-", "-f", "json"],
        input=bytes(data),
        capture_output=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    piped = json.loads(proc.stdout)
    assert sorted((f["line"], f["column"]) for f in piped["findings"]) == expected


def test_two_gigabyte_class_file_in_bounded_memory(plain_dir: Path) -> None:
    path = plain_dir / "huge.bin"
    size = 400 << 20  # far beyond the buffer: memory must not grow with the file
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: costs no disk
        f.seek(size)
        f.write(b"\n" + generate_key().reveal().encode() + b"\n")
    code = (
        "import re, sys\n"
        "from keyguard.cli import main\n"
        "rc = main(['scan', 'huge.bin', '-f', 'json'])\n"
        # VmHWM is this process's own peak; ru_maxrss would carry pytest's over exec.
        "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "sys.stderr.write('RSS %s\\n' % hwm)\n"
        "sys.exit(rc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=plain_dir, capture_output=True, env=env, check=False
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["findings"][0]["line"] == 2
    rss_kib = int(proc.stderr.decode().rsplit("RSS ", 1)[1])
    assert rss_kib < 120 * 1024


@pytest.mark.usefixtures("scan_engine")
def test_process_pool_gives_the_same_findings(
    plain_dir: Path, scan_json: Scan, monkeypatch: object
) -> None:
    from keyguard.scanner import engine

    keys = {}
    for i in range(40):
        key = generate_key().reveal()
        keys[f"f{i:02}.txt"] = key
        write(plain_dir / f"f{i:02}.txt", f"{'filler ' * 2000}\n{key}\n")
    monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)  # type: ignore[attr-defined]
    code, report, _ = scan_json(".", "--jobs", "2")
    assert code == 1
    assert sorted((f["path"], f["line"]) for f in report["findings"]) == [
        (name, 2) for name in sorted(keys)
    ]
    assert report["stats"]["files"] == 40


def test_a_named_fifo_is_reported_not_read_never_silently_clean(
    plain_dir: Path, scan_json: Scan
) -> None:
    """`keyguard scan <(cat .env)` or a FIFO named on the command line is not read (it would
    block or be consumed): the scan says so instead of reporting 0 files, 0 findings."""
    os.mkfifo(plain_dir / "pipe")
    code, _, err = scan_json("pipe")
    assert code == 0
    assert "not read: pipe" in err and "not a regular file" in err
    assert "keyguard scan -" in err  # the way to scan a stream
