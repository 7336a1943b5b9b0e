"""docs/fleet.md and the README's fleet start: every keyguard command parses, every recipe loads
with the shape the issue asks for, and the one-line start runs as shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from keyguard.cli import cli
from keyguard.keys import Secret
from tests.fleet.conftest import ROOT, Run, make_repo

DOC = ROOT / "docs" / "fleet.md"


def _commands(text: str) -> list[list[str]]:
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ").replace('"$((JOB_COMPLETION_INDEX + 1))/4"', "1/4")
        block = block.replace('"/reports/shard-$JOB_COMPLETION_INDEX.json"', "/reports/s.json")
        for line in block.splitlines():
            if "name:" in line:
                continue  # a step's title, not a command
            for m in re.finditer(r"(?:^|[\s;&\"(-])keyguard (fleet [^;#|&\"]*)", line):
                words = shlex.split(m.group(1).replace("${{ matrix.shard }}", "1"))
                found.append([w for w in words if w not in ("$since", "||", "true")])
    return found


def _all_commands() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text("utf-8")
    return _commands(DOC.read_text("utf-8")) + _commands(readme)


def test_the_readme_shows_the_one_line_start_and_links_the_recipes() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert re.search(r"^keyguard fleet scan @repos\.txt\b", readme, re.M)
    assert "(docs/fleet.md)" in readme


@pytest.mark.parametrize("words", _all_commands(), ids=" ".join)
def test_each_documented_command_parses(words: list[str]) -> None:
    ctx = click.Context(cli)
    group = cli.get_command(ctx, "fleet")
    assert isinstance(group, click.Group)
    sub = group.get_command(ctx, words[1])
    assert sub is not None, words
    sub.make_context(words[1], words[2:], parent=ctx)  # raises on an unknown option


def _yaml() -> list[dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text("utf-8"), re.S)
    return [doc for b in blocks for doc in yaml.safe_load_all(b)]


def test_the_github_actions_recipe_has_shards_a_merge_sarif_and_the_previous_report() -> None:
    workflow = _yaml()[0]
    jobs = workflow["jobs"]  # type: ignore[index]
    shards = jobs["scan"]["strategy"]["matrix"]["shard"]
    assert shards == [1, 2, 3, 4]
    scan_steps = " ".join(str(s) for s in jobs["scan"]["steps"])
    assert (
        "--shard ${{ matrix.shard }}/4" in scan_steps
        and "--since previous/fleet.json" in scan_steps
    )
    assert "gh run download" in scan_steps
    merge_steps = jobs["merge"]["steps"]
    uses = [s.get("uses", "") for s in merge_steps]
    assert any(u.startswith("github/codeql-action/upload-sarif") for u in uses)
    assert any(s.get("with", {}).get("name") == "fleet-report" for s in merge_steps)
    assert jobs["merge"]["needs"] == "scan"


def test_the_kubernetes_recipe_is_an_indexed_job_and_a_merge_job() -> None:
    scan_job, merge_job = _yaml()[1:3]
    spec = scan_job["spec"]  # type: ignore[index]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 4
    args = spec["template"]["spec"]["containers"][0]["args"][0]
    assert '--shard "$((JOB_COMPLETION_INDEX + 1))/4"' in args
    merge_args = merge_job["spec"]["template"]["spec"]["containers"][0]["args"][0]  # type: ignore[index]
    assert "keyguard fleet merge /reports/shard-*.json" in merge_args


def test_the_shard_arithmetic_of_the_kubernetes_recipe_covers_every_shard(
    tmp_path: Path, fleet: Run, keys: list[Secret]
) -> None:
    """The recipe's shell, as written, for JOB_COMPLETION_INDEX 0..3, then the merge."""
    import subprocess

    for i in range(5):
        make_repo(tmp_path / "src", f"r{i}", [keys[i % 2]])
    (tmp_path / "repos.txt").write_text("".join(f"{tmp_path}/src/r{i}\n" for i in range(5)))
    for index in range(4):
        script = (
            f'keyguard fleet scan @{tmp_path}/repos.txt --shard "$((JOB_COMPLETION_INDEX + 1))/4" '
            f'--cache {tmp_path}/cache -f json -o "{tmp_path}/shard-$JOB_COMPLETION_INDEX.json"'
        )
        subprocess.run(
            ["sh", "-c", script],
            env={**_env(), "JOB_COMPLETION_INDEX": str(index)},
            check=False,
            timeout=120,
        )
    done = fleet("merge", *(str(tmp_path / f"shard-{i}.json") for i in range(4)))
    assert done.returncode == 1
    assert "5 repositories (0 failed)" in done.stderr


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_the_one_line_start_runs(tmp_path: Path, fleet: Run, keys: list[Secret]) -> None:
    make_repo(tmp_path, "app", [keys[0]])
    (tmp_path / "repos.txt").write_text("# ours\napp\n")
    done = fleet("scan", "@repos.txt")
    assert done.returncode == 1, done.stderr
    assert keys[0].redacted in done.stdout
