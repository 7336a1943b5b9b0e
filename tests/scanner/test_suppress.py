"""Suppressions: inline allow comments, fingerprint baselines, [scan] exclude globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyguard.keys import generate_key
from keyguard.scanner import engine
from tests.scanner.conftest import Scan, write


def test_inline_allow_comment_suppresses_only_its_line(plain_dir: Path, scan_json: Scan) -> None:
    a, b = generate_key().reveal(), generate_key().reveal()
    write(plain_dir / "t.py", f"A = '{a}'  # keyguard: allow (test fixture)\nB = '{b}'\n")
    code, report, err = scan_json(".")
    assert code == 1
    assert [f["line"] for f in report["findings"]] == [2]
    assert "1 allowed inline" in err


@pytest.mark.parametrize("before", [4097, 9000, 600_000])
def test_an_allow_comment_on_an_earlier_line_never_reaches_a_key_after_a_long_run(
    plain_dir: Path, scan_json: Scan, before: int
) -> None:
    """The attack: a marker on line 1, then a key on line 3 with more than the look-back window
    of minified code before it on its own line. Only a marker on the key's own line counts."""
    key = generate_key().reveal()
    write(plain_dir / "app.js", f"// keyguard: allow\nvar a=1;\n{'x' * before}'{key}';\n")
    code, report, err = scan_json(".")
    assert code == 1, err
    assert [f["line"] for f in report["findings"]] == [3]
    assert "allowed inline" not in err


def test_an_allow_comment_far_before_the_key_on_its_own_line_still_counts(
    plain_dir: Path, scan_json: Scan
) -> None:
    """Within the look-back window the marker is on the key's line: it is honoured."""
    key = generate_key().reveal()
    write(plain_dir / "app.js", f"var a=1;\n/* keyguard: allow */{'x' * 3000}'{key}';\n")
    code, report, err = scan_json(".")
    assert (code, report["findings"]) == (0, []) and "1 allowed inline" in err


def test_baseline_holds_fingerprints_only_and_survives_moves(
    plain_dir: Path, scan_json: Scan
) -> None:
    key = generate_key().reveal()
    write(plain_dir / "old.txt", f"x\n{key}\n")
    code, _, err = scan_json(".", "--baseline", "kg-baseline.json", "--update-baseline")
    assert code == 0 and "wrote 1 fingerprint" in err
    text = (plain_dir / "kg-baseline.json").read_text()
    entry = json.loads(text)["fingerprints"][0]
    assert set(entry) == {"fingerprint", "rule", "redacted"}  # no line numbers, no path
    assert key not in text

    (plain_dir / "old.txt").rename(plain_dir / "new.txt")
    write(plain_dir / "new.txt", f"moved\n\n\n{key}\n")
    code, report, err = scan_json(".", "--baseline", "kg-baseline.json")
    assert (code, report["findings"]) == (0, [])
    assert "1 in the baseline" in err

    write(plain_dir / "fresh.txt", generate_key().reveal())
    code, report, _ = scan_json(".", "--baseline", "kg-baseline.json")
    assert code == 1 and [f["path"] for f in report["findings"]] == ["fresh.txt"]


def test_broken_baseline_is_a_usage_error(plain_dir: Path, scan_json: Scan) -> None:
    write(plain_dir / "b.json", "{not json")
    code, _, err = scan_json(".", "--baseline", "b.json")
    assert code == 2 and "not a keyguard baseline" in err


@pytest.mark.parametrize("pooled", [False, True], ids=["one-process", "pool"])
def test_config_excludes_are_path_globs(
    plain_dir: Path, scan_json: Scan, monkeypatch: pytest.MonkeyPatch, pooled: bool
) -> None:
    if pooled:  # excluded while the walk feeds the workers: still counted and said
        monkeypatch.setattr(engine, "POOL_MIN_BYTES", 0)
    write(plain_dir / "keyguard.toml", '[scan]\nexclude = ["fixtures/", "*.snap"]\n')
    for name in ("fixtures/deep/a.txt", "ui/x.snap", "src/real.py"):
        write(plain_dir / name, generate_key().reveal())
    code, report, err = scan_json(".", "--jobs", "2")
    assert code == 1
    assert [f["path"] for f in report["findings"]] == ["src/real.py"]
    assert "2 files excluded by config" in err


