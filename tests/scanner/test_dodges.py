"""The scanner cannot be dodged quietly: keys in names and comments are found, and what it does
not read (too deep, a spent decompression budget, a corrupt blob, an unreadable file) is named."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from keyguard.cli import main
from keyguard.keys import generate_key, redact
from keyguard.scanner import archives
from keyguard.scanner.archives import scan_item
from tests.scanner.conftest import Scan, git, write


def _zip(
    members: dict[str, bytes], comment: bytes = b"", method: int = zipfile.ZIP_DEFLATED
) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        zf.comment = comment
    return out.getvalue()


def test_key_in_a_file_name_and_a_folder_name_is_found(plain_dir: Path, scan_json: Scan) -> None:
    key, folder_key = generate_key().reveal(), generate_key("admin").reveal()
    write(plain_dir / f"{key}.txt", "nothing inside\n")
    write(plain_dir / "creds" / folder_key / "a.txt", "x\n")
    write(plain_dir / "creds" / folder_key / "b.txt", "y\n")
    code, report, err = scan_json(".")
    assert code == 1
    got = {(f["path"], f["line"], f.get("encoding")) for f in report["findings"]}
    # The name is shown with the key in it redacted: printing a path never prints the key.
    assert got == {
        (f"{redact(key)}.txt", 0, "file name"),
        (f"creds/{redact(folder_key)}", 0, "file name"),
    }
    assert key not in json.dumps(report) + err and folder_key not in json.dumps(report) + err


def test_key_in_a_staged_file_name_refuses_the_commit(repo: Path) -> None:
    key = generate_key().reveal()
    write(repo / "keys" / f"{key}.pem", "nothing inside\n")
    git(repo, "add", ".")
    assert main(["scan", "--staged"]) == 1


def test_keys_in_member_names_and_zip_comments_are_found(plain_dir: Path, scan_json: Scan) -> None:
    keys = [generate_key().reveal() for _ in range(5)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(f"conf/{keys[0]}", b"plain content")
        info = zipfile.ZipInfo("notes.txt")
        info.comment = f"token {keys[1]}".encode()
        zf.writestr(info, b"nothing")
        zf.comment = f"archive comment {keys[2]}".encode()
    write(plain_dir / "bundle.zip", out.getvalue())
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        info = tarfile.TarInfo(f"dir/{keys[3]}.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    write(plain_dir / "site.tar", tar.getvalue())
    gz = io.BytesIO()
    with gzip.GzipFile(filename=f"{keys[4]}.log", mode="wb", fileobj=gz) as f:
        f.write(b"clean\n")
    write(plain_dir / "dump.gz", gz.getvalue())
    code, report, _ = scan_json(".")
    assert code == 1
    found = {f["fingerprint"]: (f["path"], f["encoding"]) for f in report["findings"]}
    from keyguard.keys import Secret

    assert found == {
        Secret(keys[0]).fingerprint: (f"bundle.zip!conf/{redact(keys[0])}", "member name"),
        Secret(keys[1]).fingerprint: ("bundle.zip!notes.txt", "comment"),
        Secret(keys[2]).fingerprint: ("bundle.zip", "comment"),
        Secret(keys[3]).fingerprint: (f"site.tar!dir/{redact(keys[3])}.txt", "member name"),
        Secret(keys[4]).fingerprint: ("dump.gz", "member name"),
    }
    assert not any(key in json.dumps(report) for key in keys)


def _nest(data: bytes, depth: int) -> bytes:
    for i in range(depth):
        data = _zip({f"level{i}.zip" if i else "inner.txt": data})
    return data


def test_archive_nested_past_the_depth_limit_is_named_everywhere(
    plain_dir: Path, scan_json: Scan, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key().reveal()
    write(plain_dir / "deep.zip", _nest(f"k={key}\n".encode(), archives.MAX_DEPTH + 2))
    write(plain_dir / "ok.zip", _nest(b"clean\n", 2))
    code, report, err = scan_json(".")
    assert code == 0  # the key is compressed past the depth limit: not found, but not silent
    [unread] = report["unread"]
    assert unread["kind"] == "too-deep" and unread["path"].startswith("deep.zip!")
    assert report["stats"]["unread"] == 1
    assert "NOT READ: 1 (1 archive nested past the depth limit): deep.zip!" in err
    assert main(["scan", ".", "-f", "sarif"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    [note] = run["invocations"][0]["toolExecutionNotifications"]
    assert note["descriptor"]["id"] == "keyguard/unread/too-deep"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "deep.zip"
    assert main(["scan", "."]) == 0
    assert "not read: deep.zip!" in capsys.readouterr().err


def test_a_decompression_bomb_costs_a_bounded_multiple_of_its_size(
    plain_dir: Path, scan_json: Scan
) -> None:
    bomb = _zip({"zeros.bin": b"\0" * (64 << 20), "after.txt": generate_key().reveal().encode()})
    write(plain_dir / "bomb.zip", bomb)
    item = scan_item(io.BytesIO(bomb), "bomb.zip", len(bomb))
    assert item.expanded <= archives.EXPANDED_FLOOR + archives.EXPANSION * len(bomb)
    assert [u.kind for u in item.unread] == ["budget"]
    code, report, err = scan_json(".")
    assert code == 0
    assert [(u["path"], u["kind"]) for u in report["unread"]] == [("bomb.zip!zeros.bin", "budget")]
    assert "1 decompression budget exhausted" in err


def test_a_bomb_nested_in_a_tar_is_bounded_too() -> None:
    inner = _zip({"zeros.bin": b"\0" * (48 << 20)})
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as tf:
        info = tarfile.TarInfo("a.zip")
        info.size = len(inner)
        tf.addfile(info, io.BytesIO(inner))
    data = tar.getvalue()
    item = scan_item(io.BytesIO(data), "x.tar.gz", len(data))
    assert item.expanded <= archives.EXPANDED_FLOOR + archives.EXPANSION * len(data) + (1 << 20)
    assert [u.kind for u in item.unread] == ["budget"]


def _object(repo: Path, oid: str) -> Path:
    return repo / ".git" / "objects" / oid[:2] / oid[2:]


def test_corrupt_and_missing_blobs_in_history_are_named(repo: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    write(repo / "a.txt", "first\n")
    write(repo / "b.txt", "second\n")
    write(repo / "c.txt", f"k={key}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    corrupt = git(repo, "rev-parse", "HEAD:a.txt").stdout.strip()
    missing = git(repo, "rev-parse", "HEAD:b.txt").stdout.strip()
    path = _object(repo, corrupt)
    data = bytearray(path.read_bytes())
    os.chmod(path, 0o644)
    data[len(data) // 2 :] = b"\xff" * (len(data) - len(data) // 2)
    path.write_bytes(bytes(data))
    _object(repo, missing).unlink()
    code, report, err = scan_json("--history")
    assert code == 1  # the key in the readable blob is still found
    assert [f["path"] for f in report["findings"]] == ["c.txt"]
    unread = {(u["path"], u["kind"]) for u in report["unread"]}
    assert unread == {("a.txt", "missing-blob"), ("b.txt", "missing-blob")}
    assert "NOT READ: 2 (2 corrupt or missing blob)" in err


def test_an_unreadable_file_is_named(plain_dir: Path, scan_json: Scan) -> None:
    write(plain_dir / "a.txt", "fine\n")
    os.symlink("nowhere", plain_dir / "dangling.txt")
    code, report, err = scan_json(".")
    assert code == 0
    assert report["unread"] == [
        {"path": "dangling.txt", "kind": "unreadable", "reason": report["unread"][0]["reason"]}
    ]
    assert "NOT READ: 1 (1 unreadable): dangling.txt" in err


def test_control_characters_in_file_names_are_escaped_in_text_but_exact_in_json(
    plain_dir: Path, capsys: pytest.CaptureFixture[str], scan_json: Scan
) -> None:
    key = generate_key().reveal()
    name = "evil\x1b[2J\rclean.txt"
    write(plain_dir / name, f"k={key}\n")
    assert main(["scan", "."]) == 1
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\r" not in out + err
    assert f"evil\\x1b[2J\\x0dclean.txt:1:3: anthropic-api-key (critical) {redact(key)}" in out
    _, report, _ = scan_json(".")
    assert report["findings"][0]["path"] == name


def _empty_file_named_with_a_key(repo: Path) -> str:
    """An empty file named with a key has the same blob as every other empty file."""
    key = generate_key().reveal()
    write(repo / "a" / "__init__.py", "")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    write(repo / "b" / f"{key}", "")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "two")
    git(repo, "rm", "-rq", "b")
    git(repo, "commit", "-qm", "gone")
    return key


def test_key_in_a_file_name_is_found_in_history_even_when_its_content_is_shared(
    repo: Path, scan_json: Scan
) -> None:
    key = _empty_file_named_with_a_key(repo)
    code, report, err = scan_json("--history")
    assert code == 1
    [found] = report["findings"]
    assert (found["path"], found["line"], found["encoding"]) == (f"b/{redact(key)}", 0, "file name")
    assert key not in json.dumps(report) + err
    assert report["stats"]["files"] == 1  # trees are read for names, not counted as files


def test_history_too_wide_for_reading_names_says_so(
    repo: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyguard.scanner import sources

    _empty_file_named_with_a_key(repo)
    monkeypatch.setattr(sources, "TREE_BYTES", 0)  # the trees now cost more than the blobs
    code, report, err = scan_json("--history")
    assert code == 0
    assert [u["kind"] for u in report["unread"]] == ["names"]
    assert "file names in history not scanned" in err
