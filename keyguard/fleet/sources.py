"""Which repositories: ``@FILE`` lists, ``github:ORG``, ``gitlab:GROUP``, URLs and paths.

Clone URLs are hostile input (a list file, an API answer): a URL that starts with ``-``, a
``transport::address`` helper URL or a control character is refused, an API answer may only
name http(s), git or ssh URLs, and credentials in a URL are cut out of it (they travel as an
HTTP header in the environment, never in argv or in a report). Tokens are read from the
environment by name, here and on every worker, and are sent only to the API's own origin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyguard.errors import AuthError, UnavailableError, UsageError
from keyguard.urls import parse_base_url

_SCP = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>[A-Za-z0-9.\-]+):(?P<path>(?!//).+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_LOCAL_SCHEMES = ("file",)
_REMOTE_SCHEMES = ("http", "https", "git", "ssh")
MAX_PAGES = 1000


@dataclass(frozen=True)
class Auth:
    """How a worker authenticates a clone: an HTTP header scoped to one origin.

    ``token_env`` names an environment variable the worker reads (never the token itself);
    ``basic`` is the user info (user:password, or a user name alone, which may be a token) cut
    out of an http(s) URL in a list file (base64; never in argv, a file or a report, but part
    of the task, so with Dask it travels to the scheduler and workers)."""

    scope: str  # e.g. https://github.com/
    user: str
    token_env: str | None = None
    basic: str | None = None


@dataclass(frozen=True)
class RepoSpec:
    """One repository to mirror: its clone URL (no credentials) and its identity."""

    url: str  # clone URL without credentials: what reports show
    key: str  # normalized: host/path without .git, or an absolute local path
    auth: Auth | None = None


def redact_url(text: str) -> str:
    """``text`` with any ``user:password@`` in a URL replaced by ``***@``."""
    return _URL_CREDENTIALS.sub("***@", text)


def shard_of(spec: RepoSpec, shards: int) -> int:
    """The 1-based shard of a repository: stable across runs and machines."""
    digest = hashlib.sha256(spec.key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N."""
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. --shard 1/4")
    return int(m.group(1)), int(m.group(2))


def spec_for(raw: str, *, remote_only: bool = False, auth: Auth | None = None) -> RepoSpec:
    """A clone URL or local path as a ``RepoSpec``; refuses what git could run or misread."""
    text = raw.strip()
    shown = redact_url(text)
    if not text or text.startswith("-") or _CONTROL.search(text):
        raise UsageError(f"{shown!r}: not a repository URL or path")
    if "::" in text.split("/", 1)[0] or text.split(":", 1)[0].lower() in ("ext", "fd"):
        raise UsageError(f"{shown!r}: git transport helpers (X::address) are not allowed")
    if "://" in text:
        try:  # a bad IPv6 literal or port raises ValueError from urlsplit or .port
            parts = urllib.parse.urlsplit(text)
            port = parts.port
        except ValueError:
            raise UsageError(f"{shown!r}: not a valid URL (its host or port)") from None
        scheme = parts.scheme.lower()
        allowed = _REMOTE_SCHEMES if remote_only else (*_REMOTE_SCHEMES, *_LOCAL_SCHEMES)
        if scheme not in allowed or (scheme != "file" and not parts.hostname):
            raise UsageError(f"{shown!r}: scheme {scheme!r} is not allowed here")
        if scheme == "file":
            return _local(urllib.parse.unquote(parts.path), shown)
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        user = parts.username
        if (user is not None or parts.password is not None) and scheme in ("http", "https"):
            # Any user info is a credential here, a user name alone too: GitHub documents
            # https://TOKEN@github.com/ORG/REPO for a token. git would send it as user:(empty).
            password = urllib.parse.unquote(parts.password or "")
            secret = f"{urllib.parse.unquote(user or '')}:{password}"
            basic = base64.b64encode(secret.encode()).decode()
            auth = Auth(f"{scheme}://{netloc}/", "", basic=basic)
            user = None
        elif parts.password is not None:
            raise UsageError(f"{shown!r}: a password in a {scheme} URL is not allowed")
        clean = urllib.parse.urlunsplit(
            (scheme, (f"{user}@" if user else "") + netloc, parts.path, "", "")
        )
        return RepoSpec(clean, _key(host, netloc, parts.path), auth)
    m = _SCP.match(text)
    if m and not os.path.exists(text):
        host = m.group("host")
        return RepoSpec(text, _key(host, host, m.group("path")), auth)
    if remote_only:
        raise UsageError(f"{shown!r}: an API answer named a local path; refused")
    return _local(text, shown)


def _key(host: str, netloc: str, path: str) -> str:
    clean = path.strip("/").removesuffix(".git").removesuffix("/")
    return f"{netloc.lower()}/{clean}"


def _local(path: str, shown: str) -> RepoSpec:
    where = Path(path).expanduser().resolve()
    if not where.exists():
        raise UsageError(f"{shown!r}: no such repository path; check it")
    return RepoSpec(str(where), str(where))


def read_list(path: str) -> Iterator[str]:
    """Lines of an ``@FILE``: one URL or path per line, ``#`` comments and blanks skipped."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"@{path}: cannot read ({exc.strerror}); check the path") from None
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield line


@dataclass
class ApiOptions:
    """Where the forges' APIs are, and which of their repositories to take."""

    github_api_url: str = "https://api.github.com"
    gitlab_url: str = "https://gitlab.com"
    include_archived: bool = False
    include_forks: bool = False
    transport: Any = None  # an httpx transport, for tests


