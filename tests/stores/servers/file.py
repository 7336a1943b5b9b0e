"""The ``file`` backend needs no server: a temp folder, and a rename that can be made to fail."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from keyguard.stores import SecretStore
from keyguard.stores.file import FileStore
from keyguard.stores.uri import parse_store_uri
from tests.stores.servers.base import Harness


class FileHarness(Harness):
    name = "file"

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_uri(self, field: str | None = None) -> str:
        path = self.root / f"{self.unique()}.json"
        return f"file:{path}" + (f"#{field}" if field else "")

    def put_by_hand(self, uri: str, raw: str) -> None:
        path = Path(parse_store_uri(uri).path)
        path.write_text(raw + "\n", "utf-8")
        path.chmod(0o600)

    def read_by_hand(self, uri: str) -> str | None:
        doc = json.loads(Path(parse_store_uri(uri).path).read_text("utf-8"))
        for version in doc["versions"]:
            if "current" in version["stages"]:
                value: str = version["value"]
                return value
        return None

    def cut_after(self, uri: str, writes: int) -> SecretStore:
        store = FileStore.from_uri(uri)
        done = [0]

        def replace(src: str, dst: str) -> None:
            if done[0] >= writes:
                raise OSError(errno.EIO, "simulated crash before the rename")
            done[0] += 1
            os.replace(src, dst)

        store._replace = replace
        return store


@pytest.fixture(scope="session")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> FileHarness:
    return FileHarness(tmp_path_factory.mktemp("file-stores"))
