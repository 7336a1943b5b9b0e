"""What a scanned repository (or a report handed back) can hold against the security team's
org-wide scan: keys hidden in ref names or behind the repository's own inline allows, hostile
reports and URLs, and names that would drive the terminal. Each test is the attack."""

from __future__ import annotations

import json
from pathlib import Path

from keyguard.keys import Secret
from tests.fleet.conftest import GitDaemon, Run, git, make_repo, report


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
