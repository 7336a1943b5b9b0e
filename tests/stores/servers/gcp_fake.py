"""A protocol-faithful gRPC fake of GCP Secret Manager v1, served on loopback.

It speaks the real wire protocol: generic gRPC handlers (de)serialising the package's own
proto-plus request and response types, so the real ``SecretManagerServiceClient`` talks to it
over HTTP/2. What it models is what keyguard relies on, as ``docs/secret-stores.md`` records it:
etags (``ABORTED`` on mismatch), ``latest`` = the newest version whatever its state, aliases,
DESTROYED as a terminal state, crc32c checks, label filters and paging. Faults can be injected.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2, timestamp_pb2

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"
State = resources.SecretVersion.State
MAX_PAYLOAD = 64 * 1024
MAX_ANNOTATIONS_BYTES = 16 * 1024
_SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_ANNOTATION_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
WRITES = frozenset(
    {
        "CreateSecret",
        "UpdateSecret",
        "DeleteSecret",
        "AddSecretVersion",
        "EnableSecretVersion",
        "DisableSecretVersion",
        "DestroySecretVersion",
    }
)
Gate = Callable[[str], "grpc.StatusCode | None"]
_SECRET_PATHS = {"labels", "annotations", "version_aliases", "topics", "rotation", "expire_time"}


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C computed bit by bit: deliberately not the table method the store uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Version:
    number: int
    state: Any
    data: bytes
    etag: str
    created: timestamp_pb2.Timestamp
    checksummed: bool
    destroyed: timestamp_pb2.Timestamp | None = None


@dataclass
class _Secret:
    secret: resources.Secret
    versions: list[_Version] = field(default_factory=list)


@dataclass
class _Fault:
    code: grpc.StatusCode
    remaining: int
    methods: frozenset[str] | None


class FakeSecretManager:
    """State and handlers of the fake; ``start()`` serves it on 127.0.0.1 (port 0)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._secrets: dict[str, _Secret] = {}
        self._etags = itertools.count(1)
        self._faults: list[_Fault] = []
        self._hooks: dict[str, list[Callable[[], None]]] = {}
        self._corrupt = 0
        self.calls: list[tuple[str, str]] = []  # (method, resource name) of every request
        self._servers: list[grpc.Server] = []
        self.address = ""

    # ----- test controls -----
    def start(self) -> FakeSecretManager:
        self.address = self.view(None, workers=8)
        return self

    def view(self, gate: Gate | None, workers: int = 2) -> str:
        """Serve the same state on another port, where ``gate(method)`` may fail each call.

        A gate returning a status code makes that call fail with it: a throttling or
        permission-denying front, or a client that "crashes" after some writes.
        """
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        server.add_generic_rpc_handlers((self._generic_handler(gate),))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._servers.append(server)
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        for server in self._servers:
            server.stop(grace=None)
        self._servers.clear()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._hooks.clear()
            self.calls.clear()
            self._corrupt = 0

    def inject(
        self, code: grpc.StatusCode, count: int = 1, methods: set[str] | None = None
    ) -> None:
        """Fail the next ``count`` calls (of ``methods``, e.g. {"GetSecret"}) with ``code``."""
        with self._lock:
            self._faults.append(_Fault(code, count, frozenset(methods) if methods else None))

    def corrupt(self, count: int) -> None:
        """Send a wrong ``data_crc32c`` with the next ``count`` AccessSecretVersion answers."""
        with self._lock:
            self._corrupt = count

    def before(self, method: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` once, just before the next ``method`` call is served (a racing writer)."""
        with self._lock:
            self._hooks.setdefault(method, []).append(hook)

    def version_state(self, name: str) -> str:
        """``ENABLED``/``DISABLED``/``DESTROYED`` of ``projects/P/secrets/S/versions/N``."""
        with self._lock:
            return str(self._version(name, aliases=False).state.name)

    # ----- plumbing -----
    def _generic_handler(self, gate: Gate | None) -> grpc.GenericRpcHandler:
        table: dict[str, tuple[Callable[[Any], Any], Any, Callable[[Any], bytes]]] = {
            "CreateSecret": (
                self.create_secret,
                service.CreateSecretRequest,
                _ser(resources.Secret),
            ),
            "GetSecret": (self.get_secret, service.GetSecretRequest, _ser(resources.Secret)),
            "UpdateSecret": (
                self.update_secret,
                service.UpdateSecretRequest,
                _ser(resources.Secret),
            ),
            "DeleteSecret": (self.delete_secret, service.DeleteSecretRequest, _empty),
            "ListSecrets": (
                self.list_secrets,
                service.ListSecretsRequest,
                _ser(service.ListSecretsResponse),
            ),
            "AddSecretVersion": (
                self.add_version,
                service.AddSecretVersionRequest,
                _ser(resources.SecretVersion),
            ),
            "GetSecretVersion": (
                self.get_version,
                service.GetSecretVersionRequest,
                _ser(resources.SecretVersion),
            ),
            "AccessSecretVersion": (
                self.access_version,
                service.AccessSecretVersionRequest,
                _ser(service.AccessSecretVersionResponse),
            ),
            "ListSecretVersions": (
                self.list_versions,
                service.ListSecretVersionsRequest,
                _ser(service.ListSecretVersionsResponse),
            ),
            "EnableSecretVersion": (
                lambda r: self.set_state(r, State.ENABLED),
                service.EnableSecretVersionRequest,
                _ser(resources.SecretVersion),
            ),
            "DisableSecretVersion": (
                lambda r: self.set_state(r, State.DISABLED),
                service.DisableSecretVersionRequest,
                _ser(resources.SecretVersion),
            ),
            "DestroySecretVersion": (
                lambda r: self.set_state(r, State.DESTROYED),
                service.DestroySecretVersionRequest,
                _ser(resources.SecretVersion),
            ),
        }
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._wrap(method, fn, gate),
                request_deserializer=req_type.deserialize,
                response_serializer=serialize,
            )
            for method, (fn, req_type, serialize) in table.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _wrap(
        self, method: str, fn: Callable[[Any], Any], gate: Gate | None
    ) -> Callable[[Any, Any], Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls.append((method, _resource_of(request)))
                hooks = self._hooks.pop(method, [])
                fault = gate(method) if gate is not None else None
                fault = fault or self._take_fault(method)
            for hook in hooks:
                hook()
            if fault is not None:
                context.abort(fault, f"injected {fault.name} for {method}")
            try:
                with self._lock:
                    return fn(request)
            except Abort as exc:
                context.abort(exc.code, str(exc))

        return handler

    def _take_fault(self, method: str) -> grpc.StatusCode | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.methods is None or method in fault.methods):
                fault.remaining -= 1
                return fault.code
        return None

    def _etag(self) -> str:
        return f'"{next(self._etags):016x}"'

    def _secret(self, name: str) -> _Secret:
        rec = self._secrets.get(name)
        if rec is None:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{name}] not found or has no versions.")
        return rec

    def _version(self, name: str, *, aliases: bool = True) -> _Version:
        secret_name, sep, ident = name.partition("/versions/")
        if not sep or not ident:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name [{name}]")
        rec = self._secret(secret_name)
        number: int | None = None
        if ident == "latest":
            number = rec.versions[-1].number if rec.versions else None
        elif ident.isdigit():
            number = int(ident)
        elif aliases and ident in rec.secret.version_aliases:
            number = rec.secret.version_aliases[ident]
        for v in rec.versions:
            if v.number == number:
                return v
        raise Abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{name}] not found.")

    def _version_proto(self, secret_name: str, v: _Version) -> resources.SecretVersion:
        out = resources.SecretVersion(
            name=f"{secret_name}/versions/{v.number}",
            create_time=v.created,
            state=v.state,
            etag=v.etag,
            client_specified_payload_checksum=v.checksummed,
        )
        if v.destroyed is not None:
            out.destroy_time = v.destroyed
        return out

    # ----- secrets -----
    def create_secret(self, req: service.CreateSecretRequest) -> resources.Secret:
        if not _SECRET_ID.match(req.secret_id):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid secret_id [{req.secret_id}]")
        # An empty Automatic() is falsy in proto-plus: test for presence, not truth.
        rep = req.secret.replication
        if "automatic" not in rep and "user_managed" not in rep:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication is required.")
        if req.secret.version_aliases:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "a new secret has no versions to alias")
        name = f"{req.parent}/secrets/{req.secret_id}"
        if name in self._secrets:
            raise Abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{name}] already exists.")
        secret = resources.Secret.deserialize(resources.Secret.serialize(req.secret))
        _check_metadata(secret)
        secret.name, secret.etag = name, self._etag()
        secret.create_time = _now()
        self._secrets[name] = _Secret(secret)
        return secret

    def get_secret(self, req: service.GetSecretRequest) -> resources.Secret:
        return self._secret(req.name).secret

    def update_secret(self, req: service.UpdateSecretRequest) -> resources.Secret:
        rec = self._secret(req.secret.name)
        paths = list(req.update_mask.paths)
        if not paths:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "update_mask is required.")
        for path in paths:
            if path not in _SECRET_PATHS:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot update field [{path}]")
        if req.secret.etag and req.secret.etag != rec.secret.etag:
            raise Abort(grpc.StatusCode.ABORTED, f"etag mismatch for [{req.secret.name}]")
        updated = resources.Secret.deserialize(resources.Secret.serialize(rec.secret))
        for path in paths:
            setattr(updated, path, getattr(req.secret, path))
        _check_metadata(updated)
        numbers = {v.number: v for v in rec.versions}
        for alias, number in updated.version_aliases.items():
            if alias == "latest" or not _ALIAS.match(alias):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid alias [{alias}]")
            if number not in numbers or numbers[number].state == State.DESTROYED:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"alias [{alias}]: no version {number}"
                )
        updated.etag = self._etag()
        rec.secret = updated
        return updated

    def delete_secret(self, req: service.DeleteSecretRequest) -> empty_pb2.Empty:
        rec = self._secret(req.name)
        if req.etag and req.etag != rec.secret.etag:
            raise Abort(grpc.StatusCode.ABORTED, f"etag mismatch for [{req.name}]")
        del self._secrets[req.name]
        return empty_pb2.Empty()

    def list_secrets(self, req: service.ListSecretsRequest) -> service.ListSecretsResponse:
        wanted = _label_filter(req.filter)
        prefix = f"{req.parent}/secrets/"
        found = [
            r.secret
            for name, r in sorted(self._secrets.items())
            if name.startswith(prefix) and all(r.secret.labels.get(k) == v for k, v in wanted)
        ]
        page, token = _page(found, req.page_size, req.page_token)
        return service.ListSecretsResponse(
            secrets=page, next_page_token=token, total_size=len(found)
        )

    # ----- versions -----
    def add_version(self, req: service.AddSecretVersionRequest) -> resources.SecretVersion:
        rec = self._secret(req.parent)
        data = req.payload.data
        if len(data) > MAX_PAYLOAD:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "payload larger than 64 KiB")
        checksummed = "data_crc32c" in req.payload
        if checksummed and req.payload.data_crc32c != crc32c_bitwise(data):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch: data corrupted.")
        number = rec.versions[-1].number + 1 if rec.versions else 1
        v = _Version(number, State.ENABLED, data, self._etag(), _now(), checksummed)
        rec.versions.append(v)
        return self._version_proto(req.parent, v)

    def get_version(self, req: service.GetSecretVersionRequest) -> resources.SecretVersion:
        return self._version_proto(req.name.partition("/versions/")[0], self._version(req.name))

    def access_version(
        self, req: service.AccessSecretVersionRequest
    ) -> service.AccessSecretVersionResponse:
        secret_name = req.name.partition("/versions/")[0]
        v = self._version(req.name)
        if v.state != State.ENABLED:
            raise Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Secret Version [{secret_name}/versions/{v.number}] is in {v.state.name} state.",
            )
        crc = crc32c_bitwise(v.data)
        if self._corrupt > 0:  # as if the payload were damaged on the way
            self._corrupt -= 1
            crc ^= 1
        payload = resources.SecretPayload(data=v.data, data_crc32c=crc)
        return service.AccessSecretVersionResponse(
            name=f"{secret_name}/versions/{v.number}", payload=payload
        )

    def list_versions(
        self, req: service.ListSecretVersionsRequest
    ) -> service.ListSecretVersionsResponse:
        rec = self._secret(req.parent)
        states = _state_filter(req.filter)
        found = [
            self._version_proto(req.parent, v)
            for v in reversed(rec.versions)  # newest first, as the service lists them
            if states is None or v.state.name in states
        ]
        page, token = _page(found, req.page_size, req.page_token)
        return service.ListSecretVersionsResponse(
            versions=page, next_page_token=token, total_size=len(found)
        )

    def set_state(self, req: Any, state: Any) -> resources.SecretVersion:
        v = self._version(req.name, aliases=False)
        if req.etag and req.etag != v.etag:
            raise Abort(grpc.StatusCode.ABORTED, f"etag mismatch for [{req.name}]")
        if v.state == State.DESTROYED:
            raise Abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"Secret Version [{req.name}] is DESTROYED."
            )
        v.state, v.etag = state, self._etag()
        if state == State.DESTROYED:
            v.data, v.destroyed = b"", _now()
        return self._version_proto(req.name.partition("/versions/")[0], v)


def _resource_of(request: Any) -> str:
    for attr in ("name", "parent"):
        if attr in type(request).meta.fields:
            return str(getattr(request, attr))
    return str(request.secret.name)


def _ser(cls: Any) -> Callable[[Any], bytes]:
    def serialize(message: Any) -> bytes:
        return bytes(cls.serialize(message))

    return serialize


def _empty(message: empty_pb2.Empty) -> bytes:
    return message.SerializeToString()


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


def _check_metadata(secret: resources.Secret) -> None:
    for key, value in secret.labels.items():
        if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid label [{key}={value}]")
    size = 0
    for key, value in secret.annotations.items():
        if not _ANNOTATION_KEY.match(key):
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid annotation key [{key}]")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_ANNOTATIONS_BYTES:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "annotations exceed 16 KiB in total")


def _label_filter(text: str) -> list[tuple[str, str]]:
    """``labels.k=v`` terms joined by spaces or AND; anything else is refused."""
    terms = [t for t in re.split(r"\s+(?:AND\s+)?", text.strip()) if t]
    out = []
    for term in terms:
        m = re.fullmatch(r"labels\.([a-z][a-z0-9_-]*)[=:]([a-z0-9_-]*)", term)
        if not m:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter [{text}]")
        out.append((m.group(1), m.group(2)))
    return out


def _state_filter(text: str) -> set[str] | None:
    """``state:ENABLED``, ``state:(ENABLED OR DISABLED)`` or ``NOT state:DESTROYED``."""
    text = text.strip()
    if not text:
        return None
    names = {"ENABLED", "DISABLED", "DESTROYED"}
    m = re.fullmatch(r"(NOT\s+)?state[:=]\(?\s*([A-Z]+(?:\s+OR\s+[A-Z]+)*)\s*\)?", text)
    if not m or not set(re.split(r"\s+OR\s+", m.group(2))) <= names:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported filter [{text}]")
    chosen = set(re.split(r"\s+OR\s+", m.group(2)))
    return names - chosen if m.group(1) else chosen


def _page(items: list[Any], size: int, token: str) -> tuple[list[Any], str]:
    start = 0
    if token:
        if not token.startswith("o") or not token[1:].isdigit():
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid page_token [{token}]")
        start = int(token[1:])
    size = size if size > 0 else 25
    end = start + size
    return items[start:end], (f"o{end}" if end < len(items) else "")
