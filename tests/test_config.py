from __future__ import annotations

from pathlib import Path

import pytest

from keyguard.config import load_config, resolve_admin_key
from keyguard.errors import AuthError, ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keyguard.toml"
    path.write_text(text)
    return path


def test_environments_and_relative_file_stores(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            '[environments.dev]\nstores = ["file:.keyguard/dev.json"]\n'
            '[environments.prod]\nstores = ["aws-sm://us-east-1/anthropic/prod"]\n'
            'workspace = "wrkspc_1"\n[environments.prod.policy]\nmax_age = "30d"\n'
            'due_after = "20d"\n',
        )
    )
    assert cfg.environments["dev"].stores == (f"file:{tmp_path / '.keyguard/dev.json'}",)
    assert cfg.environments["prod"].policy.max_age.days == 30
    assert cfg.environments["dev"].policy.max_age.days == 90


def test_unknown_setting_names_file_line_and_fix(tmp_path: Path) -> None:
    path = write(tmp_path, '[environments.dev]\nstores = ["file:x.json"]\nstorez = 1\n')
    with pytest.raises(ConfigError, match=rf"{path}:3: unknown setting 'storez'.*known: check"):
        load_config(path)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[environments.dev\n")
    with pytest.raises(ConfigError, match=r"line 1"):
        load_config(path)


def test_missing_stores_says_how(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs stores = "):
        load_config(write(tmp_path, '[environments.dev]\nworkspace = "w"\n'))


def test_admin_key_from_env_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write(tmp_path, ""))
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY", raising=False)
    with pytest.raises(AuthError, match="ANTHROPIC_ADMIN_KEY"):
        resolve_admin_key(cfg)
    monkeypatch.setenv("ANTHROPIC_ADMIN_KEY", "  value\n")
    assert resolve_admin_key(cfg).reveal() == "value"


def test_base_url_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9999/")
    assert load_config(write(tmp_path, "")).base_url == "http://127.0.0.1:9999"


def test_admin_key_from_a_named_env_var_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyguard.keys import generate_key

    key = generate_key("admin")
    monkeypatch.delenv("ANTHROPIC_ADMIN_KEY", raising=False)
    monkeypatch.setenv("KG_ADMIN", key.reveal())
    cfg = load_config(write(tmp_path, '[anthropic]\nadmin_key = "env:KG_ADMIN"\n'))
    assert resolve_admin_key(cfg) == key
    (tmp_path / "admin.key").write_text(key.reveal() + "\n")
    cfg = load_config(write(tmp_path, '[anthropic]\nadmin_key = "file:admin.key"\n'))
    assert resolve_admin_key(cfg) == key  # relative to keyguard.toml
    (tmp_path / "admin.key").unlink()
    with pytest.raises(AuthError, match="cannot read the admin key file") as err:
        resolve_admin_key(cfg)
    assert err.value.exit_code == 3


def test_base_url_default_config_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert load_config(write(tmp_path, "")).base_url == "https://api.anthropic.com"
    assert load_config(None).base_url == "https://api.anthropic.com"
    cfg = write(tmp_path, '[anthropic]\nbase_url = "http://127.0.0.1:8765/"\n')
    with pytest.raises(ConfigError, match=rf"{cfg}:2: .*set only in the config file"):
        load_config(cfg).base_url  # noqa: B018 - the config alone does not choose
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8765")
    assert load_config(cfg).base_url == "http://127.0.0.1:8765"  # it agrees with the choice
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://localhost:1")
    with pytest.raises(ConfigError, match="differs from the base URL chosen"):
        load_config(cfg).base_url  # noqa: B018
    assert load_config(cfg, base_url="http://127.0.0.1:8765").base_url == "http://127.0.0.1:8765"
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    with pytest.raises(ConfigError, match="plain http"):
        load_config(write(tmp_path, '[anthropic]\nbase_url = "http://evil.example"\n')).base_url  # noqa: B018


def test_policy_override_and_store_uri_errors_name_the_line(tmp_path: Path) -> None:
    env = '[environments.prod]\nstores = ["file:x.json"]\n'
    path = write(tmp_path, '[policy]\ngrace = "soon"\n' + env)
    with pytest.raises(ConfigError, match=rf"{path}:2: .*'soon' is not a duration.*like 0, 90s"):
        load_config(path)
    path = write(tmp_path, env + '\n[environments.prod.policy]\nmax_age = "10d"\n')
    with pytest.raises(ConfigError, match=rf"{path}:5: .*due_after \(80d\) is later than max_age"):
        load_config(path)
    path = write(tmp_path, '[environments.prod]\nstores = ["s3://bucket/key"]\n')
    with pytest.raises(ConfigError, match=rf"{path}:1: .*unknown store URI.*one of file:, aws-sm:"):
        load_config(path)
