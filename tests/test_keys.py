from __future__ import annotations

import pickle

import pytest

from keyguard.audit.stores import read_store
from keyguard.keys import Secret, generate_key, is_admin_key, is_api_key, redact, scrub_text
from keyguard.stores.interface import SecretStore


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


FAMILIES = ("api03", "admin01", "oat01", "ort01", "api01", "sid01")


def _family_key(family: str) -> str:
    body = generate_key().reveal()[len("sk-ant-api03-") :]
    return f"sk-ant-{family}-{body}"


@pytest.mark.parametrize("family", FAMILIES)
def test_one_helper_redacts_every_family(family: str) -> None:
    key = _family_key(family)
    said = scrub_text(f"error: store echoed {key}; bye")
    assert key not in said and key[20:40] not in said
    assert said == f"error: store echoed {redact(key)}; bye"
    assert redact(key).startswith(f"sk-ant-{family}-")
    assert scrub_text(said) == said  # a hint is not redacted again


@pytest.mark.parametrize("family", FAMILIES)
def test_a_store_error_echoing_any_key_is_redacted_in_the_audit(family: str) -> None:
    key = _family_key(family)

    def opener(uri: str) -> SecretStore:
        raise RuntimeError(f"bad value {key}")

    view = read_store("file:///x", opener)
    assert view.error is not None and key not in view.error and redact(key) in view.error
