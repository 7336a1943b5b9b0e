"""Junk in a store's document or version metadata: a clear error or a sane reading, never a crash.

Property tests (hypothesis) throw generated documents at the file store's reader and generated
tags/annotations at the AWS, GCP and Azure version-metadata readers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyguard.errors import ConfigError, ExitCode, KeyguardError
from keyguard.keys import generate_key
from keyguard.stores.file import FORMAT, FileStore
from keyguard.stores.interface import Stage, VersionMeta

JUNK_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
stage_names = st.one_of(st.sampled_from([s.value for s in Stage]), st.text(max_size=10))
versions = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=8), json_values),
        "stages": st.one_of(st.lists(stage_names, max_size=3), json_values),
        "value": st.one_of(st.text(max_size=30), json_values),
        "meta": st.one_of(
            st.dictionaries(
                st.sampled_from(["key_id", "hint", "fingerprint", "stored_at", "token"]),
                st.one_of(st.text(max_size=30), json_values),
            ),
            json_values,
        ),
    },
)
documents = st.fixed_dictionaries(
    {"format": st.just(FORMAT)},
    optional={
        "version": json_values,
        "versions": st.one_of(st.lists(st.one_of(versions, json_values), max_size=4), json_values),
        "lease": st.one_of(st.text(max_size=40), json_values),
        "encryption": json_values,
    },
)


def _read_everything(path: Path) -> None:
    store = FileStore.from_uri(f"file:{path}")
    for stage in Stage:
        store.get(stage)
    for version in store.describe():
        stored = version.meta.stored_at
        assert stored is None or stored.tzinfo is not None


@JUNK_SETTINGS
@given(doc=documents)
def test_any_store_document_reads_or_fails_with_a_keyguard_error(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prod.json"
        path.write_text(json.dumps(doc), "utf-8")
        try:
            _read_everything(path)
        except KeyguardError as exc:
            assert exc.exit_code in (ExitCode.USAGE, ExitCode.AUTH)
            assert "\n" not in str(exc)


@JUNK_SETTINGS
@given(raw=st.binary(max_size=200))
def test_any_bytes_in_a_file_store_read_or_fail_with_a_keyguard_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prod.json"
        path.write_bytes(raw)
        try:
            _read_everything(path)
        except KeyguardError as exc:
            assert exc.exit_code == ExitCode.USAGE
        assert path.read_bytes() == raw  # reading never rewrites


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({"format": FORMAT, "version": 1}, "'versions' is missing"),
        ({"format": FORMAT, "versions": {"a": 1}}, "'versions' is missing or not a list"),
        (
            {"format": FORMAT, "versions": [{"id": "t1", "stages": ["live"], "value": "x"}]},
            "stage 'live'",
        ),
        (
            {
                "format": FORMAT,
                "versions": [
                    {"id": "t1", "stages": ["current"], "value": "x"},
                    {"id": "t2", "stages": ["current"], "value": "y"},
                ],
            },
            "on more than one version",
        ),
        ({"format": FORMAT, "versions": [{"stages": []}]}, "no id"),
    ],
)
def test_a_malformed_document_is_refused_on_the_command_line(
    tmp_path: Path, doc: dict[str, Any], said: str
) -> None:
    store = tmp_path / "prod.json"
    store.write_text(json.dumps(doc))
    (tmp_path / "keyguard.toml").write_text(f'[environments.prod]\nstores = ["file:{store}"]\n')
    config = str(tmp_path / "keyguard.toml")
    done = subprocess.run(
        [sys.executable, "-m", "keyguard", "--config", config, "get", "prod"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and said in done.stderr
    assert "not a valid keyguard store document" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# -- the cloud stores' metadata readers ------------------------------------------------------

texts = st.text(max_size=60)
tag_keys = st.one_of(
    texts,
    st.builds(lambda v, s: f"keyguard:{v}{s}", texts, st.sampled_from(["", ":fp", ":x"])),
)


def _sane(meta: VersionMeta) -> None:
    for name in ("key_id", "hint", "fingerprint", "token", "environment"):
        assert isinstance(getattr(meta, name), str | None)
    assert meta.stored_at is None or (
        isinstance(meta.stored_at, datetime) and meta.stored_at.tzinfo is not None
    )


@JUNK_SETTINGS
@given(tags=st.dictionaries(tag_keys, texts, max_size=8), version_id=texts)
def test_aws_version_tags_of_any_shape_read_as_metadata(
    tags: dict[str, str], version_id: str
) -> None:
    from keyguard.stores.aws import _decode_meta

    _sane(_decode_meta(tags, version_id))
    _sane(_decode_meta({f"keyguard:{version_id}": " ".join(tags.values())}, version_id))


annotation_keys = st.one_of(
    texts, st.builds(lambda s: f"keyguard-v{s}", st.one_of(texts, st.integers().map(str)))
)
annotation_values = st.one_of(texts, json_values.map(json.dumps))


@JUNK_SETTINGS
@given(
    annotations=st.dictionaries(annotation_keys, annotation_values, max_size=8),
    aliases=st.dictionaries(
        st.sampled_from(["current", "previous", "pending", "latest", "x"]),
        st.integers(1, 99),
        max_size=4,
    ),
)
def test_gcp_annotations_of_any_shape_read_as_metadata(
    annotations: dict[str, str], aliases: dict[str, int]
) -> None:
    from keyguard.stores.gcp import metadata as gcp_meta

    secret = SimpleNamespace(annotations=annotations, version_aliases=aliases)
    for number, data in gcp_meta.metas_of(secret).items():
        assert isinstance(number, int)
        _sane(gcp_meta.meta_of(data))
    assert set(gcp_meta.aliases_of(secret)) <= {"current", "previous", "pending"}
    gcp_meta.token_version(secret, "tok")
    kept = gcp_meta.pruned(annotations, gcp_meta.aliases_of(secret))
    assert set(kept) <= set(annotations)


@JUNK_SETTINGS
@given(
    tags=st.one_of(
        st.none(),
        st.dictionaries(
            st.one_of(texts, st.sampled_from(["keyguard-stored-at", "keyguard-key-id"])),
            texts,
            max_size=8,
        ),
    )
)
def test_azure_version_tags_of_any_shape_read_as_metadata(tags: dict[str, str] | None) -> None:
    pytest.importorskip("azure.keyvault.secrets")
    from keyguard.stores.azure import tags as azure_tags

    _sane(azure_tags.meta_from_tags(tags))


def test_metadata_written_is_metadata_read_in_every_cloud_codec() -> None:
    from keyguard.stores import aws
    from keyguard.stores.gcp import metadata as gcp_meta

    key = generate_key()
    meta = VersionMeta(
        key_id="apikey_01",
        hint=key.hint,
        fingerprint=key.fingerprint,
        stored_at=datetime.fromisoformat("2026-12-01T10:00:00+00:00"),
        token="prod-20261201T100000Z-abc123",
        environment="prod",
    )
    vid = aws.version_id_for(meta.token or "")
    assert aws._decode_meta(aws._encode_meta(meta, vid), vid) == meta
    assert gcp_meta.meta_of(json.loads(gcp_meta.encode_meta(meta, key))) == meta


def test_a_naive_stored_at_is_read_as_utc() -> None:
    meta = VersionMeta.from_fields({"stored_at": "2026-12-01T10:00:00"})
    assert meta.stored_at is not None and meta.stored_at.utcoffset() is not None


def test_config_error_is_what_a_bad_stage_raises(tmp_path: Path) -> None:
    path = tmp_path / "prod.json"
    path.write_text(json.dumps({"format": FORMAT, "versions": [{"id": "a", "stages": ["gone"]}]}))
    with pytest.raises(ConfigError, match="stages are pending, current, previous"):
        FileStore.from_uri(f"file:{path}").get()
