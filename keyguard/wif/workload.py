"""``wif env``: what the workload needs to federate, as env lines, JSON, a GitHub Actions job
snippet or a Kubernetes pod snippet. Ids only: none of it is secret."""

from __future__ import annotations

import json

from keyguard.errors import UsageError
from keyguard.wif.config import Federation
from keyguard.wif.record import WifRecord

FORMATS = ("env", "json", "github-actions", "kubernetes")
SHADOW_WARNING = (
    "ANTHROPIC_API_KEY (and ANTHROPIC_AUTH_TOKEN), even set to an empty string, silently wins "
    "over federation in the SDKs: remove it from the workload's environment"
)


def variables(
    federation: Federation, record: WifRecord, token_file: str | None = None
) -> dict[str, str]:
    """The SDKs' federation variables for this environment."""
    if not record.rule_id or not record.service_account_id or not record.organization_id:
        raise UsageError(
            f"{record.environment} is not applied yet (no rule, service account or organization "
            f"recorded); run `keyguard wif apply {record.environment}` first"
        )
    out = {
        "ANTHROPIC_FEDERATION_RULE_ID": record.rule_id,
        "ANTHROPIC_ORGANIZATION_ID": record.organization_id,
        "ANTHROPIC_SERVICE_ACCOUNT_ID": record.service_account_id,
    }
    if record.workspace_id and record.workspace_id != "default":
        out["ANTHROPIC_WORKSPACE_ID"] = record.workspace_id
    out["ANTHROPIC_IDENTITY_TOKEN_FILE"] = token_file or federation.token_file
    return out


def render(fmt: str, federation: Federation, record: WifRecord) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "github-actions":
        return _github(federation, record)
    if fmt == "kubernetes":
        return _kubernetes(federation, record)
    values = variables(federation, record)
    if fmt == "json":
        return json.dumps(values, indent=2)
    return "\n".join(f"{k}={v}" for k, v in values.items())


def _github(federation: Federation, record: WifRecord) -> str:
    path = "${{ runner.temp }}/anthropic-identity-token"
    values = variables(federation, record, path)
    env = "\n".join(f"      {k}: {v}" for k, v in values.items())
    return f"""# GitHub Actions: {SHADOW_WARNING}.
jobs:
  call-claude:
    runs-on: ubuntu-latest
    permissions:
      id-token: write   # lets the job ask GitHub for its OIDC token
      contents: read
    env:
{env}
    steps:
      - name: Fetch the job's identity token for Anthropic
        run: |
          curl -sSf -H "Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN" \\
            "$ACTIONS_ID_TOKEN_REQUEST_URL&audience={federation.audience}" \\
            | jq -r .value > "$ANTHROPIC_IDENTITY_TOKEN_FILE"
      - run: python call_claude.py   # the SDK exchanges the token itself
"""


def _kubernetes(federation: Federation, record: WifRecord) -> str:
    path = federation.identity_token_file or "/var/run/secrets/anthropic/token"
    folder, _, name = path.rpartition("/")
    values = variables(federation, record, path)
    env = "\n".join(
        f"        - name: {k}\n          value: {json.dumps(v)}" for k, v in values.items()
    )
    lifetime = max(600, min(federation.token_lifetime * 6, 3600))
    return f"""# Kubernetes pod spec: {SHADOW_WARNING}.
spec:
  serviceAccountName: {federation.service_account}
  containers:
    - name: app
      env:
{env}
      volumeMounts:
        - name: anthropic-token
          mountPath: {folder}
          readOnly: true
  volumes:
    - name: anthropic-token
      projected:
        sources:
          - serviceAccountToken:
              audience: {federation.audience}
              expirationSeconds: {lifetime}
              path: {name}
"""
