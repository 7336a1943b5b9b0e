"""An HTTPS fake of the Azure Key Vault secrets data plane, for the real ``SecretClient``.

It speaks the REST API the SDK calls (bearer challenge, api-version, versions, per-version tags
and attributes, paging with ``nextLink``, soft-delete, recover, purge, the error shape) over
real TLS with a self-signed certificate. Faults (429 with Retry-After, 401, 403, 500, a dropped
connection) are injected with ``set_faults``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from keyguard.stores import SecretStore
from keyguard.stores.azure import AzureKeyVaultStore
from keyguard.stores.uri import parse_store_uri
from tests.stores.servers.base import Harness, allow_store_ca_bundle, allow_store_endpoint

TENANT = "72f988bf-0000-0000-0000-000000000000"
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_TAGS = 15


def write_self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A P-256 self-signed cert for localhost/127.0.0.1; returns (cert/CA file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keyguard azure-kv fake")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "ca.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass
class Version:
    id: str
    value: str
    content_type: str | None
    tags: dict[str, str]
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Deleted:
    versions: list[Version]
    deleted_date: int
    scheduled_purge: int


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner


class Faults:
    """Faults one listener injects into authenticated requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults: dict[str, Any] = {}

    def set_faults(
        self, kind: str, *, count: int | None = None, retry_after: int = 0, path: str = ""
    ) -> None:
        """Answer the next ``count`` (None: every) matching request with a fault.

        kinds: ``429`` (throttled, with Retry-After), ``401``, ``403``, ``500``, ``drop`` (the
        connection is closed with no answer), ``gone`` (every write meets 404, as if the secret
        was deleted right after it was read). ``path``: only requests whose path contains it.
        """
        with self.lock:
            self.faults = {"kind": kind, "count": count, "retry_after": retry_after, "path": path}

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = {}

    def take_fault(self, path: str) -> dict[str, Any] | None:
        with self.lock:
            f = self.faults
            if not f or f["path"] not in path:
                return None
            if f["count"] is not None:
                if f["count"] <= 0:
                    return None
                f["count"] -= 1
            return dict(f)


