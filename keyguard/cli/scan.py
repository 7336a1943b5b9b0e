"""``keyguard scan`` and ``keyguard install-hook``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from keyguard.atomic import write_atomic
from keyguard.cli.scanning import DEFAULT_FORMAT
from keyguard.cli.scanning import scan as run_scan_command
from keyguard.errors import ExitCode, UsageError
from keyguard.scanner.report import FORMATS

#: The hook script, package data (keyguard/hooks/pre-commit): the one copy, which
#: ``install-hook`` writes and a person may copy by hand.
HOOK_RESOURCE = "hooks/pre-commit"
#: A line of every hook keyguard wrote (the second: what earlier versions wrote).
HOOK_MARKERS = ("# keyguard's plain git hook", "# installed by keyguard install-hook")
#: git runs ``pre-merge-commit`` before it records a merge: a key merged in is refused too.
HOOK_NAMES = ("pre-commit", "pre-merge-commit")
#: The script's fallback when ``keyguard-scan`` is not on git's PATH: installed, it names the
#: Python that ran ``install-hook`` instead.
_FALLBACK = 'exec python3 -m keyguard.scanner.hook "$@"\n'


def hook_script(python: str | None = None) -> str:
    """The hook script; with ``python``, its fallback runs that interpreter."""
    from importlib.resources import files

    script = files("keyguard").joinpath(HOOK_RESOURCE).read_text("utf-8")
    if python is None:
        return script
    assert _FALLBACK in script, "keyguard/hooks/pre-commit lost its fallback line"
    return script.replace(_FALLBACK, _FALLBACK.replace("python3", _quote(python), 1))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--staged", is_flag=True, help="Scan the staged content (the index), not files.")
@click.option(
    "--history",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[REV-RANGE]",
    help="Scan every blob reachable from REV-RANGE (default: all refs), each once.",
)
@click.option("--stdin", "use_stdin", is_flag=True, help="Scan standard input (same as PATH -).")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=DEFAULT_FORMAT,
    show_default=True,
    help="Report format (sarif: for code scanning).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the report to FILE.")
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False),
    help="Accept the keys listed in FILE (default: [scan] baseline in keyguard.toml).",
)
@click.option(
    "--update-baseline",
    is_flag=True,
    help="Write every finding to the baseline (with --staged: add them to it).",
)
@click.option("--jobs", type=click.IntRange(1, 64), help="Processes to read with (default: cores).")
@click.option(
    "--verify",
    is_flag=True,
    help="Check each key found with GET /v1/models (free): live, revoked or unknown.",
)
@click.pass_context
def scan(
    ctx: click.Context,
    paths: tuple[str, ...],
    staged: bool,
    history: str | None,
    use_stdin: bool,
    fmt: str,
    output: str | None,
    baseline: str | None,
    update_baseline: bool,
    jobs: int | None,
    verify: bool = False,
) -> int:
    """Find Anthropic keys in PATHs (default .), the staged content, or git history.

    Exit 0 when clean, 1 when a key is found, 2 on a usage error.
    """
    obj = ctx.find_root().obj or {}
    return run_scan_command(
        paths,
        staged=staged,
        history=history,
        use_stdin=use_stdin,
        fmt=fmt,
        output=output,
        baseline=baseline,
        update_baseline=update_baseline,
        jobs=jobs,
        verify=verify,
        config_path=obj.get("config_path"),
        base_url=obj.get("base_url"),
    )


def _hooks_dir() -> Path:
    proc = subprocess.run(
        ["git", "rev-parse", "--git-path", "hooks"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise UsageError("not in a git repository; run `keyguard install-hook` inside one")
    return Path(proc.stdout.strip())


@click.command("install-hook")
@click.option("--force", is_flag=True, help="Replace existing pre-commit / pre-merge-commit hooks.")
def install_hook(force: bool) -> int:
    """Install plain git pre-commit and pre-merge-commit hooks that run keyguard-scan."""
    hooks = [_hooks_dir() / name for name in HOOK_NAMES]
    for hook in hooks:
        ours = hook.exists() and any(m in hook.read_text("utf-8", "replace") for m in HOOK_MARKERS)
        if hook.exists() and not ours and not force:
            raise UsageError(
                f"{hook} exists and is not keyguard's; add `keyguard-scan` to it by hand, "
                "use the pre-commit framework, or pass --force to replace it"
            )
    script = hook_script(sys.executable)
    for hook in hooks:
        write_atomic(hook, script, mode=0o755)
    names = " and ".join(str(h) for h in hooks)
    click.echo(f"keyguard: installed {names}; every commit and merge is now scanned for keys")
    return int(ExitCode.OK)


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'" if os.sep in path or " " in path else path
