"""``keyguard fleet scan`` over git:// on loopback: history, grouping, --since, shards, merge."""

from __future__ import annotations

from pathlib import Path

from keyguard.keys import Secret
from tests.fleet.conftest import GitDaemon, Run, commit, comparable, git, make_repo, report


def _list(tmp_path: Path, daemon: GitDaemon, names: list[str], extra: str = "") -> str:
    path = tmp_path / "repos.txt"
    lines = ["# the organization's repositories", *(daemon.url(n) for n in names)]
    path.write_text("\n".join(lines) + "\n" + extra)
    return f"@{path}"


def _no_key_anywhere(keys: list[Secret], *texts: str) -> None:
    for key in keys:
        for text in texts:
            assert key.reveal() not in text


def test_every_ref_of_every_repository_is_scanned_and_keys_are_grouped_across_repositories(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    shared, side, deleted = keys[0], keys[1], keys[2]
    make_repo(git_daemon.base, "api", [shared])
    web = make_repo(git_daemon.base, "web", [shared, deleted])
    commit(web, {"conf/app1.env": "KEY=from-the-vault\n"}, "remove the key")
    git(web, "checkout", "-q", "-b", "experiment")
    commit(web, {"side.py": f'TOKEN = "{side.reveal()}"\n'}, "try something")
    git(web, "checkout", "-q", "main")
    make_repo(git_daemon.base, "docs")
    out = tmp_path / "report.json"

    done = fleet(
        "scan",
        _list(tmp_path, git_daemon, ["api", "web", "docs"]),
        "-f",
        "json",
        "-o",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--jobs",
        "2",
    )

    assert done.returncode == 1, done.stderr
    data = report(out)
    _no_key_anywhere(keys, done.stdout, done.stderr, out.read_text())
    groups = {k["fingerprint"]: k for k in data["keys"]}
    assert set(groups) == {shared.fingerprint, side.fingerprint, deleted.fingerprint}
    places = groups[shared.fingerprint]["places"]
    assert groups[shared.fingerprint]["repositories"] == 2
    assert {p["repository"] for p in places} == {git_daemon.url("api"), git_daemon.url("web")}
    assert all(p["path"] == "conf/app0.env" and p["line"] == 2 for p in places)
    assert groups[shared.fingerprint]["redacted"] == shared.redacted
    side_place = groups[side.fingerprint]["places"][0]
    assert side_place["path"] == "side.py"
    assert side_place["commit"] == git(web, "rev-parse", "experiment")
    repos = {r["url"]: r for r in data["repositories"]}
    assert set(repos[git_daemon.url("web")]["tips"]) == {"refs/heads/main", "refs/heads/experiment"}
    assert all(r["status"] == "ok" and r["mode"] == "full" for r in repos.values())
    assert (tmp_path / "cache").is_dir()


def test_a_clean_fleet_exits_0(tmp_path: Path, git_daemon: GitDaemon, fleet: Run) -> None:
    make_repo(git_daemon.base, "clean")
    done = fleet("scan", git_daemon.url("clean"), "--cache", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
    assert "1 repository (0 failed)" in done.stderr


def test_since_reads_only_new_commits_and_keeps_what_was_found(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repos = [make_repo(git_daemon.base, f"r{i}", [keys[i]]) for i in range(3)]
    source = _list(tmp_path, git_daemon, ["r0", "r1", "r2"])
    cache = str(tmp_path / "cache")
    first, second = tmp_path / "day1.json", tmp_path / "day2.json"
    assert fleet("scan", source, "--cache", cache, "-f", "json", "-o", str(first)).returncode == 1
    commit(repos[1], {"new.txt": f"key: {keys[3].reveal()}\n"}, "oops")

    done = fleet(
        "scan", source, "--cache", cache, "--since", str(first), "-f", "json", "-o", str(second)
    )

    assert done.returncode == 1, done.stderr
    data = report(second)
    by_url = {r["url"]: r for r in data["repositories"]}
    assert by_url[git_daemon.url("r0")]["mode"] == "unchanged"
    assert by_url[git_daemon.url("r0")]["blobs"] == 0
    changed = by_url[git_daemon.url("r1")]
    assert changed["mode"] == "incremental"
    assert changed["blobs"] == 1  # the one new blob, not the whole history again
    assert {k["fingerprint"] for k in data["keys"]} == {k.fingerprint for k in keys}


def test_a_force_push_that_rewrote_history_is_rescanned_in_full(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "r", [keys[0]])
    cache = str(tmp_path / "cache")
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    fleet("scan", git_daemon.url("r"), "--cache", cache, "-f", "json", "-o", str(first))
    git(repo, "reset", "-q", "--hard", "HEAD~1")  # the key is purged from history
    commit(repo, {"conf/app0.env": "KEY=env:ANTHROPIC_API_KEY\n"}, "rewritten")

    done = fleet(
        "scan",
        git_daemon.url("r"),
        "--cache",
        cache,
        "--since",
        str(first),
        "-f",
        "json",
        "-o",
        str(second),
    )

    assert done.returncode == 0, done.stderr
    data = report(second)
    assert data["repositories"][0]["mode"] == "full"
    assert data["keys"] == []


def test_merging_the_shard_reports_equals_one_unsharded_run(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    names = [f"svc{i}" for i in range(8)]
    for i, name in enumerate(names):
        make_repo(git_daemon.base, name, [keys[i % 3]] if i % 2 else [])
    source = _list(tmp_path, git_daemon, names)
    whole = tmp_path / "whole.json"
    fleet("scan", source, "--cache", str(tmp_path / "c0"), "-f", "json", "-o", str(whole))
    shards = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}.json"
        done = fleet(
            "scan",
            source,
            "--shard",
            f"{k}/3",
            "--cache",
            str(tmp_path / f"c{k}"),
            "-f",
            "json",
            "-o",
            str(out),
        )
        assert done.returncode in (0, 1), done.stderr
        shards.append(out)
    seen = [r["url"] for s in shards for r in report(s)["repositories"]]
    assert sorted(seen) == sorted(git_daemon.url(n) for n in names)  # each in exactly one

    merged = tmp_path / "merged.json"
    done = fleet("merge", *map(str, shards), "-f", "json", "-o", str(merged))

    assert done.returncode == 1, done.stderr
    assert comparable(report(merged)) == comparable(report(whole))


def test_a_repository_that_fails_is_reported_and_the_run_goes_on(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    make_repo(git_daemon.base, "ok", [keys[0]])
    make_repo(git_daemon.base, "clean")
    source = _list(tmp_path, git_daemon, ["gone", "ok"])
    out = tmp_path / "r.json"

    done = fleet("scan", source, "--cache", str(tmp_path / "c"), "-f", "json", "-o", str(out))

    assert done.returncode == 1, done.stderr  # findings come first
    repos = {r["url"]: r for r in report(out)["repositories"]}
    assert repos[git_daemon.url("gone")]["status"] == "error"
    assert "git clone failed" in repos[git_daemon.url("gone")]["error"]
    assert repos[git_daemon.url("ok")]["status"] == "ok"
    assert f"not scanned: {git_daemon.url('gone')}" in done.stderr

    done = fleet(
        "scan", _list(tmp_path, git_daemon, ["gone", "clean"]), "--cache", str(tmp_path / "c")
    )
    assert done.returncode == 5, done.stderr  # incomplete: the report is written, run again


def test_text_sarif_and_html_reports_name_places_and_never_a_key(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    import json

    import jsonschema

    make_repo(git_daemon.base, "a", [keys[0]])
    cache = str(tmp_path / "c")
    text = fleet("scan", git_daemon.url("a"), "--cache", cache)
    assert keys[0].redacted in text.stdout and "conf/app0.env:2" in text.stdout
    sarif = fleet("scan", git_daemon.url("a"), "--cache", cache, "-f", "sarif")
    schema = json.loads(
        (Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json").read_text()
    )
    jsonschema.validate(json.loads(sarif.stdout), schema)
    page = fleet("scan", git_daemon.url("a"), "--cache", cache, "-f", "html")
    assert "<table>" in page.stdout and keys[0].redacted in page.stdout
    _no_key_anywhere(keys, text.stdout, sarif.stdout, page.stdout, text.stderr)


def test_bad_arguments_are_one_line_errors(tmp_path: Path, fleet: Run) -> None:
    (tmp_path / "not-a-report.json").write_text("[1, 2]")
    for args in (
        ["scan", ".", "--shard", "4/3"],
        ["scan", ".", "--executor", "spark://x"],
        ["merge", str(tmp_path / "not-a-report.json")],
        ["scan", "@" + str(tmp_path / "missing.txt")],
    ):
        done = fleet(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") <= 3


def test_the_fleet_command_loads_neither_dask_nor_httpx_until_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, keyguard.cli.fleet, keyguard.fleet.run;"
        "bad = {'distributed', 'dask', 'httpx'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_hostile_file_name_cannot_drive_the_terminal(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "evil")
    commit(repo, {"x\x1b]0;owned\x07\x1b[2J.env": f"KEY={keys[0].reveal()}\n"}, "evil name")
    done = fleet("scan", git_daemon.url("evil"), "--cache", str(tmp_path / "c"))
    assert done.returncode == 1, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "x\\x1b]0;owned\\x07\\x1b[2J.env" in done.stdout
