"""AWS: moto's ThreadedMotoServer over real HTTP, plus a loopback proxy that injects faults.

The proxy forwards to moto and can instead answer every request with AWS's own error
shape (throttling, access denied), or drop every write after the first N (a crash).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from keyguard.stores import SecretStore
from keyguard.stores.uri import parse_store_uri
from tests.stores.servers.base import Harness, allow_store_endpoint

REGION = "us-east-1"
_READS = {"GetSecretValue", "DescribeSecret", "ListSecretVersionIds", "ListSecrets"}
_ERRORS = {
    "throttle": ("ThrottlingException", "Rate exceeded"),
    "denied": (
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/ci is not authorized to perform this action",
    ),
}


class FaultProxy:
    """A loopback HTTP proxy in front of moto with one fault mode."""

    def __init__(self, target: tuple[str, int], kind: str, writes: int = 0) -> None:
        self.target, self.kind, self.writes_left = target, kind, writes
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                op = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
                if proxy.kind in _ERRORS:
                    code, message = _ERRORS[proxy.kind]
                    self._answer(400, json.dumps({"__type": code, "message": message}).encode())
                    return
                if proxy.kind == "gone" and op not in _READS:  # deleted right after the read
                    missing = {"__type": "ResourceNotFoundException", "message": "not found"}
                    self._answer(400, json.dumps(missing).encode())
                    return
                if op not in _READS and proxy.kind == "cut":
                    with proxy.lock:
                        allowed = proxy.writes_left > 0
                        proxy.writes_left -= 1
                    if not allowed:
                        self.close_connection = True  # the write never reaches AWS
                        self.connection.close()
                        return
                conn = http.client.HTTPConnection(*proxy.target, timeout=10)
                conn.request("POST", self.path, body, dict(self.headers.items()))
                resp = conn.getresponse()
                self._answer(resp.status, resp.read())
                conn.close()

            def _answer(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A loopback port with nothing listening."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AwsHarness(Harness):
    name = "aws"
    faults = frozenset({"throttle", "denied", "unreachable", "gone"})

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.endpoint = allow_store_endpoint(f"http://{host}:{port}")
        self.client = boto3.client("secretsmanager", endpoint_url=self.endpoint, region_name=REGION)
        self.proxies: list[FaultProxy] = []

    def _uri(self, name: str, endpoint: str, field: str | None = None, **opts: str) -> str:
        allow_store_endpoint(endpoint)
        query = "&".join(f"{k}={v}" for k, v in {"endpoint_url": endpoint, **opts}.items())
        return f"aws-sm://{REGION}/{name}?{query}" + (f"#{field}" if field else "")

    def new_uri(self, field: str | None = None) -> str:
        return self._uri(f"anthropic/{self.unique()}", self.endpoint, field)

    @staticmethod
    def _name(uri: str) -> str:
        return parse_store_uri(uri).path

    def put_by_hand(self, uri: str, raw: str) -> None:
        self.client.create_secret(Name=self._name(uri), SecretString=raw)

    def read_by_hand(self, uri: str) -> str | None:
        got = self.client.get_secret_value(SecretId=self._name(uri), VersionStage="AWSCURRENT")
        value: str | None = got.get("SecretString")
        return value

    def faulty(self, uri: str, kind: str) -> SecretStore:
        if kind == "unreachable":
            endpoint = f"http://127.0.0.1:{closed_port()}"
        else:
            proxy = FaultProxy(self.target, kind)
            self.proxies.append(proxy)
            endpoint = proxy.url
        return self.open(self._uri(self._name(uri), endpoint, max_attempts="2"))

    def cut_after(self, uri: str, writes: int) -> SecretStore:
        proxy = FaultProxy(self.target, "cut", writes)
        self.proxies.append(proxy)
        return self.open(self._uri(self._name(uri), proxy.url, max_attempts="1"))


@pytest.fixture(scope="session")
def aws_server() -> Iterator[AwsHarness]:
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL")
    }
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    harness = AwsHarness(host, port)
    try:
        yield harness
    finally:
        for proxy in harness.proxies:
            proxy.stop()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
