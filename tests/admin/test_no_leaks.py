"""No output, log line, exception text or traceback ever holds the admin key or an API key."""

from __future__ import annotations

import io
import logging
import sys
import traceback
from pathlib import Path

import httpx
import pytest

from keyguard.admin import AdminClient
from keyguard.admin.errors import ApiError
from keyguard.admin.sandbox import Sandbox
from keyguard.cli import main
from keyguard.errors import KeyguardError
from keyguard.keys import Secret, generate_key
from keyguard.keys import scrub_text as scrub

from .fakes import Recorder, error


def texts_of(exc: BaseException) -> str:
    return "\n".join(
        [str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(vars(exc))]
    )


def test_nothing_leaks_anywhere(
    sandbox: Sandbox,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "keyguard", "keyguard.admin"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    secrets: list[Secret] = [sandbox.admin_key]
    seen: list[str] = []

    ws = sandbox.add_workspace("prod")
    key_id, key = sandbox.mint_key("prod-1", workspace_id=ws)
    _, twin = sandbox.mint_key("prod-2", workspace_id=ws)
    inactive_id, inactive = sandbox.mint_key("old")
    secrets += [key, twin, inactive]
    client = sandbox.client(sleep=lambda s: None, max_attempts=2)
    client.update_key(inactive_id, status="inactive")
    seen.append(repr(client))
    seen.append(repr(client.find_key(key)))
    seen.append(repr(client.verify_key(key)))
    seen.append(repr(client.verify_key(inactive)))
    seen.append(repr(list(client.list_keys())))

    failures: list[KeyguardError] = []
    unknown = generate_key()
    secrets.append(unknown)
    for action in (
        lambda: client.find_key(unknown),
        lambda: client.get_key("apikey_nope"),
        lambda: AdminClient(generate_key("admin"), sandbox.url).me(),
    ):
        with pytest.raises(KeyguardError) as info:
            action()
        failures.append(info.value)
    for kind in ("429", "500", "529", "drop"):
        sandbox.set_faults(rate=1.0, kinds=(kind,))
        with pytest.raises(KeyguardError) as info:
            client.verify_key(key)
        failures.append(info.value)
    sandbox.clear_faults()
    sb2 = Sandbox().start()
    url = sb2.url
    sb2.stop()
    with pytest.raises(KeyguardError) as info:
        AdminClient(sandbox.admin_key, url, max_attempts=1).verify_key(key)
    failures.append(info.value)
    seen += [texts_of(f) for f in failures]

    # The CLI, end to end, including its error paths.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KEYGUARD_CONFIG", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", sandbox.admin_key.reveal())
    for argv, stdin in (
        (["keys", "list"], None),
        (["keys", "list", "--format", "json"], None),
        (["keys", "show", key_id], None),
        (["keys", "show", "apikey_nope"], None),
        (["keys", "find"], key.reveal()),
        (["keys", "find", "--format", "json"], key.reveal()),
        (["keys", "find"], unknown.reveal()),
        (["keys", "find"], "not-a-key " + key.reveal()[:20]),
    ):
        sys.stdin = io.StringIO(stdin or "")
        try:
            main(argv)
        finally:
            sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    seen += [out, err]
    seen += [r.getMessage() for r in caplog.records] + [caplog.text]

    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # logs were on
    blob = "\n".join(seen)
    for secret in secrets:
        assert secret.reveal() not in blob, f"{secret} leaked"
        assert secret.reveal()[13:60] not in blob


def test_a_server_that_echoes_the_key_is_scrubbed(admin_key: Secret, api_key: Secret) -> None:
    rec = Recorder(lambda r: error(400, "invalid_request_error", f"bad key {api_key.reveal()}"))
    with pytest.raises(ApiError) as info:
        rec.client(admin_key).me()
    assert api_key.reveal() not in texts_of(info.value)
    assert api_key.hint in str(info.value)


def test_scrubbed_transport_errors(admin_key: Secret) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"failed with headers {dict(request.headers)}")

    rec = Recorder(handler)
    with pytest.raises(ApiError) as info:
        rec.client(admin_key, max_attempts=1).me()
    text = texts_of(info.value)
    assert admin_key.reveal() not in text and "ConnectError" in text
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_scrub() -> None:
    key = generate_key()
    assert scrub(f"x {key.reveal()} y") == f"x {key.hint} y"
    oauth = "sk-ant-" + "oat01-"
    assert scrub(f"tail {oauth}abcdefghijkl") == f"tail {oauth}abc...ijkl"
