"""``github:ORG`` and ``gitlab:GROUP`` from fakes of their REST APIs on loopback, and the rules
for tokens and clone URLs, which are hostile input: tested as the attacks they are."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

from keyguard.keys import Secret
from tests.fleet.conftest import Api, GitDaemon, Run, make_repo, report


def _gh_repo(name: str, clone_url: str, **flags: bool) -> dict[str, object]:
    return {"full_name": f"acme/{name}", "clone_url": clone_url, **flags}


def _argv_log(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A ``git`` first on PATH that records its argv, then runs the real git."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "argv.log"
    real = "/usr/bin/git" if os.path.exists("/usr/bin/git") else "git"
    (shim / "git").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755 | stat.S_IXUSR)
    return {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}"}, log


def test_github_org_pages_with_link_headers_and_skips_archived_and_forks(
    tmp_path: Path, fake_api: Api, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    for name in ("one", "two", "old", "fork"):
        make_repo(git_daemon.base, name, [keys[0]] if name != "two" else [keys[1]])
    page1 = "/orgs/acme/repos?per_page=100&type=all"
    page2 = "/orgs/acme/repos?per_page=100&type=all&page=2"
    fake_api.routes[page1] = (
        [
            _gh_repo("one", git_daemon.url("one")),
            _gh_repo("old", git_daemon.url("old"), archived=True),
        ],
        {"link": f'<{{url}}{page2}>; rel="next", <{{url}}{page2}>; rel="last"'},
    )
    fake_api.routes[page2] = (
        [
            _gh_repo("two", git_daemon.url("two")),
            _gh_repo("fork", git_daemon.url("fork"), fork=True),
        ],
        {},
    )
    out = tmp_path / "r.json"
    args = ["scan", "github:acme", "--github-api-url", fake_api.url, "--cache", str(tmp_path / "c")]

    done = fleet(*args, "-f", "json", "-o", str(out), env={"GITHUB_TOKEN": "ghp_" + "t" * 36})

    assert done.returncode == 1, done.stderr
    urls = {r["url"] for r in report(out)["repositories"]}
    assert urls == {git_daemon.url("one"), git_daemon.url("two")}
    assert [h.get("authorization") for _, h in fake_api.requests] == ["Bearer ghp_" + "t" * 36] * 2

    done = fleet(*args, "--include-archived", "--include-forks", "-f", "json", "-o", str(out))
    assert len(report(out)["repositories"]) == 4


def test_a_github_next_page_on_another_host_is_refused_so_the_token_stays_home(
    tmp_path: Path, fake_api: Api, fleet: Run
) -> None:
    fake_api.routes["/orgs/acme/repos?per_page=100&type=all"] = (
        [],
        {"link": '<http://attacker.invalid/steal>; rel="next"'},
    )
    done = fleet("scan", "github:acme", "--github-api-url", fake_api.url, env={"GITHUB_TOKEN": "x"})
    assert done.returncode == 2
    assert "another host" in done.stderr


def test_a_forge_answer_nested_past_the_parsers_depth_is_one_line(
    fake_api: Api, fleet: Run
) -> None:
    fake_api.routes["/orgs/acme/repos?per_page=100&type=all"] = (b"[" * 100_000, {})
    done = fleet("scan", "github:acme", "--github-api-url", fake_api.url, env={"GITHUB_TOKEN": "x"})
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr and "not JSON" in done.stderr


def test_the_github_token_goes_to_git_as_a_header_never_in_argv_or_a_report(
    tmp_path: Path, fake_api: Api, fleet: Run, keys: list[Secret]
) -> None:
    fake_api.git_base = tmp_path / "served"
    make_repo(fake_api.git_base, "private", [keys[0]])
    token = "ghp_" + "s3cr3t" * 6
    fake_api.routes["/orgs/acme/repos?per_page=100&type=all"] = (
        [_gh_repo("private", f"{fake_api.url}/private")],
        {},
    )
    env, log = _argv_log(tmp_path)
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        "github:acme",
        "--github-api-url",
        fake_api.url,
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
        env={**env, "GITHUB_TOKEN": token},
    )

    assert done.returncode == 1, done.stderr
    git_auth = {h.get("authorization") for p, h in fake_api.requests if "/private/" in p}
    expected = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert f"Basic {expected}" in git_auth
    assert "clone --mirror" in log.read_text()
    for text in (log.read_text(), done.stdout, done.stderr, out.read_text()):
        assert token not in text and expected not in text
    cache_config = next((tmp_path / "c").glob("*.git")) / "config"
    assert token not in cache_config.read_text() and expected not in cache_config.read_text()


def test_credentials_in_a_listed_url_are_cut_out_and_redacted(
    tmp_path: Path, fake_api: Api, fleet: Run, keys: list[Secret]
) -> None:
    fake_api.git_base = tmp_path / "served"
    make_repo(fake_api.git_base, "repo", [keys[0]])
    host = fake_api.url.removeprefix("http://")
    (tmp_path / "repos.txt").write_text(f"http://deploy:hunter2pass@{host}/repo\n")
    env, log = _argv_log(tmp_path)
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        f"@{tmp_path / 'repos.txt'}",
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
        env=env,
    )

    assert done.returncode == 1, done.stderr
    assert report(out)["repositories"][0]["url"] == f"http://{host}/repo"
    for text in (log.read_text(), done.stdout, done.stderr, out.read_text()):
        assert "hunter2pass" not in text
    sent = {h.get("authorization") for _, h in fake_api.requests}
    assert "Basic " + base64.b64encode(b"deploy:hunter2pass").decode() in sent


def test_hostile_clone_urls_run_nothing_and_are_reported(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    make_repo(git_daemon.base, "fine")
    marker = tmp_path / "pwned"
    hostile = [
        f"ext::sh -c touch% {marker}",
        f"--upload-pack=touch {marker}",
        f"-u touch {marker}",
        f"fd::{marker}",
    ]
    (tmp_path / "repos.txt").write_text("\n".join([*hostile, git_daemon.url("fine")]) + "\n")
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        f"@{tmp_path / 'repos.txt'}",
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
    )

    assert done.returncode == 5, done.stderr
    assert not marker.exists()
    repos = report(out)["repositories"]
    assert sum(r["status"] == "error" for r in repos) == len(hostile)
    assert [r["url"] for r in repos if r["status"] == "ok"] == [git_daemon.url("fine")]


def test_an_api_answer_may_not_point_a_clone_at_a_local_path(
    tmp_path: Path, fake_api: Api, fleet: Run
) -> None:
    fake_api.routes["/orgs/acme/repos?per_page=100&type=all"] = (
        [_gh_repo("x", f"file://{tmp_path}"), _gh_repo("y", "ext::sh -c id")],
        {},
    )
    done = fleet("scan", "github:acme", "--github-api-url", fake_api.url)
    assert done.returncode == 2
    assert "not allowed" in done.stderr


def test_gitlab_group_pages_with_x_next_page_and_includes_subgroups(
    tmp_path: Path, fake_api: Api, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    for name in ("core", "sub-tool", "archived", "forked"):
        make_repo(git_daemon.base, name, [keys[2]])
    base = "/api/v4/groups/acme%2Fplatform/projects?include_subgroups=true&per_page=100&page="

    def project(name: str, **extra: object) -> dict[str, object]:
        return {
            "path_with_namespace": f"acme/platform/{name}",
            "http_url_to_repo": git_daemon.url(name),
            **extra,
        }

    fake_api.routes[base + "1"] = (
        [project("core"), project("archived", archived=True)],
        {"x-next-page": "2"},
    )
    fake_api.routes[base + "2"] = (
        [project("sub-tool"), project("forked", forked_from_project={"id": 1})],
        {"x-next-page": ""},
    )
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        "gitlab:acme/platform",
        "--gitlab-url",
        fake_api.url,
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
        env={"GITLAB_TOKEN": "glpat-x"},
    )

    assert done.returncode == 1, done.stderr
    assert {r["url"] for r in report(out)["repositories"]} == {
        git_daemon.url("core"),
        git_daemon.url("sub-tool"),
    }
    assert {h.get("private-token") for _, h in fake_api.requests} == {"glpat-x"}
    assert len(fake_api.requests) == 2


def test_sources_are_merged_and_deduplicated(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    make_repo(git_daemon.base, "a")
    (tmp_path / "repos.txt").write_text(f"{git_daemon.url('a')}\n{git_daemon.url('a')}.git/\n")
    out = tmp_path / "r.json"
    fleet(
        "scan",
        f"@{tmp_path / 'repos.txt'}",
        git_daemon.url("a"),
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
    )
    assert len(report(out)["repositories"]) == 1


def test_a_token_written_as_the_user_name_of_a_listed_url_never_leaks(
    tmp_path: Path, fake_api: Api, fleet: Run, keys: list[Secret]
) -> None:
    # https://TOKEN@github.com/org/repo is how GitHub documents a PAT in a clone URL.
    fake_api.git_base = tmp_path / "served"
    make_repo(fake_api.git_base, "repo", [keys[0]])
    host = fake_api.url.removeprefix("http://")
    token = "ghp_" + "Z" * 36
    (tmp_path / "repos.txt").write_text(f"http://{token}@{host}/repo\n")
    env, log = _argv_log(tmp_path)
    out = tmp_path / "r.json"

    done = fleet(
        "scan",
        f"@{tmp_path / 'repos.txt'}",
        "--cache",
        str(tmp_path / "c"),
        "-f",
        "json",
        "-o",
        str(out),
        env=env,
    )

    assert done.returncode == 1, done.stderr
    assert report(out)["repositories"][0]["url"] == f"http://{host}/repo"
    config = (next((tmp_path / "c").glob("*.git")) / "config").read_text()
    for text in (log.read_text(), done.stdout, done.stderr, out.read_text(), config):
        assert token not in text
    sent = {h.get("authorization") for _, h in fake_api.requests}
    assert "Basic " + base64.b64encode(f"{token}:".encode()).decode() in sent


def test_a_token_as_user_name_stays_out_of_the_not_scanned_line(
    tmp_path: Path, fake_api: Api, fleet: Run
) -> None:
    fake_api.git_base = tmp_path / "served"
    fake_api.git_base.mkdir()
    host = fake_api.url.removeprefix("http://")
    token = "glpat-" + "Q" * 20
    (tmp_path / "repos.txt").write_text(f"http://{token}@{host}/missing\n")
    out = tmp_path / "r.json"

    done = fleet(
        "scan", f"@{tmp_path / 'repos.txt'}", "--cache", str(tmp_path / "c"), "-o", str(out)
    )

    assert done.returncode == 5, done.stderr
    assert f"not scanned: http://{host}/missing" in done.stderr
    assert token not in done.stdout + done.stderr + out.read_text()


def test_a_forge_api_url_in_plain_http_or_with_credentials_is_refused(
    tmp_path: Path, fleet: Run
) -> None:
    # The token goes to this URL: over plain http only to loopback (a local fake), and never
    # with a user or password in it (the URL is written into the report's sources).
    secret = "glpat-" + "P" * 20
    for args in (
        ["github:acme", "--github-api-url", "http://ghe.example.invalid/api/v3"],
        ["gitlab:grp", "--gitlab-url", "http://gitlab.example.invalid"],
        ["gitlab:grp", "--gitlab-url", f"https://oauth2:{secret}@gitlab.example.invalid"],
    ):
        done = fleet("scan", *args, env={"GITHUB_TOKEN": secret, "GITLAB_TOKEN": secret})
        assert done.returncode == 2, (args, done.stderr)
        assert args[1] in done.stderr and "Traceback" not in done.stderr
        assert secret not in done.stderr + done.stdout