class FakeKeyVault:
    """The vault's state and its REST semantics, independent of HTTP plumbing."""

    def __init__(self, page_size: int = 25) -> None:
        self.page_size = page_size
        self.base_url = ""
        self.lock = threading.Lock()
        self.secrets: dict[str, list[Version]] = {}
        self.deleted: dict[str, Deleted] = {}
        self.requests = 0

    # -- helpers ---------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.secrets.clear()
            self.deleted.clear()

    def _item_id(self, name: str, version: str | None = None) -> str:
        return f"{self.base_url}/secrets/{name}" + (f"/{version}" if version else "")

    def _attrs(self, v: Version) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": v.enabled,
            "created": v.created,
            "updated": v.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if v.nbf is not None:
            out["nbf"] = v.nbf
        if v.exp is not None:
            out["exp"] = v.exp
        return out

    def bundle(self, name: str, v: Version, *, value: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self._item_id(name, v.id), "attributes": self._attrs(v)}
        if value:
            out["value"] = v.value
        if v.content_type is not None:
            out["contentType"] = v.content_type
        if v.tags:
            out["tags"] = dict(v.tags)
        return out

    def _deleted_bundle(self, name: str, d: Deleted) -> dict[str, Any]:
        out = self.bundle(name, d.versions[-1], value=False)
        out.update(
            recoveryId=f"{self.base_url}/deletedsecrets/{name}",
            deletedDate=d.deleted_date,
            scheduledPurgeDate=d.scheduled_purge,
        )
        return out

    def _versions(self, name: str) -> list[Version]:
        if name in self.secrets:
            return self.secrets[name]
        raise ApiError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {name} was not found in this key vault. If you recently "
            "deleted this secret you may be able to recover it using the correct recovery command.",
        )

    def _version(self, name: str, version: str) -> Version:
        versions = self._versions(name)
        if not version:
            return versions[-1]
        for v in versions:
            if v.id == version:
                return v
        raise ApiError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {name}/{version} was not found in this key vault.",
        )

    def _page(self, items: list[dict[str, Any]], path: str, q: dict[str, str]) -> dict[str, Any]:
        size = min(int(q.get("maxresults") or self.page_size), self.page_size)
        skip = int(q.get("$skiptoken") or 0)
        out: dict[str, Any] = {"value": items[skip : skip + size], "nextLink": None}
        if skip + size < len(items):
            out["nextLink"] = (
                f"{self.base_url}{path}?api-version={q['api-version']}"
                f"&$skiptoken={skip + size}&maxresults={size}"
            )
        return out

    # -- operations ------------------------------------------------------------------------
    def handle(self, method: str, path: str, q: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p] + ([""] if path.endswith("/") else [])
        with self.lock:
            if parts[:1] == ["secrets"]:
                return self._secrets(method, parts[1:], path, q, body)
            if parts[:1] == ["deletedsecrets"]:
                return self._deleted(method, parts[1:], path, q)
        raise ApiError(404, "NotFound", f"no route for {method} {path}")

    def _secrets(
        self, method: str, rest: list[str], path: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if not rest and method == "GET":
            items = [
                {
                    "id": self._item_id(n),
                    "attributes": self._attrs(vs[-1]),
                    **({"tags": vs[-1].tags} if vs[-1].tags else {}),
                    **({"contentType": vs[-1].content_type} if vs[-1].content_type else {}),
                }
                for n, vs in sorted(self.secrets.items())
            ]
            return 200, self._page(items, path, q)
        name = rest[0] if rest else ""
        if not NAME_RE.match(name):
            raise ApiError(400, "BadParameter", f"invalid secret name {name!r}")
        if len(rest) == 1 and method == "PUT":
            return 200, self._set(name, body)
        if len(rest) == 1 and method == "DELETE":
            versions = self._versions(name)
            now = int(time.time())
            d = Deleted(versions, now, now + 90 * 86400)
            self.deleted[name] = d
            del self.secrets[name]
            return 200, self._deleted_bundle(name, d)
        if len(rest) == 2 and rest[1] == "versions" and method == "GET":
            items = [
                {
                    "id": self._item_id(name, v.id),
                    "attributes": self._attrs(v),
                    **({"tags": v.tags} if v.tags else {}),
                    **({"contentType": v.content_type} if v.content_type else {}),
                }
                for v in self._versions(name)
            ]
            return 200, self._page(items, path, q)
        if len(rest) in (1, 2) and method in ("GET", "PATCH"):
            v = self._version(name, rest[1] if len(rest) == 2 else "")
            if method == "PATCH":
                return 200, self._update(name, v, body or {})
            if not v.enabled:
                raise ApiError(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    "SecretDisabled",
                )
            return 200, self.bundle(name, v, value=True)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")

    def _set(self, name: str, body: Any) -> dict[str, Any]:
        if name in self.deleted:
            raise ApiError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise ApiError(400, "BadParameter", "The request body must hold a string 'value'.")
        tags = body.get("tags") or {}
        if len(tags) > MAX_TAGS:
            raise ApiError(400, "BadParameter", f"At most {MAX_TAGS} tags are allowed.")
        attrs = body.get("attributes") or {}
        v = Version(
            id=uuid.uuid4().hex,
            value=body["value"],
            content_type=body.get("contentType"),
            tags={str(k): str(t) for k, t in tags.items()},
            enabled=attrs.get("enabled", True),
            nbf=attrs.get("nbf"),
            exp=attrs.get("exp"),
        )
        self.secrets.setdefault(name, []).append(v)
        return self.bundle(name, v, value=True)

    def _update(self, name: str, v: Version, body: dict[str, Any]) -> dict[str, Any]:
        if "tags" in body and body["tags"] is not None:
            if len(body["tags"]) > MAX_TAGS:
                raise ApiError(400, "BadParameter", f"At most {MAX_TAGS} tags are allowed.")
            v.tags = {str(k): str(t) for k, t in body["tags"].items()}
        if body.get("contentType") is not None:
            v.content_type = body["contentType"]
        attrs = body.get("attributes") or {}
        for key in ("enabled", "nbf", "exp"):
            if attrs.get(key) is not None:
                setattr(v, key, attrs[key])
        v.updated = int(time.time())
        return self.bundle(name, v, value=False)

    def _deleted(
        self, method: str, rest: list[str], path: str, q: dict[str, str]
    ) -> tuple[int, Any]:
        if not rest and method == "GET":
            items = []
            for n, d in sorted(self.deleted.items()):
                item = self._deleted_bundle(n, d)
                item["id"] = self._item_id(n)
                items.append(item)
            return 200, self._page(items, path, q)
        name = rest[0] if rest else ""
        d = self.deleted.get(name)
        if d is None:
            raise ApiError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        if len(rest) == 1 and method == "GET":
            return 200, self._deleted_bundle(name, d)
        if len(rest) == 1 and method == "DELETE":
            del self.deleted[name]
            return 204, None
        if len(rest) == 2 and rest[1] == "recover" and method == "POST":
            del self.deleted[name]
            self.secrets[name] = d.versions
            return 200, self.bundle(name, d.versions[-1], value=False)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {path}")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Without it every request stalls ~40 ms on delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if payload is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", uuid.uuid4().hex)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, e: ApiError, headers: dict[str, str] | None = None) -> None:
        err: dict[str, Any] = {"code": e.code, "message": e.message}
        if e.inner:
            err["innererror"] = {"code": e.inner}
        self._send(e.status, {"error": err}, headers)

    def _dispatch(self) -> None:
        # Always drain the body first, even on error paths, or the next keep-alive request is
        # read from the middle of this one.
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        vault = self.server.vault
        vault.requests += 1
        url = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "api-version" not in q:
            self._error(ApiError(400, "BadParameter", "The request is missing api-version."))
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                'resource="https://vault.azure.net"'
            )
            self._error(
                ApiError(401, "Unauthorized", "AKV10000: Request is missing a Bearer token."),
                {"WWW-Authenticate": challenge},
            )
            return
        fault = self.server.faults.take_fault(url.path)
        if fault is not None and self._fault(fault):
            return
        try:
            body = json.loads(raw) if raw else None
            status, payload = vault.handle(self.command, url.path, q, body)
        except ApiError as e:
            self._error(e)
            return
        except (ValueError, KeyError, TypeError) as e:
            self._error(ApiError(400, "BadParameter", f"bad request: {e}"))
            return
        self._send(status, payload)

    def _fault(self, fault: dict[str, Any]) -> bool:
        kind = fault["kind"]
        if kind == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if kind == "429":
            self._error(
                ApiError(429, "Throttled", "Rate limit is exceeded. Try again later."),
                {"Retry-After": str(fault["retry_after"])},
            )
        elif kind == "401":
            self._error(ApiError(401, "Unauthorized", "AKV10032: Invalid issuer."))
        elif kind == "403":
            self._error(
                ApiError(
                    403,
                    "Forbidden",
                    "The user, group or application does not have secrets get permission on "
                    "key vault 'fake'.",
                    "ForbiddenByPolicy",
                )
            )
        elif kind == "500":
            self._error(ApiError(500, "InternalServerError", "An unexpected error occurred."))
        elif kind == "gone" and self.command != "GET":  # deleted right after each read
            self._error(ApiError(404, "SecretNotFound", "A secret with that name was not found."))
        else:
            return False
        return True

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    vault: FakeKeyVault
    faults: Faults


