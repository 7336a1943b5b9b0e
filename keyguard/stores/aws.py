"""``aws-sm://REGION/NAME``: AWS Secrets Manager, staged exactly as AWS's own rotation does.

Stages are the labels ``AWSPENDING``/``AWSCURRENT``/``AWSPREVIOUS``; the rotation token is the
``ClientRequestToken`` (so the version id); finishing moves ``AWSCURRENT`` with
``RemoveFromVersionId`` (AWS then moves ``AWSPREVIOUS``) and removes ``AWSPENDING``. Reads
always name a stage or a version: moto keeps serving the old default version after a label
move. Metadata lives in secret tags ``keyguard:<version-id>`` (tags are per secret, so each
version gets its own tag; unstaged old ones are pruned to stay under the 50-tag limit).

AWS adds ``AWSCURRENT`` to the first version a secret ever gets, even when it is put as
pending: the first key of an empty secret is served at once (there was nothing to serve).
When that first version is a lease record (a rotation leased an empty secret), keyguard never
reads it as a key, and takes ``AWSPREVIOUS`` off it once a real key is promoted.
"""

from __future__ import annotations

import re
import uuid
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime
from typing import Any

from keyguard.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    UnavailableError,
    UsageError,
)
from keyguard.keys import Secret
from keyguard.stores.interface import Stage, StoreVersion, VersionMeta
from keyguard.stores.lease import HeldLease, LeaseRecord, hold_lease
from keyguard.stores.uri import extract_field, merge_field, parse_store_uri

LABELS = {Stage.PENDING: "AWSPENDING", Stage.CURRENT: "AWSCURRENT", Stage.PREVIOUS: "AWSPREVIOUS"}
STAGE_OF = {label: stage for stage, label in LABELS.items()}
LEASE_LABEL = "KEYGUARD_LEASE"
LEASE_PREFIX = "keyguard-lease-"
TAG_PREFIX = "keyguard:"
KEEP_TAGGED = 20  # versions whose metadata tags survive pruning (2 tags each, limit 50)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_.:/=+@-]{32,64}$")
_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "DecryptionFailure",
}
_SERVER = {"InternalServiceError", "InternalFailure", "ServiceUnavailable"}


class _NotFound(Exception):
    """The secret, or the version/stage a read asked for, does not exist (nothing there)."""


def version_id_for(token: str) -> str:
    """AWS wants 32-64 characters: use the token itself when it fits, else a UUID5 of it."""
    if _TOKEN_RE.match(token):
        return token
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"keyguard:{token}"))


#: Short names inside the one ``keyguard:<version>`` tag (a tag value holds 256 characters).
_NAMES = {"key_id": "kid", "environment": "env", "stored_at": "at", "token": "tok"}


def _encode_meta(meta: VersionMeta, version_id: str) -> dict[str, str]:
    # The token is the version id unless it had to be hashed into one; the fingerprint is
    # too long to share the tag, so it has its own.
    token = meta.token if meta.token != version_id else None
    pairs = replace(meta, fingerprint=None, token=token).to_fields(_NAMES)
    tags = {
        f"{TAG_PREFIX}{version_id}": " ".join(f"{name}={value}" for name, value in pairs.items())
    }
    if meta.fingerprint:
        tags[f"{TAG_PREFIX}{version_id}:fp"] = meta.fingerprint
    return tags


def _decode_meta(tags: dict[str, str], version_id: str) -> VersionMeta:
    text = tags.get(f"{TAG_PREFIX}{version_id}")
    if text is None:
        return VersionMeta()
    pairs = dict(part.split("=", 1) for part in text.split() if "=" in part)
    meta = VersionMeta.from_fields(pairs, _NAMES)
    return replace(
        meta,
        fingerprint=tags.get(f"{TAG_PREFIX}{version_id}:fp"),
        token=meta.token or version_id,
    )


