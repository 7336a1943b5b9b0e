from __future__ import annotations

import pickle

import pytest

from keyguard.keys import Secret, generate_key, is_admin_key, is_api_key, redact


def test_generated_keys_have_the_documented_shape() -> None:
    api = generate_key("api").reveal()
    admin = generate_key("admin").reveal()
    assert len(api) == 108 and is_api_key(api) and not is_admin_key(api)
    assert is_admin_key(admin) and not is_api_key(admin)


def test_redaction_matches_partial_key_hint_shape(api_key: Secret) -> None:
    value = api_key.reveal()
    body = value[len("sk-ant-api03-") :]
    assert redact(value) == f"sk-ant-api03-{body[:3]}...{body[-4:]}"


def test_secret_never_shows_plaintext(api_key: Secret) -> None:
    value = api_key.reveal()
    for text in (str(api_key), repr(api_key), f"{api_key}", f"{api_key!r}", str([api_key])):
        assert value not in text
    with pytest.raises(TypeError):
        pickle.dumps(api_key)


def test_short_values_are_fully_hidden() -> None:
    assert redact("sk-ant-api03-abc") == "sk-ant-api03-..."
