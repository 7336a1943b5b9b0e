"""Bad input gets one clear line and its exit code, never a traceback (issue 11, point 7)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyguard.admin.sandbox import Sandbox
from keyguard.config import load_config
from keyguard.errors import ConfigError, KeyguardError, UnavailableError, UsageError
from keyguard.journal import RotationJournal
from keyguard.keys import generate_key
from keyguard.notify import post_webhook
from keyguard.policy import load_policy, parse_duration
from tests.rotation.conftest import make_project

ROOT = Path(__file__).resolve().parents[1]


def keyguard(
    cwd: Path, *args: str, module: str = "keyguard", **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "KEYGUARD_"))}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        input="",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def one_clear_line(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, done.stderr
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.startswith(("keyguard: error:", "Error:"))  # ours, or click's usage error
    ]
    assert len(errors) == 1, done.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "keyguard.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


ENV = '[environments.dev]\nstores = ["file:dev.json"]\n'

# -- keyguard.toml and policy files -----------------------------------------------------------

WRONG_TYPES = [
    "anthropic = 1\n",
    "[anthropic]\nbase_url = 1\n",
    "[anthropic]\nadmin_key = []\n",
    "policy = 1\n",
    '[policy]\nfile = ["strict"]\n',
    "environments = 1\n",
    "[environments]\ndev = 1\n",
    '[environments.dev]\nstores = "file:dev.json"\n',
    "[environments.dev]\nstores = [1]\n",
    ENV + "workspace = 1\n",
    ENV + "key_name = 5\n",
    ENV + 'key_name = "{nope}"\n',
    ENV + "policy = 1\n",
    ENV + "[environments.dev.policy]\ngrace = true\n",
    "scan = []\n",
    '[scan]\nexclude = "x"\n',
    "notify = 1\n",
    "[notify]\nwebhook = 1\n",
    "state = 1\n",
    "[state]\ndir = 1979-05-27\n",
    "[policy]\ngrace = [1]\n",
    "[policy]\nkey_name = 1\n",
    '[policy]\none_key_per_environment = "no"\n',
    "[policy]\nprices = 1\n",
    "[policy.prices]\nclaude = 1\n",
    '[policy.prices.claude]\ninput = "x"\noutput = 1\n',
    "[policy.prices.claude]\ninput = nan\noutput = 1\n",
    "[policy.prices.claude]\ninput = -1\noutput = 1\n",
    "[policy.prices.claude]\ninput = 1\noutput = 1\nsurprise = 1\n",
]


@pytest.mark.parametrize("text", WRONG_TYPES)
def test_a_wrong_type_in_any_section_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "1e300", "-5", "-0.5", '"99999999999999999d"', "10**400"]
)
def test_negative_or_non_finite_durations_are_refused(tmp_path: Path, value: str) -> None:
    value = str(10**400) if value == "10**400" else value
    for text in (
        f"[policy]\ngrace = {value}\n",
        ENV + f"[environments.dev.policy]\ngrace = {value}\n",
    ):
        path = write(tmp_path, text)
        with pytest.raises(ConfigError, match=rf"{path}:\d+: .*grace") as err:
            load_config(path)
        assert err.value.exit_code == 2


def test_parse_duration_takes_only_finite_non_negative_numbers() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration(0) == timedelta(0)
    for bad in (math.nan, math.inf, -1, True, None, [1], "1e3h", "36501d", 10**400):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_a_wrong_type_reaches_the_user_as_one_line_and_exit_2(tmp_path: Path) -> None:
    write(tmp_path, "[policy]\ngrace = nan\n")
    one_clear_line(keyguard(tmp_path, "status"), 2, "keyguard.toml:2", "grace")
    write(tmp_path, "anthropic = 1\n")
    one_clear_line(keyguard(tmp_path, "status"), 2, "keyguard.toml:1", "must be a table")


def test_a_config_that_is_not_utf8_is_refused_by_keyguard_and_the_hook(tmp_path: Path) -> None:
    path = write(tmp_path, b'[scan]\nexclude = ["caf\xe9"]\n')
    with pytest.raises(ConfigError, match=rf"{path}: byte \d+ is not UTF-8"):
        load_config(path)
    one_clear_line(keyguard(tmp_path, "scan", "."), 2, "not UTF-8", "keyguard.toml")
    hook = keyguard(tmp_path, ".", module="keyguard.scanner.hook")
    one_clear_line(hook, 2, "not UTF-8")


def test_a_policy_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_bytes(b'key_name = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_policy(tmp_path / "p.toml")
    path = write(tmp_path, '[policy]\nfile = "p.toml"\n')
    with pytest.raises(ConfigError, match=r"p\.toml"):
        load_config(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


_NAMES = st.sampled_from(
    [
        "anthropic", "policy", "environments", "scan", "notify", "state", "base_url",
        "admin_key", "file", "grace", "max_age", "due_after", "usage_lag", "archive_after",
        "expiry_warning", "key_name", "one_key_per_environment", "prices", "input", "output",
        "stores", "workspace", "check", "service", "exclude", "webhook", "dir", "dev", "prod",
        "name", "cache_read",
    ]
) | st.text(min_size=1, max_size=8)  # fmt: skip
_SCALARS = (
    st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["24h", "7d", "0", "-1s", "file:x.json", "default", "strict", "{env}"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_NAMES, inner, max_size=5),
    max_leaves=20,
)
_DOCUMENTS = st.dictionaries(_NAMES, _VALUES, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_DOCUMENTS)
def test_generated_configs_load_or_fail_with_a_keyguard_error(doc: dict[str, Any]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        text = "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"
        path = write(Path(folder), text)
        with contextlib.suppress(KeyguardError):
            config = load_config(path)
            config.base_url  # noqa: B018 - the base URL rule runs here


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_generated_bytes_as_a_config_fail_with_a_keyguard_error(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder, contextlib.suppress(KeyguardError):
        load_config(write(Path(folder), data))


# -- the rotation journal ---------------------------------------------------------------------


def _good_line(**over: Any) -> str:
    entry = {
        "ts": datetime(2026, 12, 1, tzinfo=UTC).isoformat(),
        "env": "prod",
        "rotation": "prod-1",
        "step": "create",
        "phase": "before",
        "key": {"fingerprint": "ab" * 32, "hint": "sk-ant-api03-abc...wxAA"},
        **over,
    }
    return json.dumps(entry)


@pytest.mark.parametrize(
    "bad",
    [
        b"\xff\xfe not utf-8",
        b"[1, 2, 3]",
        b'"a string"',
        _good_line(ts=5).encode(),
        _good_line(ts="2026-12-01T00:00:00").encode(),  # no time zone
        _good_line(rotation=["x"]).encode(),
        _good_line(store_index="0").encode(),
        _good_line(store_index=-1).encode(),
        _good_line(key="abc").encode(),
        _good_line(key={"hint": "x"}).encode(),
        _good_line(olds=[1]).encode(),
        _good_line(key_id=7).encode(),
        b"[" * 5000,
    ],
)
def test_a_damaged_journal_line_names_the_file_and_line(tmp_path: Path, bad: bytes) -> None:
    journal = RotationJournal(tmp_path, "prod")
    journal.path.write_bytes(_good_line().encode() + b"\n" + bad + b"\n" + _good_line().encode())
    with pytest.raises(ConfigError, match=rf"{journal.path}:2: .*damaged"):
        journal.entries()


def test_a_torn_last_line_is_still_ignored(tmp_path: Path) -> None:
    journal = RotationJournal(tmp_path, "prod")
    journal.path.write_bytes(_good_line().encode() + b"\n" + b'{"ts": "2026-12-\xe2')
    assert [e.point for e in journal.entries()] == ["create:before"]


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "ts": st.sampled_from(["2026-12-01T00:00:00+00:00", "2026-12-01", "x"]) | _JSONISH,
        "rotation": st.just("r") | _JSONISH,
        "step": st.sampled_from(["create", "promote", "verify", "revoke", "rollback"]) | _JSONISH,
        "phase": st.sampled_from(["before", "after", "closed", "done"]) | _JSONISH,
        "store_index": st.integers(-2, 3) | _JSONISH,
        "key": st.fixed_dictionaries({"fingerprint": st.text(max_size=4)}) | _JSONISH,
        "olds": st.lists(_JSONISH, max_size=2) | _JSONISH,
        "replaced": _JSONISH,
        "key_id": _JSONISH,
        "reason": _JSONISH,
    },
)
_LINES = st.lists(
    _FIELDS.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=40), min_size=1, max_size=6
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=_LINES)
def test_generated_journals_replay_or_fail_with_a_keyguard_error(
    tmp_path: Path, lines: list[bytes]
) -> None:
    from keyguard.rotation.state import last_manual_rollback, replay

    journal = RotationJournal(tmp_path, "prod")
    journal.path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
    try:
        entries = journal.entries()
    except KeyguardError:
        return
    replay(entries)  # whatever the reader lets through, the replay can fold
    last_manual_rollback(entries)


def test_a_damaged_journal_stops_the_cli_with_one_line(tmp_path: Path, sandbox: Sandbox) -> None:
    project = make_project(tmp_path, sandbox, stores=1)
    project.journal.parent.mkdir(parents=True, exist_ok=True)
    project.journal.write_bytes(b"\xff\xfe\n" + _good_line().encode() + b"\n")
    done = project.run("status", "prod")
    one_clear_line(done, 2, f"{project.journal}:1", "damaged", "move the file aside")


# -- arguments, environment variables, outputs -----------------------------------------------


def test_keyguard_stdin_wait_that_is_not_a_number_is_refused(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    project = make_project(tmp_path, sandbox, stores=1)
    _, old = project.mint("prod-legacy")
    project.seed(old)
    for value in ("abc", "nan", "-1"):
        done = subprocess.run(  # stdin a pipe, not a terminal: rotate waits for a key on it
            [sys.executable, "-m", "keyguard", "rotate", "prod"],
            stdin=subprocess.PIPE,
            capture_output=True,
            text=True,
            env={**project.env(), "KEYGUARD_STDIN_WAIT": value},
            cwd=project.root,
            timeout=60,
            check=False,
        )
        one_clear_line(done, 2, "KEYGUARD_STDIN_WAIT")


def test_output_to_an_unwritable_path_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir()
    for target in ("a-file/report.json", "a-folder"):
        done = keyguard(tmp_path, "scan", ".", "--output", target)
        one_clear_line(done, 2, "--output", target)
        hook = keyguard(tmp_path, ".", "--output", target, module="keyguard.scanner.hook")
        one_clear_line(hook, 2, target)
        audit = keyguard(tmp_path, "audit", "--output", target)
        one_clear_line(audit, 2, "--output", target)
        revoke = keyguard(tmp_path, "revoke", "--key-id", "apikey_x", "--yes", "--report", target)
        one_clear_line(revoke, 2, "--report", target)


def test_a_non_finite_deadline_is_refused(tmp_path: Path) -> None:
    for value in ("nan", "inf", "-1"):
        done = keyguard(tmp_path, "revoke", "--key-id", "apikey_x", "--yes", "--deadline", value)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "--deadline" in done.stderr


def test_a_key_in_any_argument_never_appears_in_full(tmp_path: Path) -> None:
    key = generate_key("api").reveal()
    admin = generate_key("admin").reveal()
    write(tmp_path, ENV)
    runs = [
        keyguard(tmp_path, "get", key),
        keyguard(tmp_path, "status", key),
        keyguard(tmp_path, "rollback", admin, "--yes"),
        keyguard(tmp_path, "--config", key, "status"),
        keyguard(tmp_path, "rotate", "--grace", key, "dev"),
        keyguard(tmp_path, "scan", "--output", f"a-{key}/x", "--format", key),
        keyguard(tmp_path, "audit", "--output", f"{key}/x.md"),
    ]
    for done in runs:
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (2, 3), done.stderr  # usage, or no admin key (status)
        for secret in (key, admin):
            assert secret not in done.stdout + done.stderr
            assert secret[14:60] not in done.stdout + done.stderr


def test_webhook_urls_are_redacted_in_messages() -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "T0000/B0000/" + "s3cr3t" * 4
    with pytest.raises(UnavailableError) as err:
        post_webhook(f"http://127.0.0.1:{port}/services/{token}", {"text": "hi"})
    assert "s3cr3t" not in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    with pytest.raises(UsageError) as bad:
        post_webhook(f"gopher://hooks.example/services/{token}", {"text": "hi"})
    assert "s3cr3t" not in str(bad.value)


def test_an_admin_key_that_cannot_be_a_header_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "admin.key").write_bytes(b"\xff\xfesecret-part\n")
    write(tmp_path, '[anthropic]\nadmin_key = "file:admin.key"\n')
    from_file = keyguard(tmp_path, "keys", "list")
    one_clear_line(from_file, 3, "admin.key", "does not hold an admin key")
    write(tmp_path, "")
    from_env = keyguard(tmp_path, "keys", "list", ANTHROPIC_ADMIN_KEY="caf\u00e9-secret-part")
    one_clear_line(from_env, 3, "$ANTHROPIC_ADMIN_KEY")
    for done in (from_file, from_env):
        assert "secret-part" not in done.stderr


def test_errors_point_at_the_bad_line_not_at_an_earlier_good_one(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('max_age = "30d"\ndue_after = "20d"\ngrace = nan\n')
    with pytest.raises(ConfigError, match=r"p\.toml:3: grace"):
        load_policy(tmp_path / "p.toml")
    path = write(tmp_path, '[policy]\nmax_age = "30d"\ndue_after = "20d"\ngrace = inf\n')
    with pytest.raises(ConfigError, match=rf"{path}:4: .*grace"):
        load_config(path)
