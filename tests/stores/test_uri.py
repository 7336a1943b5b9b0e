"""Store URI parsing, ``#FIELD`` helpers and lease records."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from keyguard.errors import ConfigError
from keyguard.stores.lease import LeaseRecord, holder_gone, new_owner
from keyguard.stores.uri import extract_field, merge_field, parse_store_uri


@pytest.mark.parametrize(
    "uri",
    [
        "aws-sm://us-east-1/anthropic/prod?endpoint_url=http://127.0.0.1:5000#KEY",
        "aws-sm://us-east-1/anthropic/prod#KEY?endpoint_url=http://127.0.0.1:5000",
    ],
)
def test_parse_accepts_field_before_or_after_options(uri: str) -> None:
    p = parse_store_uri(uri)
    assert (p.scheme, p.authority, p.path, p.field) == (
        "aws-sm",
        "us-east-1",
        "anthropic/prod",
        "KEY",
    )
    assert p.options == {"endpoint_url": "http://127.0.0.1:5000"}


def test_parse_file_uri() -> None:
    p = parse_store_uri("file:/srv/keys/prod.json?passphrase_env=KG_PASS")
    assert (p.authority, p.path, p.opt("passphrase_env")) == (
        None,
        "/srv/keys/prod.json",
        "KG_PASS",
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("nothing", "expected SCHEME"),
        ("file:/x#", "must be followed by a JSON field"),
        ("file:/x?a=1&a=2", "given twice"),
        ("file:/x?novalue", "cannot parse the options"),
    ],
)
def test_parse_errors(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_store_uri(uri)


def test_option_types() -> None:
    p = parse_store_uri("gcp-sm://proj/s?insecure=yes&n=3&bad=maybe")
    assert p.opt_bool("insecure") is True
    assert p.opt_int("n", 1) == 3
    with pytest.raises(ConfigError, match="true or false"):
        p.opt_bool("bad")
    with pytest.raises(ConfigError, match="unknown option 'bad'"):
        p.check_options({"insecure", "n"})


def test_fields_keep_the_rest_of_the_object() -> None:
    raw = json.dumps({"A": "1", "K": "old"})
    assert extract_field(raw, "K", "s") == "old"
    assert extract_field(raw, "MISSING", "s") is None
    assert json.loads(merge_field(raw, "K", "new", "s")) == {"A": "1", "K": "new"}
    assert json.loads(merge_field(None, "K", "new", "s")) == {"K": "new"}
    assert merge_field(raw, None, "whole", "s") == "whole"
    with pytest.raises(ConfigError, match="not a JSON object"):
        extract_field("plain", "K", "s")
    with pytest.raises(ConfigError, match="non-string"):
        extract_field(json.dumps({"K": 5}), "K", "s")


def test_lease_records() -> None:
    me = new_owner()
    assert me.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert not holder_gone(me)
    assert not holder_gone("elsewhere:1:abc"), "another host's holder is never judged gone"
    assert " boot=" in me and " pidns=" in me and " start=" in me
    rec = LeaseRecord(me, time.time() + 60)
    assert LeaseRecord.decode(rec.encode()) == rec
    assert rec.live()
    assert not LeaseRecord(me, time.time() - 1).live()
    assert LeaseRecord.decode("garbage") is None
    assert LeaseRecord.decode('{"released": "x"}') is None


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def test_a_holder_in_another_container_with_the_same_host_name_is_never_judged_gone() -> None:
    """Two containers, one host name, one shared volume: a pid of the other is not ours."""
    pid = _dead_pid()
    here = new_owner(pid)
    assert holder_gone(here), "a dead holder of this host, boot and namespace is gone"
    other_container = here.replace(" pidns=", " pidns=1")
    assert not holder_gone(other_container)
    assert not holder_gone(f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex}"), (
        "an owner that names no boot id or PID namespace is left to the lease's expiry"
    )
    rebooted = here.replace(" boot=", " boot=x")
    assert not holder_gone(rebooted)


def test_a_reused_pid_is_a_dead_holder_but_the_same_process_is_alive() -> None:
    me = new_owner()
    assert not holder_gone(me)
    start = me.rsplit(" start=", 1)[1]
    assert holder_gone(me.replace(f" start={start}", f" start={int(start) + 1}"))


def test_two_runs_in_containers_sharing_a_host_name_never_both_hold_a_file_store(
    tmp_path: Path,
) -> None:
    from keyguard.errors import LeaseHeldError
    from keyguard.stores.file import FileStore

    uri = f"file:{tmp_path / 'prod.json'}"
    pid = _dead_pid()  # in the other container's namespace this pid is alive
    theirs = new_owner(pid).replace(" pidns=", " pidns=9")
    held = FileStore.from_uri(uri).lease(theirs, 600)
    held.__enter__()
    with (
        pytest.raises(LeaseHeldError, match="leased"),
        FileStore.from_uri(uri).lease(new_owner(), 600),
    ):
        pass
