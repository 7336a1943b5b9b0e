"""The layer rules of docs/architecture.md, checked on the source: imports flow downward only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keyguard"

#: The incident layer is the ``incident`` package.
INCIDENT = {"incident"}

#: layer -> keyguard subpackages/modules it must never import.
FORBIDDEN: dict[str, set[str]] = {
    "scanner": {"admin", "stores", "rotation", "audit", *INCIDENT, "cli", "liveness"},
    "stores": {"admin", "rotation", "audit", *INCIDENT, "cli", "scanner"},
    "admin": {"stores", "rotation", "audit", *INCIDENT, "cli", "scanner"},
    "rotation": {"audit", *INCIDENT, "cli", "scanner"},
    "audit": {*INCIDENT, "cli", "scanner"},
    "wif": {"audit", *INCIDENT, "cli", "scanner"},
    "incident": {"audit", "cli"},
    "fleet": {"admin", "stores", "rotation", "audit", *INCIDENT, "cli"},
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_downward(path: Path) -> None:
    layer = _layer(path)
    banned = FORBIDDEN.get(layer, set())
    bad = {
        name
        for name in _imports(path)
        if name.startswith("keyguard.") and name.split(".")[1] in banned
    }
    assert not bad, f"{path.name} ({layer}) imports {sorted(bad)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_cli_imports_click_and_prints(path: Path) -> None:
    if _layer(path) in {"cli", "__main__"}:
        return
    assert "click" not in {n.split(".")[0] for n in _imports(path)}, path
    tree = ast.parse(path.read_text("utf-8"))
    prints = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert not prints, f"{path.name} prints at lines {prints}"


#: Optional accelerators (the ``fast`` extra): only ``scanner/accel.py`` may import them, and
#: only inside a function, so the scanner still needs nothing but the stdlib.
OPTIONAL = {"accel.py": {"hyperscan", "isal"}}


@pytest.mark.parametrize("path", sorted((PACKAGE / "scanner").glob("*.py")), ids=lambda p: p.name)
def test_scanner_is_stdlib_only(path: Path) -> None:
    top = {n.split(".")[0] for n in _imports(path)}
    third_party = {n for n in top if n != "keyguard" and n not in sys.stdlib_module_names}
    assert not third_party - OPTIONAL.get(path.name, set()), f"{path.name} imports {third_party}"
    tree = ast.parse(path.read_text("utf-8"))
    at_top = {
        (alias.name if isinstance(node, ast.Import) else node.module or "").split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not at_top & OPTIONAL.get(path.name, set()), f"{path.name} imports them eagerly"
