"""Keys that are encoded are still keys: base64, split string literals, archive members."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from pathlib import Path

import pytest

from keyguard.keys import generate_key
from keyguard.scanner.detect import scan_bytes
from tests.scanner.conftest import Scan, write

#: Every test here runs under both scan engines (stdlib, and hyperscan + isal).
pytestmark = pytest.mark.usefixtures("scan_engine")


def test_kubernetes_secret_data_is_decoded() -> None:
    key = generate_key().reveal()
    manifest = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: anthropic\ndata:\n"
        f"  ANTHROPIC_API_KEY: {base64.b64encode(key.encode()).decode()}\n"
    )
    hits = scan_bytes(manifest.encode())
    assert [(h.key.decode(), h.encoding, h.line) for h in hits] == [(key, "base64", 6)]


@pytest.mark.parametrize("user", ["", "u", "me", "api"])  # all three base64 alignments
def test_basic_auth_header_is_decoded(user: str) -> None:
    key = generate_key("admin").reveal()
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    hits = scan_bytes(f"Authorization: Basic {token}\r\n".encode())
    assert [h.key.decode() for h in hits] == [key]


def test_urlsafe_base64_without_padding_is_decoded() -> None:
    key = generate_key().reveal()
    token = base64.urlsafe_b64encode(b"u:" + key.encode()).decode().rstrip("=")
    assert [h.key.decode() for h in scan_bytes(f"t={token}".encode())] == [key]


def test_base64_of_a_placeholder_is_not_a_finding() -> None:
    fake = "sk-" + "ant-api03-" + "x" * 93 + "AA"
    assert scan_bytes(base64.b64encode(fake.encode())) == []


@pytest.mark.parametrize(
    "template",
    [
        'KEY = "{a}" "{b}" "{c}"\n',  # Python / C implicit concatenation
        'KEY = ("{a}"\n       "{b}"\n       "{c}")\n',  # across lines
        'const KEY = "{a}" +\n  "{b}" + \'{c}\';\n',  # JavaScript
        '#define KEY "{a}" \\\n  "{b}" \\\n  "{c}"\n',  # C with line continuations
        '$key = "{a}" . "{b}" . "{c}";\n',  # PHP
        'key = f"{a}" f"{b}" r"{c}"\n',  # Python prefixed literals
    ],
)
def test_key_split_across_adjacent_literals_is_joined(template: str) -> None:
    key = generate_key().reveal()
    a, b, c = key[:30], key[30:75], key[75:]
    hits = scan_bytes(template.format(a=a, b=b, c=c).encode())
    assert [(h.key.decode(), h.encoding, h.line) for h in hits] == [(key, "concatenated", 1)]


@pytest.mark.parametrize("cut", range(1, 7))  # after "s", "sk", ..., "sk-ant"
@pytest.mark.parametrize(
    "template",
    [
        'KEY = "{a}" "{b}"\n',
        "key = '{a}' +\n    '{b}';\n",
        "const key = `{a}` + `{b}`;\n",
        '$key = "{a}" . "{b}";\n',
    ],
)
def test_key_split_inside_its_prefix_is_joined(template: str, cut: int) -> None:
    key = generate_key().reveal()
    text = "# config\n" + template.format(a=key[:cut], b=key[cut:])
    hits = scan_bytes(text.encode())
    assert [(h.key.decode(), h.encoding, h.line) for h in hits] == [(key, "concatenated", 2)]
    line = template.format(a="\0", b="")
    assert hits[0].column == line.index("\0") + 1  # where the key starts


def test_key_split_inside_its_prefix_and_again_in_its_body() -> None:
    key = generate_key("admin").reveal()
    text = f'KEY = "{key[:4]}" + "{key[4:40]}"\n    + "{key[40:]}"\n'
    hits = scan_bytes(text.encode())
    assert [(h.key.decode(), h.encoding) for h in hits] == [(key, "concatenated")]


@pytest.mark.parametrize(
    "text",
    [
        'x = "task-" "ant-api03-{body}"',  # "s" continues a word: no key starts there
        'x = "sk-" "ant-api03-{body}x"',  # one character too many
        'xs = ["sk-", "ant-api03-{body}"]',  # list items are not joined
        "x = 'sk-' 'ant-api03-your-key-here'",  # a placeholder
    ],
)
def test_prefix_split_decoys_are_not_keys(text: str) -> None:
    body = generate_key().reveal()[len("sk-ant-api03-") :]
    assert scan_bytes(text.format(body=body).encode()) == []


def test_prefix_split_key_in_a_small_file_and_in_a_large_one(
    plain_dir: Path, scan_json: Scan
) -> None:
    keys = [generate_key().reveal() for _ in range(2)]
    write(plain_dir / "small.py", f'KEY = "sk-a" "{keys[0][4:]}"\n')
    filler = "x = 1\n" * 300_000  # several read rounds before the key
    write(plain_dir / "large.py", filler + f'KEY = "sk-ant" "{keys[1][6:]}"\n')
    code, report, _ = scan_json(".")
    assert code == 1
    got = sorted((f["path"], f["line"], f["column"]) for f in report["findings"])
    assert got == [("large.py", 300_001, 8), ("small.py", 1, 8)]


def test_literals_in_a_list_are_not_joined() -> None:
    key = generate_key().reveal()
    assert scan_bytes(f'xs = ["{key[:50]}", "{key[50:]}"]'.encode()) == []


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_archive_members_are_reported_with_outer_file_and_member(
    plain_dir: Path, scan_json: Scan
) -> None:
    keys = [generate_key().reveal() for _ in range(6)]
    line2 = lambda k: f"first line\nkey={k}\n".encode()  # noqa: E731
    write(plain_dir / "bundle.zip", _zip({"app/config.py": line2(keys[0]), "empty/": b""}))
    write(plain_dir / "logs.gz", gzip.compress(line2(keys[1])))
    write(plain_dir / "site.tar", _tar({"site/.env": line2(keys[2])}))
    write(plain_dir / "site.tar.gz", _tar({"deep/.env": line2(keys[3])}, "w:gz"))
    nested = _zip({"inner.tar.bz2": bz2.compress(_tar({"x.txt": line2(keys[4])}))})
    write(plain_dir / "nested.jar", nested)
    write(plain_dir / "dump.xz", lzma.compress(line2(keys[5])))
    code, report, _ = scan_json(".")
    assert code == 1
    got = {(f["path"], f["line"]) for f in report["findings"]}
    assert got == {
        ("bundle.zip!app/config.py", 2),
        ("logs.gz!logs", 2),
        ("site.tar!site/.env", 2),
        ("site.tar.gz!site.tar!deep/.env", 2),
        ("nested.jar!inner.tar.bz2!inner.tar!x.txt", 2),
        ("dump.xz!dump", 2),
    }
    assert report["stats"]["files"] == 6


def test_corrupt_archive_is_scanned_raw_and_noted(plain_dir: Path, scan_json: Scan) -> None:
    key = generate_key().reveal()
    write(plain_dir / "broken.zip", b"PK\x03\x04 not really a zip " + key.encode() + b" end")
    code, report, err = scan_json(".")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["broken.zip"]
    assert "not a readable zip archive" in err


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("bom", [True, False])
def test_utf16_text_is_read_in_either_byte_order(
    plain_dir: Path, scan_json: Scan, codec: str, bom: bool
) -> None:
    key = generate_key().reveal()
    text = f"# settings\r\nANTHROPIC_API_KEY={key}\r\nnext=1\r\n"
    data = text.encode(codec)
    if codec != "utf-16" and bom:
        data = ("\ufeff" + text).encode(codec)
    write(plain_dir / "settings.ps1", data)
    code, report, _ = scan_json(".")
    assert code == 1
    [found] = report["findings"]
    assert (found["path"], found["line"], found["encoding"]) == ("settings.ps1", 2, "utf-16")


def test_utf16_decoys_are_not_keys() -> None:
    key = generate_key().reveal()
    assert scan_bytes(("x" + key + "x").encode("utf-16-le")) == []  # part of a longer run
    assert scan_bytes(key[:-1].encode("utf-16-be")) == []  # one character short
    assert scan_bytes(("sk-ant-api03-" + "your-key-here" * 8).encode("utf-16")) == []


def _wrapped(data: bytes, width: int, eol: str) -> str:
    text = base64.b64encode(data).decode()
    return eol.join(text[i : i + width] for i in range(0, len(text), width)) + eol


@pytest.mark.parametrize(("width", "eol"), [(64, "\n"), (76, "\r\n"), (76, "\n")])
def test_base64_wrapped_at_64_or_76_columns_is_decoded_wherever_the_lines_break(
    width: int, eol: str
) -> None:
    """PEM (64), MIME (76, CRLF) and `base64` (76): every break position inside the prefix's
    base64, at each of the three byte alignments."""
    key = generate_key().reveal()
    for pad in range(0, 3 * width // 4 + 3):
        blob = b"{" + b"x" * pad + b'"key": "' + key.encode() + b'"}'
        text = "-----BEGIN DATA-----" + eol + _wrapped(blob, width, eol) + "-----END DATA-----"
        hits = scan_bytes(text.encode())
        assert [(h.key.decode(), h.encoding) for h in hits] == [(key, "base64")], pad


def test_wrapped_base64_in_an_indented_yaml_block_and_in_a_file(
    plain_dir: Path, scan_json: Scan
) -> None:
    key = generate_key("admin").reveal()
    lines = _wrapped(b"token=" + key.encode() + b"\n", 64, "\n").splitlines()
    write(plain_dir / "cert.yaml", "data: |\n" + "".join(f"    {x}\n" for x in lines) + "ok: 1\n")
    code, report, _ = scan_json(".")
    assert code == 1
    [found] = report["findings"]
    assert (found["path"], found["line"], found["rule"]) == ("cert.yaml", 2, "anthropic-admin-key")


def test_lines_that_only_look_wrapped_are_not_joined_into_keys() -> None:
    key = generate_key().reveal()
    encoded = base64.b64encode(key.encode()[:60]).decode()  # the first half of a key
    rest = base64.b64encode(key.encode()[60:]).decode()
    assert scan_bytes(f"a: {encoded}\nb: {rest}\n".encode()) == []  # not a wrapped block
    assert scan_bytes(f"{encoded}==\n{rest}\n".encode()) == []  # padding ends a block