class AzureKeyVaultServer:
    """The fake on 127.0.0.1 with real TLS: ``url``, ``ca_file``, ``vault``; start()/stop().

    ``fault_url(kind)`` opens another listener on the same vault state that always injects
    ``kind``, so one client can be faulty while others work normally.
    """

    def __init__(self, folder: Path, page_size: int = 3) -> None:
        self.ca_file, self._key_file = write_self_signed_cert(folder)
        self.vault = FakeKeyVault(page_size=page_size)
        self.faults = Faults()
        self._listeners: list[tuple[_Server, threading.Thread]] = []
        self._fault_urls: dict[str, str] = {}
        self.url = ""

    def _listen(self, faults: Faults) -> str:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.ca_file, self._key_file)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        httpd.vault, httpd.faults = self.vault, faults
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        self._listeners.append((httpd, thread))
        return f"https://127.0.0.1:{httpd.server_address[1]}"

    def start(self) -> AzureKeyVaultServer:
        self.url = self._listen(self.faults)
        self.vault.base_url = self.url
        return self

    def stop(self) -> None:
        for httpd, thread in self._listeners:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
        self._listeners.clear()

    def fault_url(self, kind: str, retry_after: int = 0) -> str:
        """A vault URL on the same state whose every authenticated request meets ``kind``."""
        if kind not in self._fault_urls:
            faults = Faults()
            faults.set_faults(kind, retry_after=retry_after)
            self._fault_urls[kind] = self._listen(faults)
        return self._fault_urls[kind]

    def set_faults(self, kind: str, **kw: Any) -> None:
        self.faults.set_faults(kind, **kw)

    def clear_faults(self) -> None:
        self.faults.clear_faults()

    def uri(self, name: str, *, vault_url: str = "", fieldname: str | None = None) -> str:
        """An ``azure-kv://`` store URI for secret ``name`` on this server."""
        query = urlencode(
            {
                "vault_url": allow_store_endpoint(vault_url or self.url),
                "ca_bundle": allow_store_ca_bundle(str(self.ca_file)),
                "credential": "static",
            }
        )
        return f"azure-kv://fake/{name}?{query}" + (f"#{fieldname}" if fieldname else "")

    def client(self, vault_url: str = "") -> Any:
        """A plain ``SecretClient`` on this server: how a person or a consumer reaches it."""
        from azure.keyvault.secrets import SecretClient

        from keyguard.stores.azure._sdk import StaticCredential

        return SecretClient(
            vault_url or self.url,
            StaticCredential(),
            verify_challenge_resource=False,
            connection_verify=str(self.ca_file),
        )


