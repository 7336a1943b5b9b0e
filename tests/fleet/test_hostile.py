"""What a scanned repository (or a report handed back) can hold against the security team's
org-wide scan: keys hidden in ref names or behind the repository's own inline allows, hostile
reports and URLs, and names that would drive the terminal. Each test is the attack."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from keyguard.keys import Secret
from keyguard.scanner.detect import scan_bytes
from keyguard.scanner.engine import masked
from tests.fleet.conftest import Api, GitDaemon, Run, commit, git, make_repo, report


def _scan(fleet: Run, tmp_path: Path, source: str, out: str, *extra: str) -> tuple[str, int]:
    path = tmp_path / out
    done = fleet(
        "scan", source, "--cache", str(tmp_path / "c"), "-f", "json", "-o", str(path), *extra
    )
    assert "Traceback" not in done.stderr, done.stderr
    return path.read_text() + done.stdout + done.stderr, done.returncode


def test_a_key_used_as_a_branch_or_tag_name_is_found_and_never_written_in_full(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "app")
    git(repo, "branch", keys[0].reveal())
    git(repo, "tag", f"release/{keys[1].reveal()}")
    url = git_daemon.url("app")

    text, code = _scan(fleet, tmp_path, url, "day1.json")

    assert code == 1
    data = json.loads((tmp_path / "day1.json").read_text())
    found = {k["fingerprint"]: k for k in data["keys"]}
    assert set(found) == {keys[0].fingerprint, keys[1].fingerprint}
    branch = found[keys[0].fingerprint]["places"][0]
    assert branch["path"] == f"refs/heads/{keys[0].redacted}"
    assert (branch["line"], branch["encoding"]) == (0, "ref name")
    assert branch["commit"] == git(repo, "rev-parse", "HEAD")
    for key in keys:
        assert key.reveal() not in text

    # The tips are the --since state: with a masked ref name they no longer match the remote,
    # so the repository is read again, and the keys in its ref names are still reported.
    text, code = _scan(fleet, tmp_path, url, "day2.json", "--since", str(tmp_path / "day1.json"))
    day2 = report(tmp_path / "day2.json")
    assert code == 1
    assert day2["repositories"][0]["mode"] != "unchanged"
    assert {k["fingerprint"] for k in day2["keys"]} == set(found)
    for key in keys:
        assert key.reveal() not in text


def test_a_repositorys_own_inline_allow_does_not_hide_a_key_from_the_fleet_scan(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "app")
    filler = "x=1;" * 700  # minified code: the marker need not even be near the key
    commit(
        repo,
        {
            "settings.py": f'ANTHROPIC_API_KEY = "{keys[0].reveal()}"  # keyguard: allow\n',
            "bundle.min.js": f'/*keyguard:allow*/{filler}var k="{keys[1].reveal()}";{filler}\n',
            "plain.env": f"KEY={keys[2].reveal()}\n",
        },
    )
    url, cache = git_daemon.url("app"), str(tmp_path / "c")

    text, code = _scan(fleet, tmp_path, url, "r.json")

    assert code == 1
    data = report(tmp_path / "r.json")
    assert data["stats"]["keys"] == 3 and data["stats"]["allowed_inline"] == 2
    flagged = {
        k["fingerprint"]: [p.get("allowed_inline", False) for p in k["places"]]
        for k in data["keys"]
    }
    assert flagged == {
        keys[0].fingerprint: [True],
        keys[1].fingerprint: [True],
        keys[2].fingerprint: [False],
    }
    assert "2 allowed inline" in text  # the summary on stderr
    shown = fleet("scan", url, "--cache", cache)
    assert shown.returncode == 1
    assert shown.stdout.count("allowed inline by the repository") == 2
    sarif = json.loads(fleet("scan", url, "--cache", cache, "-f", "sarif").stdout)
    schema = Path(__file__).parents[1] / "data" / "sarif-schema-2.1.0.json"
    jsonschema.validate(sarif, json.loads(schema.read_text()))
    results = sarif["runs"][0]["results"]
    assert sorted(r["properties"].get("allowedInline", False) for r in results) == [
        False,
        True,
        True,
    ]
    page = fleet("scan", url, "--cache", cache, "-f", "html").stdout
    assert page.count("allowed inline by the repository") == 2
    for key in keys:
        assert key.reveal() not in text + shown.stdout + json.dumps(sarif) + page

    # Read back (--since, merge), the flag stays.
    merged = fleet("merge", str(tmp_path / "r.json"), "-f", "json")
    assert merged.returncode == 1
    assert json.loads(merged.stdout)["stats"]["allowed_inline"] == 2


def test_a_hostile_report_is_a_one_line_usage_error(tmp_path: Path, fleet: Run) -> None:
    base = {"keyguard_fleet": 1, "keys": []}
    entry = {"url": "git://h/x", "status": "ok", "tips": {}}
    hostile = {
        "deep": "[" * 100_000 + "]" * 100_000,
        "overflow": json.dumps({**base, "repositories": [{**entry, "blobs": 1e999}]}),
        "nan": json.dumps({**base, "repositories": [{**entry, "seconds": float("nan")}]}),
        "deep-json": '{"keyguard_fleet": 1, "repositories": ' + "[" * 100_000 + "]" * 100_000,
    }
    for name, text in hostile.items():
        (tmp_path / f"{name}.json").write_text(text + ("}" if name == "deep-json" else ""))
        for args in (["merge"], ["scan", ".", "--since"]):
            done = fleet(*args, str(tmp_path / f"{name}.json"))
            assert done.returncode == 2, (name, args, done.stderr)
            assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_listed_url_with_a_bad_port_or_address_is_refused_and_the_run_goes_on(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run
) -> None:
    make_repo(git_daemon.base, "fine")
    bad = ["https://example.com:99999/org/x", "https://[::1/org/x", "http://h:port/x"]
    (tmp_path / "repos.txt").write_text("\n".join([*bad, git_daemon.url("fine")]) + "\n")

    text, code = _scan(fleet, tmp_path, f"@{tmp_path / 'repos.txt'}", "r.json")

    assert code == 5
    repos = {r["url"]: r for r in report(tmp_path / "r.json")["repositories"]}
    assert repos[git_daemon.url("fine")]["status"] == "ok"
    assert all(repos[url]["status"] == "error" for url in bad)
    assert text.count("not scanned: https://example.com:99999/org/x") == 1


def test_an_api_clone_url_with_a_bad_port_is_a_one_line_usage_error(
    tmp_path: Path, fake_api: Api, fleet: Run
) -> None:
    repo = {"full_name": "acme/x", "clone_url": "https://github.example:99999/acme/x"}
    fake_api.routes["/orgs/acme/repos?per_page=100&type=all"] = ([repo], {})
    done = fleet("scan", "github:acme", "--github-api-url", fake_api.url)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "github.example:99999" in done.stderr


def test_bidi_and_8_bit_controls_in_names_reach_no_terminal_raw(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "evil")
    name = "src/\u202egnp.exe\u202c/cfg\u009b2J.env"
    commit(repo, {name: f"KEY={keys[0].reveal()}\n"}, "evil name")
    (tmp_path / "repos.txt").write_text(f"{git_daemon.url('evil')}\ngit://127.0.0.1:1/\u202ex\n")

    done = fleet("scan", f"@{tmp_path / 'repos.txt'}", "--cache", str(tmp_path / "c"))

    assert done.returncode == 1, done.stderr
    for raw in ("\u202e", "\u202c", "\u009b"):
        assert raw not in done.stdout + done.stderr
    assert "src/\\u202egnp.exe\\u202c/cfg\\x9b2J.env" in done.stdout
    assert "not scanned: git://127.0.0.1:1/\\u202ex" in done.stderr


def test_a_repositorys_own_replace_refs_do_not_hide_a_commit(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    # `git replace` (refs/replace/*, pushed like any ref) makes git read one commit as
    # another: the branch still points at the commit with the key, shown as a clean one.
    repo = make_repo(git_daemon.base, "app", [keys[0]])
    leaky = git(repo, "rev-parse", "HEAD")
    commit(repo, {"conf/app0.env": "KEY=from-the-vault\n"}, "clean")
    git(repo, "replace", leaky, "HEAD")
    git(repo, "update-ref", "refs/heads/main", leaky)

    _, code = _scan(fleet, tmp_path, git_daemon.url("app"), "r.json")

    assert code == 1
    found = report(tmp_path / "r.json")["keys"]
    assert [k["fingerprint"] for k in found] == [keys[0].fingerprint]
    assert found[0]["places"][0]["commit"] == leaky


def test_a_poisoned_mirror_cache_runs_nothing_and_is_cloned_again(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    # A cache shared between runs (a CI cache, a volume) is writable by whoever wrote it
    # last: git obeys a repository's own config, and some of its keys run commands.
    make_repo(git_daemon.base, "app", [keys[0]])
    url = git_daemon.url("app")
    _, code = _scan(fleet, tmp_path, url, "day1.json")
    assert code == 1
    mirror = next((tmp_path / "c").glob("*.git"))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    evil.chmod(0o755)
    (tmp_path / "evil.cfg").write_text(f"[credential]\n\thelper = !{evil}\n")
    for name, value in (
        ("core.gitProxy", str(evil)),
        ("remote.origin.uploadpack", str(evil)),
        ("include.path", str(tmp_path / "evil.cfg")),
    ):
        git(mirror, "config", "--add", name, value)
    (mirror / "shallow").write_text(git(mirror, "rev-parse", "HEAD") + "\n")  # hides history

    _, code = _scan(fleet, tmp_path, url, "day2.json")

    assert code == 1
    assert not marker.exists()
    data = report(tmp_path / "day2.json")
    assert [k["fingerprint"] for k in data["keys"]] == [keys[0].fingerprint]
    assert any("cloned again" in n for n in data["repositories"][0]["notes"])
    assert "gitproxy" not in (mirror / "config").read_text().lower()
    assert not (mirror / "shallow").exists()
    # The mirror as keyguard wrote it again is trusted: the next run only fetches into it.
    _, code = _scan(fleet, tmp_path, url, "day3.json")
    assert code == 1
    assert not report(tmp_path / "day3.json")["repositories"][0].get("notes")


def _no_objects(mirror: Path) -> None:
    shutil.rmtree(mirror / "objects")
    (mirror / "refs").rename(mirror / "refs.real")
    (mirror / "refs").symlink_to(mirror / "refs.real")  # refs/ must be a real folder too


def _bad_head(mirror: Path) -> None:
    (mirror / "HEAD").write_text("not a ref\n")


@pytest.mark.parametrize("breaks", [_no_objects, _bad_head])
def test_a_mirror_that_is_no_repository_never_lets_git_use_the_folder_above(
    tmp_path: Path,
    git_daemon: GitDaemon,
    fleet: Run,
    keys: list[Secret],
    breaks: Callable[[Path], None],
) -> None:
    # A cached mirror with a clean config and HEAD but no objects/ is no repository for git,
    # which then looks upward: the cache folder, made a repository whose config runs commands.
    make_repo(git_daemon.base, "app", [keys[0]])
    url = git_daemon.url("app")
    _, code = _scan(fleet, tmp_path, url, "day1.json")
    assert code == 1
    cache = tmp_path / "c"
    mirror = next(cache.glob("*.git"))
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    evil.chmod(0o755)
    breaks(mirror)
    subprocess.run(["git", "init", "-q", "--bare", str(cache)], check=True)
    git(cache, "config", "core.gitProxy", str(evil))
    git(cache, "config", "remote.origin.url", url)

    _, code = _scan(fleet, tmp_path, url, "day2.json")

    assert not marker.exists()
    assert code == 1
    data = report(tmp_path / "day2.json")
    assert [k["fingerprint"] for k in data["keys"]] == [keys[0].fingerprint]
    assert any("cloned again" in n for n in data["repositories"][0]["notes"])


def _cut_history_at(mirror: Path, oid: str) -> None:
    """Write a commit-graph into ``mirror`` that says commit ``oid`` has no parent."""
    git(mirror, "commit-graph", "write", "--reachable")
    path = mirror / "objects/info/commit-graph"
    data = bytearray(path.read_bytes())
    chunks = {
        bytes(data[8 + 12 * i : 12 + 12 * i]): struct.unpack(">Q", data[12 + 12 * i : 20 + 12 * i])[
            0
        ]
        for i in range(data[6] + 1)
    }
    oids, commits = chunks[b"OIDL"], chunks[b"CDAT"]
    for i in range((commits - oids) // 20):
        if data[oids + 20 * i : oids + 20 * i + 20].hex() == oid:
            at = commits + 36 * i + 20
            data[at : at + 4] = struct.pack(">I", 0x70000000)  # "no parent"
    data[-20:] = hashlib.sha1(bytes(data[:-20])).digest()
    path.write_bytes(bytes(data))


def test_a_planted_commit_graph_does_not_cut_the_history_a_full_scan_reads(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "app", [keys[0]])
    head = commit(repo, {"conf/app0.env": "KEY=from-the-vault\n"}, "clean")
    url = git_daemon.url("app")
    _, code = _scan(fleet, tmp_path, url, "day1.json")
    assert code == 1
    mirror = next((tmp_path / "c").glob("*.git"))
    _cut_history_at(mirror, head)
    assert git(mirror, "rev-list", "--count", "HEAD").strip() == "1"  # git believes it

    _, code = _scan(fleet, tmp_path, url, "day2.json")

    assert code == 1
    data = report(tmp_path / "day2.json")
    assert [k["fingerprint"] for k in data["keys"]] == [keys[0].fingerprint]
    assert any("commit-graph" in n for n in data["repositories"][0]["notes"])


def test_a_base64_key_used_as_a_branch_name_is_never_written_decodable(
    tmp_path: Path, git_daemon: GitDaemon, fleet: Run, keys: list[Secret]
) -> None:
    repo = make_repo(git_daemon.base, "app")
    encoded = {
        "b64": base64.b64encode(keys[0].reveal().encode()).decode(),
        "urlsafe": base64.urlsafe_b64encode(f'{{"k": "{keys[1].reveal()}"}}'.encode()).decode(),
    }
    for name, text in encoded.items():
        git(repo, "branch", f"{name}/{text}")
    url = git_daemon.url("app")

    text, code = _scan(fleet, tmp_path, url, "r.json")
    shown = fleet("scan", url, "--cache", str(tmp_path / "c"))

    assert code == 1
    assert shown.returncode == 1
    data = report(tmp_path / "r.json")
    assert {k["fingerprint"] for k in data["keys"]} == {keys[0].fingerprint, keys[1].fingerprint}
    paths = {k["fingerprint"]: k["places"][0]["path"] for k in data["keys"]}
    # Masked from the base64 group holding the key's first byte on (before it: '{"k": ').
    assert paths[keys[0].fingerprint] == f"refs/heads/b64/{keys[0].redacted}"
    assert paths[keys[1].fingerprint].startswith("refs/heads/urlsafe/")
    assert paths[keys[1].fingerprint].endswith(f"/{encoded['urlsafe'][:8]}{keys[1].redacted}")
    for value in encoded.values():
        for half in (value[: len(value) // 2], value[len(value) // 2 :]):
            assert half not in text + shown.stdout + shown.stderr


def test_masked_leaves_no_encoding_of_a_key_in_a_name(keys: list[Secret]) -> None:
    key = keys[0].reveal()
    for name in (
        f"refs/heads/{key}/x",
        f"refs/heads/{base64.b64encode(key.encode()).decode()}",
        f"tag {key.encode('utf-16-le').decode('latin-1')}",
        f'x = "{key[:20]}" + "{key[20:]}"',
    ):
        shown = masked(name)
        assert keys[0].redacted in shown
        assert key[14:30] not in shown.replace("\0", "")
        assert not scan_bytes(os.fsencode(shown))
    assert masked("refs/heads/main") == "refs/heads/main"
