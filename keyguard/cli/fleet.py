"""``keyguard fleet scan`` and ``keyguard fleet merge``: every repository of an organization."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from keyguard.atomic import write_atomic
from keyguard.errors import ExitCode
from keyguard.fleet.model import FleetReport, load, merge
from keyguard.fleet.report import FORMATS, printable, render, summary
from keyguard.fleet.run import FleetOptions, Progress, Verifier, default_cache, run_fleet
from keyguard.fleet.sources import ApiOptions, parse_shard
from keyguard.words import plural


@click.group()
def fleet() -> None:
    """Scan the whole history of many repositories: an organization, a group, a list."""


def _format_option(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")(f)
    return click.option(
        "-f",
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="text",
        show_default=True,
        help="Report format: text for people, json (also the state for --since), sarif, html.",
    )(f)


@fleet.command("scan")
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--cache",
    type=click.Path(file_okay=False),
    help=f"Folder of bare mirrors, kept between runs (default: {default_cache()}).",
)
@click.option("--since", type=click.Path(dir_okay=False), help="Previous JSON report: only new.")
@click.option("--shard", metavar="K/N", help="Scan only shard K of N (stable by URL).")
@click.option(
    "--executor",
    default="local",
    show_default=True,
    metavar="local|dask://HOST:PORT",
    help="Where repositories are scanned: a local process pool or a Dask cluster.",
)
@click.option("--jobs", type=click.IntRange(1, 256), help="Local processes (default: cores).")
@click.option("--verify", is_flag=True, help="Check each distinct key once with GET /v1/models.")
@_format_option
@click.option(
    "--github-api-url",
    default="https://api.github.com",
    show_default=True,
    help="GitHub REST API for github:ORG sources (GitHub Enterprise: https://HOST/api/v3).",
)
@click.option(
    "--gitlab-url",
    default="https://gitlab.com",
    show_default=True,
    help="GitLab instance for gitlab:GROUP sources.",
)
@click.option("--include-archived", is_flag=True, help="Also scan archived repositories.")
@click.option("--include-forks", is_flag=True, help="Also scan forks.")
@click.pass_context
def scan(
    ctx: click.Context,
    sources: tuple[str, ...],
    cache: str | None,
    since: str | None,
    shard: str | None,
    executor: str,
    jobs: int | None,
    verify: bool,
    fmt: str,
    output: str | None,
    github_api_url: str,
    gitlab_url: str,
    include_archived: bool,
    include_forks: bool,
) -> int:
    """Scan every blob of every ref of each repository in SOURCES.

    SOURCES: @FILE (one URL or path a line), github:ORG (GITHUB_TOKEN), gitlab:GROUP
    (GITLAB_TOKEN), a clone URL or a local path.

    Exit 0 when clean, 1 when a key is found, 5 when a repository could not be scanned
    (the report is written; run again), 2 on a usage error.
    """
    obj = ctx.find_root().obj or {}
    opts = FleetOptions(
        sources=list(sources),
        cache=Path(cache) if cache else default_cache(),
        since=since,
        shard=parse_shard(shard) if shard else None,
        executor=executor,
        jobs=jobs or 0,
        verify=_verifier(obj.get("config_path")) if verify else None,
        api=ApiOptions(
            github_api_url=github_api_url,
            gitlab_url=gitlab_url,
            include_archived=include_archived,
            include_forks=include_forks,
        ),
    )
    show = _progress if sys.stderr.isatty() else None
    report = run_fleet(opts, show)
    if show is not None:
        sys.stderr.write("\n")
    return _present(report, fmt, output, f"gone since {since}" if since else "gone")


@fleet.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_format_option
def merge_reports(reports: tuple[str, ...], fmt: str, output: str | None) -> int:
    """Merge the JSON reports of the shards of one run into one report.

    Exit codes as for `fleet scan`: 0 clean, 1 keys found, 5 some repository not scanned.
    """
    return _present(merge([load(path) for path in reports]), fmt, output)


def _present(report: FleetReport, fmt: str, output: str | None, gone: str = "gone") -> int:
    text = render(report, fmt)
    if output:
        _write(Path(output), text)
    else:
        sys.stdout.write(text)
    for notice in report.notices:
        click.echo(printable(f"keyguard: {notice}"), err=True)
    for r in sorted(report.failed, key=lambda r: r.url):
        click.echo(printable(f"keyguard: not scanned: {r.url}: {r.error}"), err=True)
    for g in report.gone:
        found = plural(len(g.keys), "key")
        click.echo(printable(f"keyguard: {gone}: {g.url} ({found} found there)"), err=True)
    click.echo(summary(report), err=True)
    if report.places():
        return int(ExitCode.FOUND)
    if report.failed:
        return int(ExitCode.PENDING)
    return int(ExitCode.OK)


def _progress(p: Progress) -> None:
    slowest = f", slowest {p.slowest[0]} ({p.slowest[1]:.1f}s)" if p.slowest else ""
    line = (
        f"\rkeyguard fleet: {p.done}/{p.total} repositories, {p.bytes / 1e6:.1f} MB, "
        f"{p.findings} finding(s), {p.failed} failed{slowest}"
    )
    sys.stderr.write(printable(line[1:201]).join(("\r", "\x1b[K")))
    sys.stderr.flush()


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def _verifier(config_path: str | None) -> Verifier:
    """httpx loads only here, and keys go only to the configured base URL."""
    from keyguard.config import find_config, load_config
    from keyguard.liveness import LivenessChecker

    return LivenessChecker(load_config(find_config(config_path)).base_url)