class AwsSecretsManagerStore:
    """One secret in AWS Secrets Manager (see the module docstring)."""

    def __init__(
        self,
        region: str,
        name: str,
        *,
        field: str | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 5,
        uri: str | None = None,
    ) -> None:
        self.region = region
        self.name = name
        self.field = field
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self.uri = uri or f"aws-sm://{region}/{name}"
        self._client_obj: Any = None

    @classmethod
    def from_uri(cls, uri: str) -> AwsSecretsManagerStore:
        parsed = parse_store_uri(uri)
        parsed.check_options({"endpoint_url", "max_attempts"})
        region, name = parsed.require_authority("REGION/NAME", "aws-sm://us-east-1/anthropic/prod")
        return cls(
            region,
            name,
            field=parsed.field,
            endpoint_url=parsed.opt_endpoint("endpoint_url"),
            max_attempts=max(1, parsed.opt_int("max_attempts", 5)),
            uri=uri,
        )

    # -- the client and its errors ------------------------------------------------------------

    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            )
            # endpoint_url=None lets boto3 honour AWS_ENDPOINT_URL(_SECRETS_MANAGER) itself.
            self._client_obj = boto3.session.Session().client(
                "secretsmanager",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=config,
            )
        return self._client_obj

    def _call(
        self, op: str, *, name_arg: str = "SecretId", missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """``op`` on this secret, errors mapped. A missing secret or version is ``_NotFound``
        for a read that expects it (``missing_ok``); anywhere else it was deleted under us."""
        from botocore import exceptions as bce

        try:
            return getattr(self._client, op)(**{name_arg: self.name}, **kwargs)
        except bce.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", "")
            action = exc.operation_name
            if code == "ResourceNotFoundException" and missing_ok:
                raise _NotFound(message) from None
            if code == "ResourceNotFoundException":
                raise NotFoundError(
                    f"store {self.uri}: AWS Secrets Manager answered {code} to {action} "
                    f"({message}): the secret was deleted meanwhile? check it and run again"
                ) from None
            if code in _THROTTLED or code in _SERVER:
                raise UnavailableError(
                    f"store {self.uri}: AWS Secrets Manager answered {code} to {action} after "
                    f"{self.max_attempts} attempts; run again later"
                ) from None
            if code in _DENIED:
                raise AuthError(
                    f"store {self.uri}: AWS denied {action} ({code}: {message}); grant "
                    f"secretsmanager:{action} on {self.name} to these credentials"
                ) from None
            if code in ("InvalidParameterException", "ResourceExistsException"):
                raise ConflictError(
                    f"store {self.uri}: {action} was refused ({code}: {message}); another "
                    "writer changed the secret, run `keyguard status` and try again"
                ) from None
            raise UsageError(f"store {self.uri}: {action} failed ({code}: {message})") from None
        except (bce.NoCredentialsError, bce.PartialCredentialsError) as exc:
            raise AuthError(
                f"store {self.uri}: no AWS credentials ({exc}); configure the "
                "usual chain (AWS_PROFILE, env vars, instance role)"
            ) from None
        except (bce.EndpointConnectionError, bce.HTTPClientError, bce.ConnectionError) as exc:
            raise UnavailableError(
                f"store {self.uri}: cannot reach AWS Secrets Manager after {self.max_attempts} "
                f"attempts ({type(exc).__name__}); check the network or endpoint_url"
            ) from None

    def _state(self) -> tuple[dict[str, list[str]], dict[str, str]] | None:
        """Version id -> labels, and the secret's tags; None when the secret does not exist."""
        try:
            described = self._call("describe_secret", missing_ok=True)
        except _NotFound:
            return None
        tags = {tag["Key"]: tag["Value"] for tag in described.get("Tags", [])}
        return dict(described.get("VersionIdsToStages", {})), tags

    def _holder(self, stages: dict[str, list[str]], label: str) -> str | None:
        return next((version_id for version_id, labels in stages.items() if label in labels), None)

    def _value(self, **selector: Any) -> str | None:
        try:
            got = self._call("get_secret_value", missing_ok=True, **selector)
        except _NotFound:
            return None
        value: str | None = got.get("SecretString")
        return value

    def _ensure_secret(self) -> tuple[dict[str, list[str]], dict[str, str]]:
        state = self._state()
        if state is not None:
            return state
        try:
            self._call("create_secret", name_arg="Name", Description="managed by keyguard")
        except ConflictError:
            return self._state() or ({}, {})  # a concurrent run created it first
        return {}, {}

    def _move(self, label: str, to: str | None, away: str | None) -> None:
        kwargs: dict[str, Any] = {"VersionStage": label}
        if to:
            kwargs["MoveToVersionId"] = to
        if away:
            kwargs["RemoveFromVersionId"] = away
        self._call("update_secret_version_stage", **kwargs)

    # -- SecretStore --------------------------------------------------------------------------

    def get(self, stage: Stage = Stage.CURRENT) -> Secret | None:
        try:
            got = self._call("get_secret_value", missing_ok=True, VersionStage=LABELS[stage])
        except _NotFound:
            return None
        if str(got.get("VersionId", "")).startswith(LEASE_PREFIX):
            return None  # AWS labels a secret's first version AWSCURRENT, even a lease record
        value = extract_field(got.get("SecretString"), self.field, self.uri)
        return Secret(value) if value else None

    def put_pending(self, value: Secret, meta: VersionMeta) -> str:
        if not meta.token:
            raise UsageError(f"store {self.uri}: put_pending needs a rotation token in meta.token")
        version_id = version_id_for(meta.token)
        stages, tags = self._ensure_secret()
        # Check ourselves: moto lets a same-token put overwrite an AWSPENDING version.
        stored = self._value(VersionId=version_id) if version_id in stages else None
        if stored is not None:
            if extract_field(stored, self.field, self.uri) != value.reveal():
                raise ConflictError(
                    f"store {self.uri}: rotation token {meta.token} already stored a different "
                    "key; start a new rotation (a new token) instead of reusing this one"
                )
            if not any(label in STAGE_OF for label in stages[version_id]):
                self._move(LABELS[Stage.PENDING], version_id, self._holder(stages, "AWSPENDING"))
        else:
            current = self._holder(stages, "AWSCURRENT")
            if current and current.startswith(LEASE_PREFIX):
                current = None  # a lease record, not a JSON secret to keep fields of
            base = self._value(VersionId=current, VersionStage="AWSCURRENT") if current else None
            raw = merge_field(base, self.field, value.reveal(), self.uri)
            self._call(
                "put_secret_value",
                ClientRequestToken=version_id,
                SecretString=raw,
                VersionStages=["AWSPENDING"],
            )
        self._tag(version_id, meta, stages, tags)
        return version_id

    def _tag(
        self, version_id: str, meta: VersionMeta, stages: dict[str, list[str]], tags: dict[str, str]
    ) -> None:
        if meta.stored_at is None:
            from datetime import UTC

            meta = VersionMeta(
                meta.key_id,
                meta.hint,
                meta.fingerprint,
                datetime.now(UTC),
                meta.token,
                meta.environment,
            )
        wanted = _encode_meta(meta, version_id)
        if f"{TAG_PREFIX}{version_id}" not in tags:
            self._call(
                "tag_resource",
                Tags=[{"Key": name, "Value": value} for name, value in wanted.items()],
            )
        tagged = [
            name[len(TAG_PREFIX) :]
            for name in tags
            if name.startswith(TAG_PREFIX) and not name.endswith(":fp")
        ]
        keep = {staged for staged, labels in stages.items() if labels} | {version_id}
        stale = [old for old in tagged if old not in keep][: max(0, len(tagged) + 1 - KEEP_TAGGED)]
        if stale:
            keys = [f"{TAG_PREFIX}{old}{suffix}" for old in stale for suffix in ("", ":fp")]
            self._call("untag_resource", TagKeys=keys)

    def promote(self, token: str) -> None:
        version_id = version_id_for(token)
        state = self._state()
        labels = state[0].get(version_id, []) if state else []
        if "AWSCURRENT" in labels:
            if "AWSPENDING" in labels:
                self._move("AWSPENDING", None, version_id)
            return
        if "AWSPENDING" not in labels or state is None:
            raise ConflictError(
                f"store {self.uri}: rotation {token} has no pending version to promote "
                "(another run replaced or discarded it); run `keyguard status` to see why"
            )
        old = self._holder(state[0], "AWSCURRENT")
        self._move("AWSCURRENT", version_id, old)
        # moto refuses the next rotation while AWSPENDING shares a version with AWSCURRENT.
        self._move("AWSPENDING", None, version_id)
        if old and old.startswith(LEASE_PREFIX):
            # AWS moved AWSPREVIOUS onto the lease record: it is no key to roll back to.
            self._move("AWSPREVIOUS", None, old)

    def rollback(self) -> None:
        state = self._state()
        stages = state[0] if state else {}
        previous = self._holder(stages, "AWSPREVIOUS")
        if previous is None or previous.startswith(LEASE_PREFIX):
            raise ConflictError(f"store {self.uri}: no previous version to roll back to")
        # AWS moves AWSPREVIOUS to the version AWSCURRENT leaves.
        self._move("AWSCURRENT", previous, self._holder(stages, "AWSCURRENT"))

    def withdraw(self, token: str) -> None:
        """AWS keeps ``AWSCURRENT`` on some version: put it on a placeholder version (a
        ``keyguard-lease-`` id, never read as a key), then take ``AWSPREVIOUS`` off the key.

        With ``#FIELD`` the secret is a JSON document other consumers read too: ``AWSCURRENT``
        goes back to the document the promote replaced (its other fields, the key's field as
        it was), when there was one."""
        version_id = version_id_for(token)
        state = self._state()
        if state is None or "AWSCURRENT" not in state[0].get(version_id, []):
            return
        before = self._holder(state[0], "AWSPREVIOUS")
        if self.field and before is not None and not before.startswith(LEASE_PREFIX):
            self._move("AWSCURRENT", before, version_id)
        else:
            placeholder = f"{LEASE_PREFIX}{uuid.uuid4().hex}"
            self._call(
                "put_secret_value",
                SecretString=f'{{"withdrawn": "{token}"}}',
                VersionStages=["KEYGUARD_WITHDRAWN"],
                ClientRequestToken=placeholder,
            )
            # An explicit label move: moto mislabels a put that names AWSCURRENT.
            self._move("AWSCURRENT", placeholder, version_id)
        after = self._state()
        if after is not None and "AWSPREVIOUS" in after[0].get(version_id, []):
            self._move("AWSPREVIOUS", None, version_id)

    def discard_pending(self, token: str) -> None:
        version_id = version_id_for(token)
        state = self._state()
        if state is not None and "AWSPENDING" in state[0].get(version_id, []):
            self._move("AWSPENDING", None, version_id)

    def describe(self) -> list[StoreVersion]:
        state = self._state()
        if state is None:
            return []
        stages, tags = state
        created: dict[str, float] = {}
        kwargs: dict[str, Any] = {"IncludeDeprecated": True, "MaxResults": 100}
        while True:
            page = self._call("list_secret_version_ids", **kwargs)
            for listed in page.get("Versions", []):
                when = listed.get("CreatedDate")
                created[listed["VersionId"]] = (
                    when.timestamp() if isinstance(when, datetime) else 0.0
                )
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        rank = {"AWSPENDING": 3, "AWSCURRENT": 2, "AWSPREVIOUS": 1}
        out: list[tuple[tuple[float, int], StoreVersion]] = []
        for version_id in set(created) | set(stages):
            if version_id.startswith(LEASE_PREFIX):
                continue
            labels = stages.get(version_id, [])
            own = frozenset(STAGE_OF[label] for label in labels if label in STAGE_OF)
            meta = _decode_meta(tags, version_id)
            # Same-second versions tie on CreatedDate: pending is newer than current, etc.
            key = (
                created.get(version_id, 0.0),
                max((rank.get(label, 0) for label in labels), default=0),
            )
            out.append((key, StoreVersion(version_id, own, meta)))
        return [version for _, version in sorted(out, key=lambda pair: pair[0], reverse=True)]

    def lease(self, owner: str, ttl_seconds: float) -> AbstractContextManager[HeldLease]:
        """A lease on AWS's own conditional write: the ``ClientRequestToken`` of a new version.

        Each lease change puts generation n+1 as version ``keyguard-lease-<n+1>`` labelled
        ``KEYGUARD_LEASE`` (a label AWS-native readers ignore). Two runs that both read
        generation n race for the same version id; AWS accepts one value for an id and
        rejects the other with ResourceExistsException, so exactly one wins. Tags and labels
        alone have no compare-and-set, and a companion secret would need more IAM rights.
        """

        def read() -> tuple[LeaseRecord | None, int]:
            state = self._state()
            holder = self._holder(state[0], LEASE_LABEL) if state else None
            if holder is None or not holder.startswith(LEASE_PREFIX):
                return None, 0
            number = holder[len(LEASE_PREFIX) :]
            if not (number.isascii() and number.isdigit()):
                raise ConflictError(
                    f"store {self.uri}: the {LEASE_LABEL} label sits on version {holder[:80]!r}, "
                    "which keyguard did not write; remove the label from it and run again"
                )
            generation = int(number)
            return LeaseRecord.decode(
                self._value(VersionId=holder, VersionStage=LEASE_LABEL)
            ), generation

        def write_if(generation: int, record: LeaseRecord | None) -> bool:
            self._ensure_secret()
            text = record.encode() if record else f'{{"released": "{uuid.uuid4().hex}"}}'
            try:
                self._call(
                    "put_secret_value",
                    SecretString=text,
                    VersionStages=[LEASE_LABEL],
                    ClientRequestToken=f"{LEASE_PREFIX}{generation + 1:017d}",
                )
            except ConflictError:
                return False
            return True

        return hold_lease(read, write_if, owner, ttl_seconds, self.uri)

    def retire_superseded(self) -> None:
        """AWS has no per-version disable; unlabelled versions are already deprecated by AWS."""
