"""Output formats: text, JSON (exact shape), SARIF 2.1.0 (schema-valid); never a full key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from keyguard.cli import main
from keyguard.keys import generate_key, redact
from tests.scanner.conftest import Scan, git, write

SCHEMA = Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture
def leaky(repo: Path) -> tuple[Path, list[str]]:
    api, admin = generate_key("api").reveal(), generate_key("admin").reveal()
    write(repo / "src" / "app.py", f"import os\nKEY = '{api}'\n")
    write(repo / "notebook.ipynb", json.dumps({"cells": [{"source": [f'k = "{admin}"\n']}]}))
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "leak")
    return repo, [api, admin]


def test_json_has_exactly_the_documented_fields(
    leaky: tuple[Path, list[str]], scan_json: Scan
) -> None:
    _, (api, admin) = leaky
    code, report, _ = scan_json()
    assert code == 1
    assert set(report) == {"findings", "unread", "stats"}
    assert set(report["stats"]) == {"files", "bytes", "seconds", "unread"}
    assert report["unread"] == [] and report["stats"]["unread"] == 0
    first, second = report["findings"]
    assert first == {  # admin keys rank above API keys
        "rule": "anthropic-admin-key",
        "severity": "critical",
        "path": "notebook.ipynb",
        "line": 1,
        "column": first["column"],
        "redacted": redact(admin),
        "fingerprint": hashlib.sha256(admin.encode()).hexdigest(),
    }
    assert second["path"] == "src/app.py" and (second["line"], second["column"]) == (2, 8)
    assert second["fingerprint"] == hashlib.sha256(api.encode()).hexdigest()
    code, report, _ = scan_json("--history")
    assert code == 1 and all(len(f["commit"]) == 40 for f in report["findings"])


def test_sarif_validates_against_the_official_schema(
    leaky: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    schema = json.loads(SCHEMA.read_text("utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(sarif)
    run = sarif["runs"][0]
    assert sarif["version"] == "2.1.0"
    assert [r["ruleId"] for r in run["results"]] == ["anthropic-admin-key", "anthropic-api-key"]
    loc = run["results"][1]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "src/app.py"
    assert loc["region"] == {"startLine": 2, "startColumn": 8}
    rules = run["tool"]["driver"]["rules"]
    assert rules[run["results"][0]["ruleIndex"]]["id"] == "anthropic-admin-key"
    assert float(rules[0]["properties"]["security-severity"]) >= 9.0


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_no_format_ever_prints_a_full_key(
    leaky: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], fmt: str, tmp_path: Path
) -> None:
    _, keys = leaky
    assert main(["scan", "-f", fmt]) == 1
    assert main(["scan", "--history", "-f", fmt]) == 1
    assert main(["scan", "-f", fmt, "--output", str(tmp_path / "report")]) == 1
    out, err = capsys.readouterr()
    written = (tmp_path / "report").read_text()
    for key in keys:
        body = key.split("-", 3)[3]
        for text in (out, err, written):
            assert key not in text and body[5:-5] not in text
    if fmt == "text":
        assert f"src/app.py:2:8: anthropic-api-key (critical) {redact(keys[0])}" in written
        assert "keyguard revoke --leaked" in written


def test_output_file_holds_the_report_and_stdout_stays_empty(
    leaky: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "report.json"
    assert main(["scan", "-f", "json", "--output", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "scanned 2 files" in err
    assert len(json.loads(target.read_text())["findings"]) == 2


def test_verify_seam_classifies_each_key_once(leaky: tuple[Path, list[str]]) -> None:
    from keyguard.keys import Secret
    from keyguard.scanner.report import to_json
    from keyguard.scanner.run import ScanOptions, run_scan

    seen: list[str] = []

    def verify(secret: Secret) -> str:
        seen.append(secret.reveal())
        return "revoked" if "admin" in secret.reveal() else "live"

    run = run_scan(ScanOptions(history="", verify=verify))
    _, keys = leaky
    assert sorted(seen) == sorted(keys)
    assert [f["verdict"] for f in to_json(run.result)["findings"]] == ["revoked", "live"]
