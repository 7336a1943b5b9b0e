"""The README's Rotation section and docs/rotation.md: every keyguard command parses, every YAML
recipe loads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from keyguard.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ROTATION = ROOT / "docs" / "rotation.md"  # the details and the scheduler recipes


def rotation_section() -> str:
    text = README.read_text("utf-8")
    start = text.index("## Rotation")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def keyguard_commands() -> list[list[str]]:
    """Each ``keyguard SUBCOMMAND ...`` in the code blocks and inline code of the README's
    section and of docs/rotation.md."""
    code: list[str] = []
    for section in (rotation_section(), ROTATION.read_text("utf-8")):
        code += re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
        code += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", section, flags=re.S))
    found = []
    for chunk in code:
        for line in chunk.splitlines():
            pattern = r"(?:^|[\s;&\"])(?:/usr/local/bin/)?keyguard ([a-z][^;#|&\"]*)"
            for match in re.finditer(pattern, line):
                found.append(shlex.split(match.group(1)))
    return found


def test_the_section_names_every_rotation_command() -> None:
    names = {words[0] for words in keyguard_commands()}
    assert {"deliver", "rotate", "status", "rollback"} <= names
    assert "(docs/rotation.md)" in rotation_section(), "the README links the details"


@pytest.mark.parametrize("words", keyguard_commands(), ids=" ".join)
def test_each_command_parses(words: list[str]) -> None:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, words[0])
    assert command is not None, words
    command.make_context(words[0], words[1:], parent=ctx)  # raises on an unknown option


def test_yaml_recipes_load() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", ROTATION.read_text("utf-8"), re.S)
    assert len(blocks) == 2
    workflow, cronjob = (yaml.safe_load(b) for b in blocks)
    steps = workflow["jobs"]["rotate"]["steps"]
    assert any("keyguard rotate --due --yes" in s.get("run", "") for s in steps)
    assert cronjob["kind"] == "CronJob"
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert "keyguard rotate --due --yes" in container["args"][0]
