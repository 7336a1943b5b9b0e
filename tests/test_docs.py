"""The configuration documented in docs/architecture.md is one the loader accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keyguard.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_documented_configuration_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    text = (ROOT / "docs" / "architecture.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/architecture.md shows a keyguard.toml"
    path = tmp_path / "keyguard.toml"
    path.write_text(blocks[-1])
    config = load_config(path)
    assert set(config.environments) == {"dev", "prod"}
    assert config.environments["prod"].policy.max_age.days == 30
    assert config.environments["dev"].policy.max_age.days == 90
    assert config.scan_exclude and config.webhook
    assert config.base_url == "https://api.anthropic.com"  # the default: nobody chose another
