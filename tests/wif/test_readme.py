"""The README's Keyless section and docs/keyless.md: commands parse, recipes and config load."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from keyguard.cli import cli
from keyguard.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def keyless_section() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    start = text.index("### Keyless")
    return text[start : text.index("\n##", start + 1)]


def commands(text: str) -> list[list[str]]:
    found = []
    for chunk in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in chunk.splitlines():
            m = re.match(r"keyguard ((?:wif|revoke)[^#]*)", line.strip())
            if m:
                found.append(shlex.split(m.group(1)))
    return found


ALL = commands(keyless_section()) + commands((ROOT / "docs" / "keyless.md").read_text("utf-8"))


def test_the_section_shows_every_wif_command() -> None:
    names = {w[1] for w in ALL if w[0] == "wif"}
    assert {"plan", "apply", "env", "verify", "retire-key", "status"} <= names


@pytest.mark.parametrize("words", ALL, ids=" ".join)
def test_each_command_parses(words: list[str]) -> None:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, words[0])
    assert command is not None
    args = words[1:]
    if isinstance(command, click.Group):
        sub_ctx = command.make_context(words[0], list(args), parent=ctx)
        sub = command.get_command(sub_ctx, args[0])
        assert sub is not None, words
        sub.make_context(args[0], args[1:], parent=sub_ctx)
    else:
        command.make_context(words[0], args, parent=ctx)


def test_yaml_recipes_load() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", keyless_section(), re.S)
    blocks += re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "keyless.md").read_text(), re.S)
    assert len(blocks) == 2  # the recipes: GitHub Actions and Kubernetes, in docs/keyless.md
    for block in blocks:
        assert yaml.safe_load(block)


@pytest.mark.parametrize("where", ["README.md", "docs/keyless.md"])
def test_the_documented_federation_config_loads(tmp_path: Path, where: str) -> None:
    text = (ROOT / where).read_text("utf-8")
    if where == "README.md":
        text = keyless_section()
    (block,) = re.findall(r"```toml\n(.*?)```", text, re.S)
    if "[environments.ci]" not in block:
        block = '[environments.ci]\nstores = ["file:ci.json"]\n' + block
    (tmp_path / "keyguard.toml").write_text(block)
    fed = load_config(tmp_path / "keyguard.toml").environments["ci"].federation
    assert fed is not None and fed.service_account == "ci-app"