@pytest.mark.parametrize(
    ("where", "from_config"),
    [("a.txt/b.json", False), ("a.txt/b.json", True), ("folder", True)],
    ids=["under-a-file", "config-under-a-file", "config-folder"],
)
def test_update_baseline_to_a_path_that_cannot_be_written_is_one_line(
    plain_dir: Path, scan_json: Scan, where: str, from_config: bool
) -> None:
    key = generate_key().reveal()
    write(plain_dir / "a.txt", key)
    (plain_dir / "folder").mkdir()
    if from_config:
        write(plain_dir / "keyguard.toml", f'[scan]\nbaseline = "{where}"\n')
    args = () if from_config else ("--baseline", where)
    code, _, err = scan_json("a.txt", *args, "--update-baseline")
    assert code == 2, err
    assert err.startswith("keyguard: error: ") and err.count("\n") == 1, err
    assert "cannot write" in err and key not in err
    assert not (plain_dir / "folder").is_file() and (plain_dir / "a.txt").read_text() == key


def test_update_baseline_write_failure_in_the_scanner_is_a_usage_error(tmp_path: Path) -> None:
    """The scanner's own writer (the hook's path, no click): an OSError becomes a UsageError."""
    from keyguard.errors import UsageError
    from keyguard.scanner.suppress import write_baseline

    write(tmp_path / "a.txt", "x")
    with pytest.raises(UsageError, match=r"cannot write the baseline .*a\.txt/b\.json"):
        write_baseline(tmp_path / "a.txt" / "b.json", [])


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,  # deeper than the JSON decoder recurses
        '{"fingerprints": ' + "[" * 50_000 + "]" * 50_000 + "}",
        '{"fingerprints": [1]}',
        '{"fingerprints": {"a": 1}}',
        '{"fingerprints": [{"fingerprint": {"x": 1}}]}',
        '{"fingerprints": "abc"}',
        "[]",
        "null",
        "\udcff",
    ],
    ids=["deep", "deep-inside", "int", "dict", "dict-fp", "str", "list", "null", "undecodable"],
)
def test_malformed_baseline_is_one_line_naming_the_file(
    plain_dir: Path, scan_json: Scan, text: str
) -> None:
    write(plain_dir / "a.txt", "clean\n")
    write(plain_dir / "b.json", text.encode("utf-8", "surrogateescape"))
    code, _, err = scan_json("a.txt", "--baseline", "b.json")
    assert code == 2, err
    assert err.startswith("keyguard: error: baseline b.json is not a keyguard baseline"), err
    assert err.count("\n") == 1 and len(err) < 400, err


def test_a_baseline_name_with_control_bytes_is_escaped(plain_dir: Path, scan_json: Scan) -> None:
    name = "b\x1b[31m.json"
    write(plain_dir / "a.txt", "clean\n")
    write(plain_dir / name, "[]")
    code, _, err = scan_json("a.txt", "--baseline", name)
    assert code == 2 and "\x1b" not in err and "b\\x1b[31m.json" in err, err


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=30,
)
_FP = st.fixed_dictionaries(
    {
        "fingerprints": st.lists(
            _JSON
            | st.dictionaries(
                st.sampled_from(["fingerprint", "rule", "redacted"]), _JSON, max_size=3
            ),
            max_size=4,
        )
    }
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    doc=st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda v: json.dumps(v).encode()),
        _FP.map(lambda v: json.dumps(v).encode()),
        st.integers(1, 200_000).map(lambda n: b"[" * n),
        st.integers(1, 200_000).map(lambda n: b'{"fingerprints": [' + b"{" * n),
    )
)
def test_baseline_reader_takes_any_junk(tmp_path: Path, doc: bytes) -> None:
    """Whatever the file holds: a set of fingerprint strings, or one UsageError naming it."""
    from keyguard.errors import UsageError
    from keyguard.scanner.suppress import load_baseline

    path = tmp_path / "junk.json"
    path.write_bytes(doc)
    try:
        got = load_baseline(path)
    except UsageError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        assert len(str(exc)) < 600
    else:
        assert all(isinstance(fp, str) for fp in got)