def check_api(opts: ApiOptions) -> None:
    """The forges' API URLs get the token: https (plain http only to loopback, a local fake),
    no user or password in them (they are written into a report's sources). UsageError else."""
    parse_base_url(opts.github_api_url, "--github-api-url")
    parse_base_url(opts.gitlab_url, "--gitlab-url")


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _github_web(api_url: str) -> str:
    """Where clones live for this API: github.com for api.github.com, else the API's host."""
    parts = urllib.parse.urlsplit(api_url)
    host = parts.netloc.lower()
    return f"{parts.scheme}://{'github.com' if host == 'api.github.com' else host}/"


def _get(client: Any, url: str, what: str) -> Any:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise UnavailableError(f"{what}: {type(exc).__name__}; check the URL and network") from None
    if response.status_code in (401, 403):
        raise AuthError(f"{what}: HTTP {response.status_code}; check the token and its rights")
    if response.status_code == 404:
        raise UsageError(f"{what}: not found (HTTP 404); check the name")
    if response.status_code != 200:
        raise UnavailableError(f"{what}: HTTP {response.status_code}; try again later")
    return response


def _client(base: str, headers: dict[str, str], opts: ApiOptions) -> Any:
    import httpx

    return httpx.Client(
        base_url=base,
        headers={"user-agent": "keyguard", **headers},
        timeout=30.0,
        transport=opts.transport,
        follow_redirects=False,  # a token goes to the API's own origin and nowhere else
    )


def list_github(org: str, opts: ApiOptions) -> list[RepoSpec]:
    """Every repository of a GitHub organization (or user), following ``Link: rel="next"``."""
    import httpx

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", org):
        raise UsageError(f"github:{org}: not an organization name")
    parse_base_url(opts.github_api_url, "--github-api-url")
    token = os.environ.get("GITHUB_TOKEN")
    headers = {"accept": "application/vnd.github+json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    api = opts.github_api_url.rstrip("/")
    # Always: each worker reads the token from its own environment (a Dask worker may hold one
    # the client does not); without one, no header is sent.
    auth = Auth(_github_web(api), "x-access-token", token_env="GITHUB_TOKEN")  # noqa: S106
    specs: list[RepoSpec] = []
    with _client(api, headers, opts) as client:
        url = f"{api}/orgs/{org}/repos?per_page=100&type=all"
        try:
            response = _get(client, url, f"github:{org}")
        except UsageError:
            url = f"{api}/users/{org}/repos?per_page=100&type=all"
            response = _get(client, url, f"github:{org}")
        for _ in range(MAX_PAGES):
            for repo in _items(response, f"github:{org}"):
                if (repo.get("archived") and not opts.include_archived) or (
                    repo.get("fork") and not opts.include_forks
                ):
                    continue
                specs.append(spec_for(str(repo.get("clone_url", "")), remote_only=True, auth=auth))
            link = response.headers.get("link", "")
            nxt = httpx.Response(200, headers={"link": link}).links.get("next", {}).get("url")
            if not nxt:
                break
            if _origin(nxt) != _origin(api):
                raise UsageError(f"github:{org}: the API's next page is on another host; refused")
            response = _get(client, nxt, f"github:{org}")
    return specs


def list_gitlab(group: str, opts: ApiOptions) -> list[RepoSpec]:
    """Every project of a GitLab group and its subgroups, following ``x-next-page``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", group) or ".." in group:
        raise UsageError(f"gitlab:{group}: not a group path")
    parse_base_url(opts.gitlab_url, "--gitlab-url")
    token = os.environ.get("GITLAB_TOKEN")
    headers = {"private-token": token} if token else {}
    base = opts.gitlab_url.rstrip("/")
    auth = Auth(base + "/", "oauth2", token_env="GITLAB_TOKEN")  # noqa: S106 (as for GitHub)
    quoted = urllib.parse.quote(group, safe="")
    specs: list[RepoSpec] = []
    page = "1"
    with _client(base, headers, opts) as client:
        for _ in range(MAX_PAGES):
            url = (
                f"{base}/api/v4/groups/{quoted}/projects"
                f"?include_subgroups=true&per_page=100&page={page}"
            )
            response = _get(client, url, f"gitlab:{group}")
            for project in _items(response, f"gitlab:{group}"):
                if (project.get("archived") and not opts.include_archived) or (
                    project.get("forked_from_project") and not opts.include_forks
                ):
                    continue
                clone = str(project.get("http_url_to_repo", ""))
                specs.append(spec_for(clone, remote_only=True, auth=auth))
            page = response.headers.get("x-next-page", "").strip()
            if not page.isdigit():
                break
    return specs


def _items(response: Any, what: str) -> list[dict[str, Any]]:
    try:
        data = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        raise UnavailableError(f"{what}: the API answered something that is not JSON") from None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise UnavailableError(f"{what}: the API answered an unexpected shape")
    return data


def collect(sources: list[str], opts: ApiOptions) -> tuple[list[RepoSpec], list[tuple[str, str]]]:
    """Every repository named by ``sources``, deduplicated by normalized URL, plus the lines of
    list files that were refused: (the line, redacted; why)."""
    specs: dict[str, RepoSpec] = {}
    notes: list[tuple[str, str]] = []
    for source in sources:
        found: list[RepoSpec] = []
        if source.startswith("@"):
            for line in read_list(source[1:]):
                try:
                    found.append(spec_for(line))
                except UsageError as exc:
                    notes.append((redact_url(line), str(exc)))
        elif source.startswith("github:"):
            found = list_github(source.removeprefix("github:"), opts)
        elif source.startswith("gitlab:"):
            found = list_gitlab(source.removeprefix("gitlab:"), opts)
        else:
            found = [spec_for(source)]
        for spec in found:
            specs.setdefault(spec.key, spec)
    return sorted(specs.values(), key=lambda s: s.key), notes