def closed_port_url() -> str:
    """An https URL on a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"https://127.0.0.1:{port}"


class CutTransport:
    """A transport that lets ``writes`` authenticated writes through, then fails (a crash)."""

    def __init__(self, writes: int, ca_file: Path) -> None:
        from azure.core.pipeline.transport import RequestsTransport

        self.inner = RequestsTransport(connection_verify=str(ca_file))
        self.left = writes

    def __enter__(self) -> CutTransport:
        self.inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.inner.__exit__(*args)

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def sleep(self, duration: float) -> None:
        self.inner.sleep(duration)

    def send(self, request: Any, **kwargs: Any) -> Any:
        is_write = request.method in ("PUT", "PATCH", "POST", "DELETE")
        if is_write and "Authorization" in request.headers:
            if self.left <= 0:
                from keyguard.errors import UnavailableError

                raise UnavailableError("simulated crash: the process died before this write")
            self.left -= 1
        return self.inner.send(request, **kwargs)


class AzureHarness(Harness):
    """Fresh ``azure-kv`` stores on the fake, one secret name per call."""

    name = "azure"
    faults = frozenset({"throttle", "denied", "unreachable", "gone"})

    def __init__(self, server: AzureKeyVaultServer) -> None:
        self.server = server
        self._client = server.client()

    def new_uri(self, field: str | None = None) -> str:
        return self.server.uri(self.unique(), fieldname=field)

    def put_by_hand(self, uri: str, raw: str) -> None:
        self._client.set_secret(parse_store_uri(uri).path, raw)

    def read_by_hand(self, uri: str) -> str | None:
        value: str | None = self._client.get_secret(parse_store_uri(uri).path).value
        return value

    def faulty(self, uri: str, kind: str) -> SecretStore:
        parsed = parse_store_uri(uri)
        url = {
            "throttle": lambda: self.server.fault_url("429"),
            "denied": lambda: self.server.fault_url("403"),
            "gone": lambda: self.server.fault_url("gone"),
            "unreachable": closed_port_url,
        }[kind]()
        bad = self.server.uri(parsed.path, vault_url=url, fieldname=parsed.field)
        # Fewer, quicker retries than the defaults keep the fault tests fast.
        return AzureKeyVaultStore.from_uri(bad, max_attempts=2, backoff=0.01)

    def cut_after(self, uri: str, writes: int) -> SecretStore:
        return AzureKeyVaultStore.from_uri(uri, transport=CutTransport(writes, self.server.ca_file))


@pytest.fixture(scope="session")
def azure_kv_server() -> Iterator[AzureKeyVaultServer]:
    """One HTTPS Key Vault fake for the whole session (tests use unique secret names)."""
    with tempfile.TemporaryDirectory(prefix="keyguard-azure-") as folder:
        server = AzureKeyVaultServer(Path(folder)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def azure_server(azure_kv_server: AzureKeyVaultServer) -> AzureHarness:
    """The contract suite's harness for ``azure-kv``."""
    return AzureHarness(azure_kv_server)


@pytest.fixture
def azure_kv(azure_kv_server: AzureKeyVaultServer) -> Iterator[AzureKeyVaultServer]:
    """The session server with no faults left over from another test."""
    azure_kv_server.clear_faults()
    yield azure_kv_server
    azure_kv_server.clear_faults()
