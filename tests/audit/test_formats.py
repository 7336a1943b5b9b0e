"""Each output format through the real command, its exit codes, and no key anywhere."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from keyguard.keys import generate_key
from tests.audit.conftest import Org

REASON = {
    "type": "object",
    "required": ["code", "verdict", "message"],
    "properties": {"verdict": {"enum": ["ok", "due", "violation"]}},
}
SCHEMA = {
    "type": "object",
    "required": ["generated_at", "summary", "environments", "unmanaged"],
    "properties": {
        "generated_at": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT.*Z$"},
        "environments": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "key_id",
                    "key_name",
                    "hint",
                    "age_days",
                    "verdict",
                    "reasons",
                    "status",
                    "created_at",
                    "expires_at",
                    "stores_agree",
                    "stores",
                    "last_rotation",
                    "pending",
                    "previous",
                    "tokens_24h",
                    "tokens_7d",
                    "policy",
                ],
                "properties": {
                    "verdict": {"enum": ["ok", "due", "violation"]},
                    "reasons": {"type": "array", "items": REASON},
                    "age_days": {"type": ["number", "null"]},
                },
            },
        },
        "unmanaged": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["key_id", "key_name", "age_days", "tokens_24h", "tokens_7d"],
            },
        },
    },
}


@pytest.fixture
def mixed(org: Org) -> Org:
    """dev ok, staging due, prod a violation, and one key nobody manages."""
    org.env("dev", org.key("dev-1", age_days=5))
    org.env("staging", org.key("staging-1", age_days=84))
    org.env("prod", org.key("prod-1", age_days=120), stores=2)
    org.key("someones-laptop", age_days=33)
    return org


def test_json_shape(mixed: Org) -> None:
    code, out, err = mixed.cli("--format", "json")
    assert code == 1, err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    by_name = {e["name"]: e for e in doc["environments"]}
    assert {n: e["verdict"] for n, e in by_name.items()} == {
        "dev": "ok",
        "staging": "due",
        "prod": "violation",
    }
    assert [r["code"] for r in by_name["prod"]["reasons"]] == ["max_age"]
    assert by_name["prod"]["age_days"] == 120 and len(by_name["prod"]["stores"]) == 2
    assert by_name["dev"]["policy"]["max_age_days"] == 90
    assert [u["key_name"] for u in doc["unmanaged"]] == ["someones-laptop"]
    assert doc["summary"] == {
        "ok": 1,
        "warning": 0,
        "due": 1,
        "violation": 1,
        "unmanaged": 1,
        "keys_listed": 4,
    }
    assert doc["notes"] == []  # every store was read: the unmanaged list is the whole truth
    mixed.assert_no_key_in(out + err)


def test_csv_parses(mixed: Org) -> None:
    code, out, _ = mixed.cli("--format", "csv")
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(out)))
    envs = {r["environment"]: r for r in rows if r["kind"] == "environment"}
    assert {n: r["verdict"] for n, r in envs.items()} == {
        "dev": "ok",
        "staging": "due",
        "prod": "violation",
    }
    assert "past max_age 90d" in envs["prod"]["reasons"]
    assert float(envs["staging"]["age_days"]) == 84
    (loose,) = [r for r in rows if r["kind"] == "unmanaged"]
    assert loose["key_name"] == "someones-laptop" and loose["verdict"] == "unmanaged"
    mixed.assert_no_key_in(out)


def test_markdown_tables(mixed: Org) -> None:
    code, out, _ = mixed.cli("--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    header = lines.index(next(x for x in lines if x.startswith("| Environment |")))
    assert re.fullmatch(r"\|(---\|)+", lines[header + 1])
    rows = [x for x in lines[header + 2 :] if x.startswith("| ")][:3]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert [(c[0], c[1]) for c in cells] == [
        ("dev", "ok"),
        ("staging", "due"),
        ("prod", "violation"),
    ]
    assert all(len(c) == len(lines[header].strip("|").split("|")) for c in cells)
    assert "## Unmanaged keys" in out and "someones-laptop" in out
    mixed.assert_no_key_in(out)


def test_html_is_one_self_contained_page(mixed: Org, tmp_path: Path) -> None:
    target = tmp_path / "audit.html"
    code, out, err = mixed.cli("--format", "html", "--output", str(target))
    assert code == 1 and out == ""
    assert f"written to {target}" in err and "1 violation" in err
    page = target.read_text()
    assert page.count("<html") == 1 and "Content-Security-Policy" in page
    assert "<script" not in page and "<link" not in page and " src=" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    for name in ("dev", "staging", "prod"):
        assert f'data-env="{name}"' in page
    mixed.assert_no_key_in(page)


def test_table_on_a_pipe(mixed: Org) -> None:
    code, out, _ = mixed.cli()
    assert code == 1
    for word in ("dev", "staging", "prod", "violation", "someones-laptop", "1 violation"):
        assert word in out
    assert "\x1b[" not in out  # no colour codes when stdout is not a terminal
    mixed.assert_no_key_in(out)


@pytest.mark.parametrize(
    ("envs", "fail_on", "code"),
    [
        ((), "violation", 1),
        ((), "due", 1),
        ((), "never", 0),
        (("dev", "staging"), "violation", 0),
        (("dev", "staging"), "due", 1),
        (("dev",), "due", 0),
    ],
)
def test_exit_codes(mixed: Org, envs: tuple[str, ...], fail_on: str, code: int) -> None:
    got, out, err = mixed.cli("--format", "json", "--fail-on", fail_on, *envs)
    assert got == code, err
    assert [e["name"] for e in json.loads(out)["environments"]] == list(
        envs or ("dev", "staging", "prod")
    )


def test_errors_exit_with_their_codes(mixed: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = mixed.cli("nosuchenv")
    assert code == 2 and "no environment 'nosuchenv'" in err
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", generate_key("admin").reveal())
    code, _, err = mixed.cli("--format", "json")
    assert code == 3, err


def test_console_script_runs_the_audit(mixed: Org) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyguard",
            "--config",
            str(mixed.config_path()),
            "audit",
            "--format",
            "json",
            "prod",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["environments"][0]["verdict"] == "violation"
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_progress_bar_only_on_a_terminal(mixed: Org) -> None:
    import pty

    main_fd, tty_fd = pty.openpty()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "keyguard",
            "--config",
            str(mixed.config_path()),
            "audit",
            "--format",
            "csv",
        ],
        stdout=subprocess.PIPE,
        stderr=tty_fd,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "TERM": "xterm"},
    )
    os.close(tty_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 1
    assert "reading stores" in shown or "listing keys" in shown
    assert b"reading stores" not in proc.stdout  # the report itself stays clean
    assert next(csv.DictReader(io.StringIO(proc.stdout.decode())))["kind"] == "environment"


def test_every_format_shows_the_rotation_state_and_markdown_every_field(
    org: Org, tmp_path: Path
) -> None:
    ws = org.sandbox.add_workspace("prod")
    old = org.key("prod-old", age_days=40, workspace=ws)
    new, next_ = org.key("prod-new", age_days=2, workspace=ws), org.key("prod-next", workspace=ws)
    uris = org.env("prod", old, workspace=ws)
    org.put(uris[0], new)
    org.put(uris[0], next_, promote=False)
    with org.sandbox.client() as client:
        client.update_key(old.id, status="inactive")
    org.env("dev", org.key("dev-1", age_days=7))
    state = f"pending {next_.id}; previous {old.id} (inactive)"

    outputs = {}
    for fmt in ("table", "markdown", "csv", "html"):
        target = tmp_path / f"audit.{fmt}"
        code, _, err = org.cli("--format", fmt, "--output", str(target))
        assert code == 0, err
        outputs[fmt] = target.read_text()
    for fmt in ("table", "markdown", "html"):
        assert state in outputs[fmt], fmt
    prod_row = next(
        r for r in csv.DictReader(io.StringIO(outputs["csv"])) if r["environment"] == "prod"
    )
    assert (prod_row["pending_key_id"], prod_row["previous_key_id"]) == (next_.id, old.id)
    assert prod_row["previous_status"] == "inactive"

    lines = outputs["markdown"].splitlines()
    header = [
        c.strip()
        for c in next(x for x in lines if x.startswith("| Environment")).strip("|").split("|")
    ]
    rows = {
        cells[0]: dict(zip(header, cells, strict=True))
        for cells in (
            [c.strip() for c in x.strip("|").split("|")]
            for x in lines
            if x.startswith(("| prod |", "| dev |"))
        )
    }
    prod, dev = rows["prod"], rows["dev"]
    assert (prod["Key"], prod["Name"], prod["Hint"]) == (new.id, "prod-new", new.secret.hint)
    assert (prod["Workspace"], dev["Workspace"]) == (ws, "default")
    assert prod["Created"] == f"{org.now - timedelta(days=2):%Y-%m-%d}"
    assert prod["Pending / previous"] == state and dev["Pending / previous"] == "-"
    for text in outputs.values():
        org.assert_no_key_in(text)
