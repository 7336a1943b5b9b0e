"""Proof before any write: each leaked string is a live key of this organization, and which one.

It authenticates with ``GET /v1/models`` and exactly one active key of the organization has its
hint; a hint alone never is proof (anyone who saw a hint can write a look-alike).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from keyguard.admin.client import key_matches_hint
from keyguard.admin.errors import ApiError
from keyguard.admin.protocol import AdminApi
from keyguard.errors import NotFoundError, UsageError
from keyguard.incident.leak import ScanFinding, Target, keys_in_input, load_scan, reread
from keyguard.keys import Secret, is_api_key
from keyguard.models import ApiKey, Say


class NotProvenError(NotFoundError):
    """The leaked string is not proven to be a live key of this organization: no write."""


@dataclass
class Targets:
    """The proven targets, each beside the key it is, and the scan findings not acted on."""

    targets: list[Target] = field(default_factory=list)
    keys: list[ApiKey] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


def find_targets(
    admin: AdminApi,
    say: Say,
    *,
    leaked: Secret | None = None,
    key_id: str | None = None,
    from_scan: Path | None = None,
    repo: Path = Path("."),
) -> Targets:
    """The targets (piped input, an id, or a scan report), each proven before any write."""
    if leaked is not None:
        secrets = keys_in_input(leaked, say)
        keys = prove(admin, secrets)  # all proven, or none acted on
        return Targets([Target(key=secret) for secret in secrets], keys)
    if key_id is not None:
        target = Target(key_id=key_id)
        return Targets([target], [identify(admin, target)])
    if from_scan is None:
        raise UsageError("nothing to revoke: give --leaked -, --key-id or --from-scan")
    return _from_scan(admin, say, from_scan, repo)


def _from_scan(admin: AdminApi, say: Say, report: Path, repo: Path) -> Targets:
    by_fingerprint: dict[str, list[ScanFinding]] = {}
    for finding in load_scan(report):
        by_fingerprint.setdefault(finding.fingerprint, []).append(finding)
    found = Targets()
    read: list[tuple[Secret, list[ScanFinding]]] = []
    for group in by_fingerprint.values():
        secret = None
        for finding in group:
            got = reread(finding, repo)
            if isinstance(got, Secret):
                secret = secret or got
            else:
                say(f"keyguard: not acted on: {got}")
                if secret is None and finding is group[-1]:
                    found.unresolved.append(got)
        if secret is not None:
            read.append((secret, group))
    listing = list(admin.list_keys()) if read else []  # once for every finding
    for secret, group in read:
        try:
            (api_key,) = prove(admin, [secret], listing)
        except (NotProvenError, UsageError) as exc:  # e.g. an admin key: not ours to revoke
            say(f"keyguard: not acted on: {exc}")
            found.unresolved.append(str(exc))
            continue
        commits = tuple(finding.commit for finding in group if finding.commit)
        where = ", ".join(dict.fromkeys(finding.where for finding in group))
        found.targets.append(Target(key=secret, commits=commits, note=f"read again from {where}"))
        found.keys.append(api_key)
    if not found.targets:
        raise NotFoundError(
            f"none of the {len(by_fingerprint)} key(s) in {report} was proven to be a live key "
            "of this organization (read again where the scan found it, then GET /v1/models); "
            "nothing was changed"
        )
    return found


def identify(admin: AdminApi, target: Target) -> ApiKey:
    """The Admin API's view of an id the operator gave; ``NotFoundError`` (exit 1) if none."""
    if target.key_id is None:
        raise UsageError("nothing to identify: give --leaked -, --key-id or --from-scan")
    try:
        return admin.get_key(target.key_id)
    except NotFoundError:
        raise NotFoundError(
            f"no key {target.key_id} in this organization; check the id with "
            "`keyguard keys list` (or the admin key's organization)"
        ) from None


def authenticates(admin: AdminApi, key: Secret) -> tuple[bool, str]:
    """``GET /v1/models`` with the key itself (free): does it authenticate, and what it said.

    A 400 that demands the ``anthropic-workspace-id`` header comes only after the key
    authenticated: a live organization-scoped key. Unavailable (exit 4) propagates: no proof.
    """
    try:
        result = admin.verify_key(key)
    except ApiError as exc:
        said = (exc.api_message or "").lower()
        if exc.status == 400 and (
            ("anthropic-workspace-id" in said and "required" in said)
            or "not scoped to a workspace" in said
        ):
            return True, "400 (live organization-scoped key: it asks for a workspace)"
        raise
    return result.usable, f"HTTP {result.status_code}"


def prove(admin: AdminApi, keys: list[Secret], listing: list[ApiKey] | None = None) -> list[ApiKey]:
    """For each leaked string, the one key of the organization it provably *is*.

    If any string is not proven, none is acted on (``NotProvenError``, exit 1) and the message
    says why for each.
    """
    for key in keys:
        if not is_api_key(key.reveal()):
            raise UsageError(
                f"{key.hint} is not an Anthropic API key (sk-ant-api03-...): keyguard revokes API "
                "keys only (delete an admin key in the Console)"
            )
    if listing is None:
        listing = list(admin.list_keys())
    proven: list[ApiKey] = []
    problems: list[str] = []
    for key in keys:
        same = [api_key for api_key in listing if key_matches_hint(key, api_key.partial_key_hint)]
        live, said = authenticates(admin, key)
        problem = _proof_problem(key, same, live, said)
        if problem is None:
            proven.append(same[0])
        else:
            problems.append(problem)
    if problems:
        several = len(keys) > 1
        raise NotProvenError(
            "; ".join(problems)
            + (f" (none of the {len(keys)} keys was acted on)" if several else "")
            + ". Nothing was changed"
        )
    return proven


def _proof_problem(key: Secret, same: list[ApiKey], live: bool, said: str) -> str | None:
    hint = key.hint
    if not live:
        text = f"{hint} is not a live key of this organization: GET /v1/models refused it ({said})"
        if not same:
            return text + " and no key of the organization has its hint"
        active = [api_key for api_key in same if api_key.status == "active"]
        if active:
            ids = ", ".join(api_key.id for api_key in active)
            return (
                text + f"; the active key {ids} only shares its hint: this string is a "
                "look-alike, not that key"
            )
        first = same[0]
        more = f" (and {len(same) - 1} more with that hint)" if len(same) > 1 else ""
        return (
            text + f"; the key with its hint, {first.id} ({first.name!r}){more}, is already "
            f"{first.status}. If you checked that {first.id} is the leaked key, finish the "
            f"incident (environments, report) with `keyguard revoke --key-id {first.id}`"
        )
    if not same:
        return (
            f"{hint} authenticates, but no key of this organization has its hint: it belongs to "
            "another organization (or the admin key cannot see it); revoke it in that "
            "organization's Console"
        )
    if len(same) > 1:
        ids = ", ".join(f"{api_key.id} ({api_key.status})" for api_key in same)
        return (
            f"{hint} authenticates, but {len(same)} keys of this organization share its hint "
            f"({ids}): keyguard cannot prove which one it is; check in the Console, then use "
            "`keyguard revoke --key-id apikey_...`"
        )
    if same[0].status != "active":
        return (
            f"{hint} authenticates, but the one key with its hint, {same[0].id}, is "
            f"{same[0].status}: it is not this string"
        )
    return None
