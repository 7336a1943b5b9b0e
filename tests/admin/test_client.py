"""AdminClient against a scripted API (httpx.MockTransport): contract, paging, parsing, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from keyguard.admin.errors import ApiAuthError, ApiError, ApiNotFoundError
from keyguard.admin.hints import hint_parts, key_matches_hint
from keyguard.errors import ExitCode, NotFoundError, UsageError
from keyguard.keys import Secret, generate_key

from .fakes import Recorder, answer, error, key_obj


def test_admin_calls_carry_the_admin_key_and_version(admin_key: Secret) -> None:
    rec = Recorder(lambda r: answer(200, {"id": "org", "name": "Acme", "type": "organization"}))
    with rec.client(admin_key) as client:
        assert client.me()["name"] == "Acme"
    request = rec.requests[0]
    assert request.url == "https://api.test/v1/organizations/me"
    assert request.headers["x-api-key"] == admin_key.reveal()
    assert request.headers["anthropic-version"] == "2023-06-01"


def test_list_keys_follows_every_page_with_filters(admin_key: Secret) -> None:
    pages = {
        None: ([key_obj("apikey_1"), key_obj("apikey_2")], True),
        "apikey_2": ([key_obj("apikey_3")], True),
        "apikey_3": ([key_obj("apikey_4")], False),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        data, more = pages[request.url.params.get("after_id")]
        body = {"data": data, "has_more": more, "first_id": data[0]["id"]}
        return answer(200, body | {"last_id": data[-1]["id"]})

    rec = Recorder(handler)
    keys = list(rec.client(admin_key).list_keys(status="active", workspace_id="wrkspc_1"))
    assert [k.id for k in keys] == ["apikey_1", "apikey_2", "apikey_3", "apikey_4"]
    for request in rec.requests:
        assert request.url.params["status"] == "active"
        assert request.url.params["workspace_id"] == "wrkspc_1"
        assert request.url.params["limit"] == "1000"
    assert [r.url.params.get("after_id") for r in rec.requests] == [None, "apikey_2", "apikey_3"]


def test_parsing_is_lenient(admin_key: Secret) -> None:
    odd = key_obj(
        "apikey_x",
        status="suspended",  # a status the reference does not know yet: kept as is
        created_by=None,
        workspace_id=None,
        partial_key_hint=None,
        expires_at=None,
        principal={"type": "user"},
        brand_new_field=[1, 2],
    )
    rec = Recorder(lambda r: answer(200, odd))
    key = rec.client(admin_key).get_key("apikey_x")
    assert (key.status, key.created_by, key.workspace_id, key.expires_at) == (
        "suspended",
        None,
        None,
        None,
    )
    assert key.created_at == datetime(2026, 1, 1, tzinfo=UTC)


def test_update_sends_only_what_changes(admin_key: Secret) -> None:
    rec = Recorder(lambda r: answer(200, key_obj("apikey_1", status="inactive")))
    client = rec.client(admin_key)
    assert client.update_key("apikey_1", status="inactive").status == "inactive"
    assert rec.requests[0].method == "POST"
    assert rec.requests[0].url.path == "/v1/organizations/api_keys/apikey_1"
    assert rec.body() == {"status": "inactive"}
    with pytest.raises(UsageError):
        client.update_key("apikey_1")


def test_usage_query_and_pages(admin_key: Secret) -> None:
    bucket = {
        "starting_at": "2026-01-01T00:00:00Z",
        "ending_at": "2026-01-01T01:00:00Z",
        "results": [
            {
                "api_key_id": "apikey_1",
                "model": None,
                "uncached_input_tokens": 10,
                "cache_read_input_tokens": 2,
                "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
                "output_tokens": 5,
            }
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") is None:
            return answer(200, {"data": [bucket], "has_more": True, "next_page": "page_2"})
        return answer(200, {"data": [bucket | {"results": []}], "has_more": False})

    rec = Recorder(handler)
    rows = rec.client(admin_key).usage(
        ["apikey_1", "apikey_2"],
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
        group_by_model=True,
    )
    assert len(rows) == 1 and rows[0].total_tokens == 24
    assert rows[0].cache_creation_input_tokens == 7
    params = rec.requests[0].url.params
    assert params["starting_at"] == "2026-01-01T00:00:00Z"
    assert params["ending_at"] == "2026-01-02T00:00:00Z"
    assert params.get_list("api_key_ids[]") == ["apikey_1", "apikey_2"]
    assert params.get_list("group_by[]") == ["api_key_id", "model"]
    assert params["bucket_width"] == "1h"
    assert rec.requests[1].url.params["page"] == "page_2"


@pytest.mark.parametrize(
    ("status", "etype", "cls", "code"),
    [
        (401, "authentication_error", ApiAuthError, ExitCode.AUTH),
        (403, "permission_error", ApiAuthError, ExitCode.AUTH),
        (404, "not_found_error", ApiNotFoundError, ExitCode.FOUND),
        (400, "invalid_request_error", ApiError, ExitCode.USAGE),
        (409, "conflict_error", ApiError, ExitCode.USAGE),
        (413, "request_too_large", ApiError, ExitCode.USAGE),
    ],
)
def test_errors_carry_status_type_request_id_and_exit_code(
    admin_key: Secret, status: int, etype: str, cls: type[ApiError], code: ExitCode
) -> None:
    rec = Recorder(lambda r: error(status, etype, "went wrong"))
    with pytest.raises(cls) as info:
        rec.client(admin_key).get_key("apikey_1")
    err = info.value
    assert (err.status, err.error_type, err.request_id) == (status, etype, "req_test")
    assert err.exit_code == code
    assert "went wrong" in str(err) and "req_test" in str(err)
    assert len(rec.requests) == (2 if status == 409 else 1)  # a conflict is retried once


def test_error_body_that_is_not_json_still_maps(admin_key: Secret) -> None:
    rec = Recorder(lambda r: httpx.Response(401, text="<html>no</html>"))
    with pytest.raises(ApiAuthError) as info:
        rec.client(admin_key).me()
    assert info.value.status == 401 and info.value.error_type is None


def test_verify_sends_the_api_key_not_the_admin_key(admin_key: Secret, api_key: Secret) -> None:
    rec = Recorder(lambda r: answer(200, {"data": []}, anthropic_workspace_id="wrkspc_9"))
    result = rec.client(admin_key).verify_key(api_key)
    assert result.usable and result.workspace_id == "wrkspc_9"
    request = rec.requests[0]
    assert request.url == "https://api.test/v1/models"
    assert request.headers["x-api-key"] == api_key.reveal()


def test_verify_401_means_not_usable(admin_key: Secret, api_key: Secret) -> None:
    rec = Recorder(lambda r: error(401, "authentication_error", "invalid x-api-key"))
    result = rec.client(admin_key).verify_key(api_key)
    assert not result.usable and result.status_code == 401


def test_redirects_are_never_followed(admin_key: Secret, api_key: Secret) -> None:
    rec = Recorder(lambda r: httpx.Response(307, headers={"location": "https://evil.test/"}))
    with pytest.raises(ApiError):
        rec.client(admin_key).verify_key(api_key)
    assert [r.url.host for r in rec.requests] == ["api.test"]


def test_hint_matching() -> None:
    key = generate_key()
    assert hint_parts(key.hint) is not None
    assert key_matches_hint(key, key.hint)
    other = generate_key()
    assert not key_matches_hint(key, other.hint)
    assert not key_matches_hint(key, None)
    assert not key_matches_hint(key, "garbage")


def _twins(key: Secret) -> Secret:
    """Another key with the same hint (same prefix, first 3 and last 4 characters)."""
    value = key.reveal()
    prefix = "sk-ant-" + "api03-"
    body = value[len(prefix) :]
    middle = "".join("A" if c != "A" else "B" for c in body[3:-4])
    return Secret(prefix + body[:3] + middle + body[-4:])


def _find_server(keys: list[dict[str, object]], workspace: str | None):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            headers = {"anthropic_workspace_id": workspace} if workspace else {}
            return answer(200, {"data": []}, **headers)
        return answer(200, {"data": keys, "has_more": False})

    return handler


def test_find_key_unique_hint(admin_key: Secret, api_key: Secret) -> None:
    keys = [key_obj("apikey_1", partial_key_hint=api_key.hint), key_obj("apikey_2")]
    rec = Recorder(_find_server(keys, None))
    assert rec.client(admin_key).find_key(api_key).id == "apikey_1"
    assert all(r.url.path != "/v1/models" for r in rec.requests)  # no need to verify


def test_find_key_tie_broken_by_workspace(admin_key: Secret, api_key: Secret) -> None:
    keys = [
        key_obj("apikey_1", partial_key_hint=api_key.hint, workspace_id="wrkspc_a"),
        key_obj("apikey_2", partial_key_hint=api_key.hint, workspace_id="wrkspc_b"),
    ]
    rec = Recorder(_find_server(keys, "wrkspc_b"))
    assert rec.client(admin_key).find_key(api_key).id == "apikey_2"


def test_find_key_tie_broken_by_name(admin_key: Secret, api_key: Secret) -> None:
    keys = [
        key_obj("apikey_1", partial_key_hint=api_key.hint, name="prod-1"),
        key_obj("apikey_2", partial_key_hint=api_key.hint, name="prod-2"),
    ]
    rec = Recorder(_find_server(keys, None))
    assert rec.client(admin_key).find_key(api_key, name="prod-2").id == "apikey_2"


def test_find_key_reports_ambiguity(admin_key: Secret, api_key: Secret) -> None:
    keys = [
        key_obj("apikey_1", partial_key_hint=api_key.hint),
        key_obj("apikey_2", partial_key_hint=api_key.hint),
    ]
    rec = Recorder(_find_server(keys, None))
    with pytest.raises(UsageError) as info:
        rec.client(admin_key).find_key(api_key)
    assert "apikey_1" in str(info.value) and "apikey_2" in str(info.value)
    assert api_key.reveal() not in str(info.value)


def test_find_key_unknown(admin_key: Secret, api_key: Secret) -> None:
    rec = Recorder(_find_server([key_obj("apikey_1", partial_key_hint=_twins(api_key).hint)], None))
    other = generate_key()
    with pytest.raises(NotFoundError) as info:
        rec.client(admin_key).find_key(other)
    assert info.value.exit_code == ExitCode.FOUND


def test_find_key_rejects_non_keys(admin_key: Secret) -> None:
    rec = Recorder(_find_server([], None))
    with pytest.raises(UsageError):
        rec.client(admin_key).find_key(Secret("hello world"))


def test_client_repr_hides_the_key(admin_key: Secret) -> None:
    client = Recorder(lambda r: answer()).client(admin_key)
    assert admin_key.reveal() not in repr(client)
    assert admin_key.reveal() not in repr(client._auth)
