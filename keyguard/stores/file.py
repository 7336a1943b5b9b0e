"""``file:PATH``: the zero-setup store, versions and stages in one 0600 JSON document.

Writes take an exclusive ``flock`` on ``PATH.lock``, then replace the document atomically
(temp file, fsync, rename, fsync of the folder), so a reader sees the old or the new document,
never half of one. When PATH is a symlink, the document is written through to its target
(temp file beside the target, lock beside the target): the link stays a link.
``?passphrase_env=NAME`` encrypts each value with AES-GCM under a key derived by scrypt from
that variable's passphrase.

A file put there by hand is adopted only when it holds one key (or, with ``#FIELD``, a JSON
object whose field is one): a whole ``.env`` or another JSON document is refused, unchanged.
A keyguard document that does not have the expected shape is refused with a clear error.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keyguard.atomic import link_target, write_atomic
from keyguard.errors import AuthError, ConfigError, ConflictError, UnavailableError, UsageError
from keyguard.keys import Secret, is_api_key
from keyguard.stores.interface import Stage, StoreVersion, VersionMeta
from keyguard.stores.lease import HeldLease, LeaseRecord, hold_lease
from keyguard.stores.uri import extract_field, merge_field, parse_store_uri

FORMAT = "keyguard-file-store"
ADOPTED_ID = "adopted"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
Doc = dict[str, Any]


def meta_to_json(meta: VersionMeta) -> dict[str, str]:
    """``VersionMeta`` as a flat dict of strings, dropping empty fields."""
    return meta.to_fields()


def meta_from_json(data: dict[str, Any]) -> VersionMeta:
    return VersionMeta.from_fields(data)


class _Cipher:
    """AES-GCM per value; AAD binds each ciphertext to its version id."""

    def __init__(self, passphrase: str, salt: bytes) -> None:
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        key = Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.encode("utf-8"))
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, version_id: str, plaintext: str) -> dict[str, str]:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), version_id.encode("utf-8"))
        return {"nonce": _b64(nonce), "ct": _b64(sealed)}

    def open(self, version_id: str, box: dict[str, str], where: str) -> str:
        from cryptography.exceptions import InvalidTag

        try:
            nonce, sealed = base64.b64decode(box["nonce"]), base64.b64decode(box["ct"])
            data = self._aead.decrypt(nonce, sealed, version_id.encode("utf-8"))
        except (InvalidTag, KeyError, ValueError, TypeError):
            raise AuthError(
                f"store {where}: cannot decrypt version {version_id}: wrong passphrase or a "
                "tampered file; check the passphrase variable"
            ) from None
        return data.decode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class FileStore:
    """One key's versions in a local JSON document (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        field: str | None = None,
        passphrase_env: str | None = None,
        uri: str | None = None,
    ) -> None:
        self.path = path
        self.field = field
        self.passphrase_env = passphrase_env
        self.uri = uri or f"file:{path}"
        self._cipher: _Cipher | None = None
        self._salt: bytes | None = None
        # Tests swap this to simulate a crash before the rename.
        self._replace: Callable[[str, str], None] = os.replace

    @classmethod
    def from_uri(cls, uri: str) -> FileStore:
        parsed = parse_store_uri(uri)
        parsed.check_options({"passphrase_env"})
        if parsed.authority is not None or not parsed.path:
            raise ConfigError(f"store {uri!r}: expected file:PATH, e.g. file:.keyguard/prod.json")
        return cls(
            Path(parsed.path).expanduser(),
            field=parsed.field,
            passphrase_env=parsed.opt("passphrase_env"),
            uri=uri,
        )

    # -- document I/O -------------------------------------------------------------------------

    @property
    def _target(self) -> Path:
        """The file actually written: PATH, or what PATH links to (the link is kept)."""
        return link_target(self.path)

    def _io_error(self, exc: OSError, doing: str) -> Exception:
        if isinstance(exc, PermissionError):
            return AuthError(
                f"store {self.uri}: permission denied to {doing} {self.path}; "
                "check the file's owner and mode"
            )
        return UnavailableError(f"store {self.uri}: cannot {doing} {self.path}: {exc.strerror}")

    def _load(self) -> Doc:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise self._io_error(exc, "read") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"store {self.uri}: {self.path} is not UTF-8 text, so it holds no key keyguard "
                "can read; the file was left unchanged: point the store at a file of its own"
            ) from None
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
            doc = None
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            self._check_document(doc)
            self._check_encryption(doc)
            return doc
        value = text.strip()
        if not value:
            return self._empty()
        self._check_adoptable(value, doc)
        # Put there by hand: one plain version, adopted as current.
        fresh = self._empty()
        fresh["versions"].append(
            {
                "id": ADOPTED_ID,
                "stages": [Stage.CURRENT.value],
                "meta": {},
                "value": self._seal(fresh, ADOPTED_ID, value),
            }
        )
        return fresh

    def _malformed(self, what: str) -> ConfigError:
        return ConfigError(
            f"store {self.uri}: {self.path} is not a valid keyguard store document ({what}); "
            "restore it from a backup, or move it aside and deliver the key again"
        )

    def _check_document(self, doc: Doc) -> None:
        """``ConfigError`` unless ``doc`` has the shape keyguard writes (never a traceback)."""
        versions = doc.get("versions")
        if not isinstance(versions, list):
            raise self._malformed("'versions' is missing or not a list")
        held: set[str] = set()
        ids: set[str] = set()
        for position, version in enumerate(versions):
            if not isinstance(version, dict):
                raise self._malformed(f"version {position} is not an object")
            version_id, stages = version.get("id"), version.get("stages")
            if not isinstance(version_id, str) or not version_id or version_id in ids:
                raise self._malformed(f"version {position} has no id of its own")
            ids.add(version_id)
            if not isinstance(stages, list) or not all(isinstance(name, str) for name in stages):
                raise self._malformed(f"version {version_id!r}: 'stages' is not a list of names")
            for stage in stages:
                if stage not in Stage._value2member_map_:
                    known = ", ".join(known_stage.value for known_stage in Stage)
                    raise self._malformed(
                        f"version {version_id!r} has the stage {stage[:40]!r}; stages are {known}"
                    )
                if stage in held:
                    raise self._malformed(f"the stage {stage!r} is on more than one version")
                held.add(stage)
            if not isinstance(version.get("meta", {}), dict | None):
                raise self._malformed(f"version {version_id!r}: 'meta' is not an object")
            if not isinstance(version.get("value"), str | dict | None):
                raise self._malformed(f"version {version_id!r}: 'value' is not text")
        if not isinstance(doc.get("lease"), str | None):
            raise self._malformed("'lease' is not text")
        encryption = doc.get("encryption")
        if encryption is not None:
            salt = encryption.get("salt") if isinstance(encryption, dict) else None
            try:
                base64.b64decode(salt if isinstance(salt, str) else "-", validate=True)
            except ValueError:
                raise self._malformed("'encryption' has no readable salt") from None

    def _check_adoptable(self, text: str, parsed: Any) -> None:
        """Adopt only one key (or a JSON object whose #FIELD is one); else refuse, unchanged."""
        if self.field is not None:
            value = extract_field(text, self.field, self.uri)
            if value is None or is_api_key(value):
                return
            shape = f"its field #{self.field} is not an Anthropic API key"
        elif is_api_key(text):
            return
        elif isinstance(parsed, dict | list):
            shape = "a JSON document, not a key"
        else:
            lines = len(text.splitlines())
            shape = f"{lines} lines of text" if lines > 1 else "one line that is not a key"
        raise ConfigError(
            f"store {self.uri}: {self.path} holds {shape}; keyguard adopts a file only when it "
            "holds just the key (select a JSON field with #FIELD). The file was left unchanged: "
            "point the store at a file of its own"
        )

    def _empty(self) -> Doc:
        doc: Doc = {"format": FORMAT, "version": 1, "versions": [], "lease": None}
        if self.passphrase_env:
            self._salt = self._salt or os.urandom(16)
            doc["encryption"] = {"kdf": "scrypt", "salt": _b64(self._salt), **_SCRYPT}
        return doc

    def _check_encryption(self, doc: Doc) -> None:
        encryption = doc.get("encryption")
        if encryption and not self.passphrase_env:
            raise ConfigError(
                f"store {self.uri}: the file is encrypted; add ?passphrase_env=NAME to the URI"
            )
        if not encryption and self.passphrase_env and doc["versions"]:
            raise ConfigError(
                f"store {self.uri}: the file is not encrypted but the URI sets "
                "passphrase_env; drop it, or move the key to a new file"
            )
        if encryption:
            self._salt = base64.b64decode(encryption["salt"])

    def _cipher_for(self) -> _Cipher:
        if self._cipher is None:
            assert self.passphrase_env is not None and self._salt is not None
            passphrase = os.environ.get(self.passphrase_env, "")
            if not passphrase:
                raise AuthError(
                    f"store {self.uri}: ${self.passphrase_env} is empty; export the "
                    "passphrase that encrypts this store"
                )
            self._cipher = _Cipher(passphrase, self._salt)
        return self._cipher

    def _seal(self, doc: Doc, version_id: str, value: str) -> Any:
        if "encryption" not in doc:
            return value
        return self._cipher_for().seal(version_id, value)

    def _open(self, doc: Doc, version: dict[str, Any]) -> str | None:
        box = version.get("value")
        if box is None or "encryption" not in doc:
            return box if isinstance(box, str) or box is None else None
        return self._cipher_for().open(version["id"], box, self.uri)

    def _save(self, doc: Doc) -> None:
        try:
            write_atomic(
                self._target,
                json.dumps(doc, indent=2),
                mode=0o600,
                dir_mode=0o700,
                sync_dir=True,
                replace=self._replace,
            )
        except OSError as exc:
            raise self._io_error(exc, "write") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Doc]:
        """Exclusive lock, then the current document; written back by the caller via _save."""
        target = self._target
        lock_path = target.with_name(target.name + ".lock")
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._io_error(exc, "lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._load()
        finally:
            os.close(fd)  # closing drops the flock

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _find(
        doc: Doc, *, stage: Stage | None = None, version_id: str | None = None
    ) -> dict[str, Any] | None:
        for version in doc["versions"]:
            if (stage is not None and stage.value in version["stages"]) or (
                version_id is not None and version["id"] == version_id
            ):
                return version  # type: ignore[no-any-return]
        return None

    @staticmethod
    def _move(doc: Doc, stage: Stage, to: dict[str, Any] | None) -> None:
        for version in doc["versions"]:
            if stage.value in version["stages"]:
                version["stages"].remove(stage.value)
        if to is not None:
            to["stages"].append(stage.value)

    # -- SecretStore --------------------------------------------------------------------------

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        doc = self._load()
        version = self._find(doc, stage=stage)
        if version is None:
            return None
        value = extract_field(self._open(doc, version), self.field, self.uri)
        return Secret(value) if value else None

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        token = meta.token
        if not token:
            raise UsageError(f"store {self.uri}: put_pending needs a rotation token in meta.token")
        with self._locked() as doc:
            existing = self._find(doc, version_id=token)
            if existing is not None:
                stored = extract_field(self._open(doc, existing), self.field, self.uri)
                if stored != value.reveal():
                    raise ConflictError(
                        f"store {self.uri}: rotation token {token} already stored a different "
                        "key; start a new rotation (a new token) instead of reusing this one"
                    )
                if existing["stages"]:
                    return token
                self._move(doc, Stage.PENDING, existing)
            else:
                current = self._find(doc, stage=Stage.CURRENT)
                base = self._open(doc, current) if current else None
                raw = merge_field(base, self.field, value.reveal(), self.uri)
                stored_at = meta.stored_at or datetime.now(UTC)
                record = {
                    "id": token,
                    "stages": [],
                    "value": self._seal(doc, token, raw),
                    "meta": meta_to_json(_with(meta, stored_at=stored_at)),
                }
                doc["versions"].append(record)
                self._move(doc, Stage.PENDING, record)
            self._save(doc)
        return token

    def promote(self, token: str) -> None:
        with self._locked() as doc:
            version = self._find(doc, version_id=token)
            stages = version["stages"] if version else []
            if version is None or (
                Stage.PENDING.value not in stages and Stage.CURRENT.value not in stages
            ):
                raise ConflictError(
                    f"store {self.uri}: rotation {token} has no pending version to promote "
                    "(another run replaced or discarded it); run `keyguard status` to see why"
                )
            if Stage.CURRENT.value in stages:
                if Stage.PENDING.value not in stages:
                    return
                stages.remove(Stage.PENDING.value)
            else:
                old = self._find(doc, stage=Stage.CURRENT)
                self._move(doc, Stage.PENDING, None)
                self._move(doc, Stage.PREVIOUS, old)
                self._move(doc, Stage.CURRENT, version)
            self._save(doc)

    def rollback(self) -> None:
        with self._locked() as doc:
            previous = self._find(doc, stage=Stage.PREVIOUS)
            if previous is None:
                raise ConflictError(f"store {self.uri}: no previous version to roll back to")
            current = self._find(doc, stage=Stage.CURRENT)
            self._move(doc, Stage.CURRENT, previous)
            self._move(doc, Stage.PREVIOUS, current)
            self._save(doc)

    def withdraw(self, token: str) -> None:
        """No version is current afterwards; with ``#FIELD``, the document the promote
        replaced (its other fields, the key's field as it was) is current again."""
        with self._locked() as doc:
            version = self._find(doc, version_id=token)
            if version is None or Stage.CURRENT.value not in version["stages"]:
                return
            version["stages"].remove(Stage.CURRENT.value)
            before = self._find(doc, stage=Stage.PREVIOUS)
            self._move(doc, Stage.PREVIOUS, None)
            if self.field is not None and before is not None:
                self._move(doc, Stage.CURRENT, before)
            self._save(doc)

    def discard_pending(self, token: str) -> None:
        with self._locked() as doc:
            version = self._find(doc, version_id=token)
            if version is None or Stage.PENDING.value not in version["stages"]:
                return
            version["stages"].remove(Stage.PENDING.value)
            self._save(doc)

    def describe(self) -> list[StoreVersion]:
        doc = self._load()
        return [
            StoreVersion(
                version["id"],
                frozenset(Stage(name) for name in version["stages"]),
                meta_from_json(version.get("meta") or {}),
            )
            for version in reversed(doc["versions"])
        ]

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[HeldLease]:
        def read() -> tuple[LeaseRecord | None, str | None]:
            doc = self._load()
            return LeaseRecord.decode(doc.get("lease")), doc.get("lease")

        def write_if(seen: str | None, record: LeaseRecord | None) -> bool:
            with self._locked() as doc:
                if doc.get("lease") != seen:
                    return False
                doc["lease"] = record.encode() if record else None
                self._save(doc)
            return True

        return hold_lease(read, write_if, owner, ttl_seconds, self.uri)

    def retire_superseded(self) -> None:
        """Drop the values (keep the metadata) of versions that hold no stage."""
        with self._locked() as doc:
            changed = False
            for version in doc["versions"]:
                if not version["stages"] and version.get("value") is not None:
                    version["value"] = None
                    changed = True
            if changed:
                self._save(doc)


def _with(meta: VersionMeta, **changes: Any) -> VersionMeta:
    from dataclasses import replace

    return replace(meta, **changes)
