"""``fleet scan --since``: ask each remote for its tips, fetch and read only what moved, and
give the same keys and exit code as a full scan would. The previous report is input to check."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from keyguard.keys import Secret, generate_key
from tests.fleet.conftest import GitDaemon, Run, commit, git, make_repo, report


def _list(tmp_path: Path, daemon: GitDaemon, names: list[str]) -> str:
    path = tmp_path / "repos.txt"
    path.write_text("".join(daemon.url(n) + "\n" for n in names))
    return f"@{path}"


def _scan(
    fleet: Run, source: str, cache: Path, out: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = fleet("scan", source, "--cache", str(cache), "-f", "json", "-o", str(out), *extra)
    assert done.returncode in (0, 1, 5), done.stderr
    return done, report(out)


def _findings(data: dict[str, Any]) -> dict[str, set[tuple[str, str, str, int]]]:
    """fingerprint -> its places (repository, path, commit, line): what a user acts on."""
    return {
        k["fingerprint"]: {
            (p["repository"], p["path"], p["commit"], p["line"]) for p in k["places"]
        }
        for k in data["keys"]
    }


def _repos(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in data["repositories"]}


def _mirrors(cache: Path) -> list[str]:
    return sorted(p.name.split("-", 1)[1] for p in cache.glob("*.git")) if cache.exists() else []


def test_a_repository_whose_tips_did_not_move_is_neither_fetched_nor_read(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repos = [make_repo(git_daemon.base, f"r{i}", [keys[i]]) for i in range(3)]
    source = _list(tmp_path, git_daemon, ["r0", "r1", "r2"])
    _, day1 = _scan(fleet, source, tmp_path / "cache", tmp_path / "day1.json")
    commit(repos[1], {"new.txt": f"key: {keys[3].reveal()}\n"}, "oops")
    # Another machine, an empty cache: only the repository that moved is cloned.
    fresh = tmp_path / "fresh-cache"

    done, day2 = _scan(
        fleet, source, fresh, tmp_path / "day2.json", "--since", str(tmp_path / "day1.json")
    )

    assert done.returncode == 1, done.stderr
    assert _mirrors(fresh) == ["r1.git"]
    by_url = _repos(day2)
    for name in ("r0", "r2"):
        assert by_url[git_daemon.url(name)]["mode"] == "unchanged"
        assert by_url[git_daemon.url(name)]["tips"] == _repos(day1)[git_daemon.url(name)]["tips"]
    assert by_url[git_daemon.url("r1")]["mode"] == "incremental"
    assert by_url[git_daemon.url("r1")]["blobs"] == 1
    assert set(_findings(day2)) == {k.fingerprint for k in keys}

    # The next day nothing moved: nothing is fetched, every key is still reported.
    done, day3 = _scan(
        fleet, source, fresh, tmp_path / "day3.json", "--since", str(tmp_path / "day2.json")
    )
    assert done.returncode == 1, done.stderr
    assert {r["mode"] for r in day3["repositories"]} == {"unchanged"}
    assert _findings(day3) == _findings(day2)


def test_new_branches_tags_and_force_pushes_give_what_a_full_scan_gives(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    k = [generate_key() for _ in range(9)]
    quiet = make_repo(git_daemon.base, "quiet", [k[0]])
    ahead = make_repo(git_daemon.base, "ahead", [k[1]])
    branch = make_repo(git_daemon.base, "branch", [])
    tagged = make_repo(git_daemon.base, "tagged", [])
    retag = make_repo(git_daemon.base, "retag", [k[2]])
    rewritten = make_repo(git_daemon.base, "rewritten", [k[3], k[4]])
    pruned = make_repo(git_daemon.base, "pruned", [])
    git(pruned, "checkout", "-q", "-b", "wip")
    commit(pruned, {"wip.env": f"KEY={k[5].reveal()}\n"}, "wip")
    git(pruned, "checkout", "-q", "main")
    names = ["quiet", "ahead", "branch", "tagged", "retag", "rewritten", "pruned"]
    source = _list(tmp_path, git_daemon, names)
    day1 = tmp_path / "day1.json"
    _scan(fleet, source, tmp_path / "cache", day1)

    commit(ahead, {"late.env": f"KEY={k[6].reveal()}\n"}, "late")
    git(branch, "checkout", "-q", "-b", "hotfix")
    commit(branch, {"fix.py": f'KEY = "{k[7].reveal()}"\n'}, "fix")
    git(branch, "checkout", "-q", "main")
    git(tagged, "checkout", "-q", "--detach")
    commit(tagged, {"release.env": f"KEY={k[8].reveal()}\n"}, "release")
    git(tagged, "tag", "-a", "-m", "v1", "v1")  # only an annotated tag holds this commit
    git(tagged, "checkout", "-q", "main")
    git(retag, "tag", "old", "HEAD~1")  # a new tag on a commit already read
    git(rewritten, "reset", "-q", "--hard", "HEAD~2")  # force-push: both keys purged ...
    commit(rewritten, {"conf/app0.env": f"KEY={k[4].reveal()}\n"}, "again")  # ... one comes back
    git(pruned, "branch", "-q", "-D", "wip")  # the only branch that held k[5]
    git(quiet, "gc", "-q")  # a repacked server: the same tips

    done, since = _scan(
        fleet, source, tmp_path / "cache", tmp_path / "since.json", "--since", str(day1)
    )
    full_done, full = _scan(fleet, source, tmp_path / "other-cache", tmp_path / "full.json")

    assert done.returncode == full_done.returncode == 1, done.stderr
    assert _findings(since) == _findings(full)
    assert k[3].fingerprint not in _findings(since) and k[5].fingerprint not in _findings(since)
    for fp in (k[6], k[7], k[8]):
        assert fp.fingerprint in _findings(since)
    now, whole = _repos(since), _repos(full)
    assert {u: r["tips"] for u, r in now.items()} == {u: r["tips"] for u, r in whole.items()}
    modes = {name: now[git_daemon.url(name)]["mode"] for name in names}
    assert modes == {
        "quiet": "unchanged",
        "ahead": "incremental",
        "branch": "incremental",
        "tagged": "incremental",
        "retag": "incremental",
        "rewritten": "full",
        "pruned": "full",
    }
    assert now[git_daemon.url("retag")]["blobs"] == 0


def test_a_repository_deleted_on_the_server_is_reported_not_scanned(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    import shutil

    make_repo(git_daemon.base, "kept")
    gone = make_repo(git_daemon.base, "gone", [keys[0]])
    source = _list(tmp_path, git_daemon, ["kept", "gone"])
    _scan(fleet, source, tmp_path / "cache", tmp_path / "day1.json")
    shutil.rmtree(gone)

    done, day2 = _scan(
        fleet,
        source,
        tmp_path / "cache",
        tmp_path / "day2.json",
        "--since",
        str(tmp_path / "day1.json"),
    )

    assert done.returncode == 5, done.stderr  # what a full scan says: incomplete
    assert _repos(day2)[git_daemon.url("gone")]["status"] == "error"
    assert f"not scanned: {git_daemon.url('gone')}" in done.stderr


def test_a_repository_no_longer_listed_is_reported_as_gone_with_its_keys(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    make_repo(git_daemon.base, "kept")
    make_repo(git_daemon.base, "moved", [keys[0]])
    day1 = tmp_path / "day1.json"
    _scan(fleet, _list(tmp_path, git_daemon, ["kept", "moved"]), tmp_path / "cache", day1)
    source = _list(tmp_path, git_daemon, ["kept"])  # the repository left the organization

    done, day2 = _scan(
        fleet, source, tmp_path / "cache", tmp_path / "day2.json", "--since", str(day1)
    )

    assert done.returncode == 0, done.stderr  # the exit code of a full scan of what is listed
    assert day2["gone"] == [{"url": git_daemon.url("moved"), "keys": [keys[0].fingerprint]}]
    assert f"gone since {day1}: {git_daemon.url('moved')} (1 key found there)" in done.stderr
    text = fleet("scan", source, "--cache", str(tmp_path / "cache"), "--since", str(day1))
    assert f"gone: {git_daemon.url('moved')}" in text.stdout
    assert keys[0].reveal() not in done.stderr + text.stdout + text.stderr


def test_a_shard_does_not_report_the_other_shards_repositories_as_gone(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    names = [f"s{i}" for i in range(6)]
    for name in names:
        make_repo(git_daemon.base, name)
    day1 = tmp_path / "day1.json"
    _scan(fleet, _list(tmp_path, git_daemon, names), tmp_path / "cache", day1)
    source = _list(tmp_path, git_daemon, names[1:])  # s0 left
    shards = []
    for k in (1, 2):
        out = tmp_path / f"shard{k}.json"
        _scan(fleet, source, tmp_path / "cache", out, "--since", str(day1), "--shard", f"{k}/2")
        shards.append(out)

    gone = [g["url"] for s in shards for g in report(s)["gone"]]
    assert gone == [git_daemon.url("s0")]
    merged = tmp_path / "merged.json"
    done = fleet("merge", *map(str, shards), "-f", "json", "-o", str(merged))
    assert done.returncode == 0, done.stderr
    assert report(merged)["gone"] == [{"url": git_daemon.url("s0"), "keys": []}]


def _damage(data: dict[str, Any], how: str) -> str:
    if how == "not json":
        return '{"keyguard_fleet": 1, "repositories": ['
    if how == "a tip that is no object id":
        data["repositories"][0]["tips"]["refs/heads/main"] = "HEAD~3"
    elif how == "a place in an unknown repository":
        data["keys"][0]["places"][0]["repository"] = "git://elsewhere/x"
    elif how == "a fingerprint that is no sha-256":
        data["keys"][0]["fingerprint"] = "abc"
    elif how == "tips that are not a mapping":
        data["repositories"][0]["tips"] = ["refs/heads/main"]
    elif how == "sources that are not a list":
        data["sources"] = "github:x"
    return json.dumps(data)


@pytest.mark.parametrize(
    "how",
    [
        "not json",
        "a tip that is no object id",
        "a place in an unknown repository",
        "a fingerprint that is no sha-256",
        "tips that are not a mapping",
        "sources that are not a list",
    ],
)
def test_a_damaged_previous_report_is_refused_with_exit_2(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret], how: str
) -> None:
    make_repo(git_daemon.base, "r", [keys[0]])
    source = _list(tmp_path, git_daemon, ["r"])
    day1 = tmp_path / "day1.json"
    _scan(fleet, source, tmp_path / "cache", day1)
    day1.write_text(_damage(report(day1), how))

    done = fleet("scan", source, "--cache", str(tmp_path / "cache"), "--since", str(day1))

    assert done.returncode == 2, (how, done.stderr)
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert str(day1) in done.stderr


def test_a_previous_report_of_other_sources_is_refused(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    make_repo(git_daemon.base, "a")
    make_repo(git_daemon.base, "b")
    day1 = tmp_path / "day1.json"
    _scan(fleet, git_daemon.url("a"), tmp_path / "cache", day1)

    done = fleet(
        "scan", git_daemon.url("b"), "--cache", str(tmp_path / "cache"), "--since", str(day1)
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert "other sources" in done.stderr and "127.0.0.1" in done.stderr


@pytest.mark.parametrize("how", ["other rules", "an older keyguard"])
def test_a_previous_report_of_another_scanner_means_a_full_scan(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret], how: str
) -> None:
    make_repo(git_daemon.base, "r", [keys[0]])
    source = _list(tmp_path, git_daemon, ["r"])
    day1 = tmp_path / "day1.json"
    _, data = _scan(fleet, source, tmp_path / "cache", day1)
    # Places a newer engine would find are not in it: carrying them over would miss keys.
    data["keys"] = []
    if how == "other rules":
        data["engine"] = "keyguard 0.0.1 scanner 0000000000000000"
    else:
        data.pop("engine", None)
    day1.write_text(json.dumps(data))

    done, day2 = _scan(
        fleet, source, tmp_path / "cache", tmp_path / "day2.json", "--since", str(day1)
    )

    assert done.returncode == 1, done.stderr
    assert {r["mode"] for r in day2["repositories"]} == {"full"}
    assert set(_findings(day2)) == {keys[0].fingerprint}
    assert "another version of the scanner" in done.stderr and "full" in done.stderr


def test_what_a_previous_run_could_not_read_stays_reported(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    """An unchanged repository keeps the previous run's "not read" notes: the part it could not
    read (here an encrypted zip member) is still unread, and must not turn clean by carry-over."""
    repo = make_repo(git_daemon.base, "r0", [])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("a.txt", "x" * 1000)
    data = bytearray(archive.getvalue())
    data[6] |= 1  # the local header says: encrypted
    data[data.find(b"PK\x01\x02") + 8] |= 1  # and so does the central directory
    (repo / "bad.zip").write_bytes(bytes(data))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "an encrypted archive")
    source = _list(tmp_path, git_daemon, ["r0"])
    _, day1 = _scan(fleet, source, tmp_path / "cache", tmp_path / "day1.json")
    _, day2 = _scan(
        fleet, source, tmp_path / "cache", tmp_path / "day2.json",
        "--since", str(tmp_path / "day1.json"),
    )  # fmt: skip
    first = _repos(day1)[git_daemon.url("r0")]
    second = _repos(day2)[git_daemon.url("r0")]
    assert first.get("notes") and any("bad.zip" in note for note in first["notes"])
    assert second["mode"] == "unchanged"
    assert second["notes"] == first["notes"]
