"""``keyguard audit``: every environment's key against the policy, in the format asked for."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from keyguard.atomic import write_atomic
from keyguard.audit import AuditReport, Verdict, run_audit
from keyguard.audit.collect import Progress
from keyguard.audit.render import FORMATS, summary_line
from keyguard.cli.common import (
    admin_client,
    complete_environment,
    load,
    warn_without_environments,
)
from keyguard.cli.paths import check_writable
from keyguard.errors import ExitCode, UsageError

FAIL_ON = ("warning", "due", "violation", "never")


def exit_code(report: AuditReport, fail_on: str) -> int:
    """1 when the worst verdict reaches ``fail_on``, else 0."""
    if fail_on == "never":
        return int(ExitCode.OK)
    threshold = Verdict(fail_on)
    return int(ExitCode.FOUND if report.worst.rank >= threshold.rank else ExitCode.OK)


def render(report: AuditReport, fmt: str, *, color: bool = False) -> str:
    from keyguard.audit import render as renderer

    if fmt == "html":
        from keyguard.audit.html import render_html

        return render_html(report)
    renderers: dict[str, Callable[[AuditReport], str]] = {
        "json": renderer.render_json,
        "markdown": renderer.render_markdown,
        "csv": renderer.render_csv,
    }
    if fmt in renderers:
        return renderers[fmt](report)
    # A terminal: its own width (rows stack when the table is too wide). A pipe or a file gets
    # a wide table rather than rich's 80 columns: cells fold less.
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else None if sys.stdout.isatty() else 160
    return renderer.render_table(report, color=color, width=width)


@contextmanager
def progress_bar() -> Iterator[Progress | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise (CI logs)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    labels = {"stores": "reading stores", "keys": "listing keys", "usage": "reading usage"}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, object] = {}

        def update(task: str, done: int, total: int | None) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(labels.get(task, task), total=total)
            bar.update(tasks[task], completed=done, total=total)  # type: ignore[arg-type]

        yield update


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report to FILE.")
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="violation",
    show_default=True,
    help="Exit 1 when any environment's verdict is this bad or worse.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Store reads run at most this many at a time.",
)
@click.argument("environments", nargs=-1, shell_complete=complete_environment)
@click.pass_context
def audit(
    ctx: click.Context,
    fmt: str,
    output: str | None,
    fail_on: str,
    workers: int,
    environments: tuple[str, ...],
) -> int:
    """Report each environment's key age, expiry, status and stores against the policy.

    Also lists active keys of the organization that no environment holds. Exits 1 when
    any environment is a violation (see --fail-on), so a scheduled job fails visibly.
    """
    if output:
        check_writable(output, "--output")  # before the audit, not after it
    config = load(ctx)
    # An audit of the organization alone is still an audit (a scheduled job keeps its report
    # and its exit code by verdict), so here the sentence that stops other commands warns.
    warn_without_environments(config, "every active key is listed as unmanaged")
    for name in environments:
        config.environment(name)  # unknown names fail before any network call
    with admin_client(config) as client, progress_bar() as progress:
        report = run_audit(
            config,
            client,
            environments,
            max_workers=workers,
            progress=progress,
            probe=client.reaches_admin_api,
        )
    from keyguard.audit.federation import audit_federation

    report = audit_federation(config, report)
    if output:
        text = render(report, fmt)
        try:
            write_atomic(Path(output), text, follow_symlinks=True)
        except OSError as exc:
            raise UsageError(f"cannot write the report to {output}: {exc.strerror}") from None
        click.echo(f"keyguard: audit report written to {output}: {summary_line(report)}", err=True)
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")  # no-color.org
        click.echo(render(report, fmt, color=color), nl=False)
    return exit_code(report, fail_on)
