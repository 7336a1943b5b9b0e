"""``[environments.X.federation]`` is validated: a shared issuer must pin its tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyguard.config import load_config
from keyguard.errors import ConfigError

BASE = """
[environments.ci]
stores = ["file:ci.json"]
[environments.ci.federation]
"""


def _load(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "keyguard.toml"
    path.write_text(BASE + body)
    return load_config(path)


def test_a_github_environment_gets_the_fixed_issuer_and_safe_defaults(tmp_path: Path) -> None:
    fed = (
        _load(
            tmp_path,
            'provider = "github-actions"\nsubject = "repo:acme/app:ref:refs/heads/main"\n',
        )
        .environments["ci"]
        .federation
    )
    assert fed is not None
    assert fed.issuer == "https://token.actions.githubusercontent.com"
    assert fed.scope == "workspace:inference"
    assert fed.audience == "https://api.anthropic.com"
    assert fed.token_lifetime == 600
    assert fed.service_account == "ci"


def test_an_environment_without_federation_is_static(tmp_path: Path) -> None:
    path = tmp_path / "keyguard.toml"
    path.write_text('[environments.dev]\nstores = ["file:dev.json"]\n')
    assert load_config(path).environments["dev"].federation is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('provider = "github-actions"\nsubject = "repo:*"\n', "every tenant shares"),
        ('provider = "github-actions"\nsubject = "*"\n', "matches everyone"),
        (
            'provider = "oidc"\nissuer = "https://token.actions.githubusercontent.com"\n'
            'subject = "repo:*"\nclaims = { ref = "refs/heads/main" }\n',
            "every tenant shares",
        ),
        ('provider = "gitlab"\nsubject = "project_path:*"\n', "every tenant shares"),
        ('provider = "gcp"\nsubject = "1234*"\n', "every tenant shares"),
        ('provider = "github-actions"\n', "needs a subject"),
        ('provider = "jenkins"\nsubject = "x"\n', "provider must be one of"),
        (
            'provider = "kubernetes"\nsubject = "system:serviceaccount:ns:app"\n',
            "issuer is required",
        ),
        (
            'provider = "oidc"\nissuer = "http://idp.example"\nsubject = "x"\n',
            "https://",
        ),
        (
            'provider = "github-actions"\nsubject = "repo:acme/app"\nscope = "org:admin"\n',
            "Console only",
        ),
        (
            'provider = "github-actions"\nsubject = "repo:acme/app"\ntoken_lifetime = "2d"\n',
            "between 1m and 24h",
        ),
        ('provider = "github-actions"\nsubject = "repo:a*b"\n', "only at the end"),
        (
            'provider = "github-actions"\nsubject = "repo:acme/x"\ncolour = "red"\n',
            "unknown setting",
        ),
        (
            'provider = "github-actions"\nsubject = "repo:acme/x"\nservice_account = "CI App"\n',
            "a-z, 0-9",
        ),
        (
            'provider = "github-actions"\nissuer = "https://gitlab.com"\nsubject = "repo:acme/x"\n',
            "issues tokens as",
        ),
    ],
)
def test_bad_federation_is_refused_with_the_line_and_the_fix(
    tmp_path: Path, body: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, body)
    assert says in str(caught.value)
    assert "keyguard.toml:" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        'provider = "github-actions"\nsubject = "repo:*"\nclaims = { repository_owner = "acme" }\n',
        'provider = "github-actions"\nsubject = "repo:acme/*"\n',
        'provider = "gitlab"\nclaims = { namespace_path = "acme" }\n',
        'provider = "kubernetes"\nissuer = "https://oidc.eks.example/id/ABC"\n'
        'subject = "system:*"\n',
    ],
)
def test_a_pinned_tenant_or_an_own_issuer_is_accepted(tmp_path: Path, body: str) -> None:
    assert _load(tmp_path, body).environments["ci"].federation is not None
