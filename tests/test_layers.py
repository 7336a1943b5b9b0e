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


# -- every module in a layer, no cycles, no module past 500 lines ----------------------------

#: The layers as built, top to bottom. A module may import its own unit and any unit of a
#: lower layer; never a unit of its own layer (siblings stay independent) or of a higher one.
#: A unit is a top-level module or package of keyguard (``__init__`` is keyguard/__init__.py);
#: a dotted unit (``wif.config``) is a module of a package that sits lower than the rest of it,
#: and a module belongs to the longest unit that names it. Imports inside functions and under
#: ``if TYPE_CHECKING:`` count: they are dependencies all the same.
LAYERS: list[set[str]] = [
    {"__main__"},
    # Parses, confirms, prompts, prints and exits; the only composition root.
    {"cli"},
    # Workflows that drive rotation: a leaked key's response, a move to federation.
    {*INCIDENT, "wif"},
    # The jobs: rotate (writes), audit (reads), fleet scans (the scanner over many repos).
    {"audit", "fleet", "rotation"},
    # The configured world, and the clients that need it checked.
    {"config", "liveness", "wif.api"},
    # Clients and backends: the Admin API, secret stores, the scanner, the webhook, and the
    # federation's part of the configuration.
    {"admin", "notify", "scanner", "stores", "wif.config"},
    # Small records and rules on top of the vocabulary.
    {"journal", "policy", "urls", "wif.record"},
    # The vocabulary: imports no other keyguard module.
    {"__init__", "atomic", "errors", "keys", "models", "policies", "words", "wif.providers"},
]

MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(path): path for path in _modules()}


def _depends_on(name: str) -> set[str]:
    """The keyguard modules ``name`` imports, anywhere in it (functions and TYPE_CHECKING too).

    ``from keyguard.a import b`` names the module ``keyguard.a.b`` when there is one, else
    ``keyguard.a``. A package's ``__init__`` running first is not counted: it is no choice of
    the importing module.
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    found.add(submodule)
                elif source in MODULES:
                    found.add(source)
    found.discard(name)
    return found


GRAPH: dict[str, set[str]] = {name: _depends_on(name) for name in MODULES}


def _unit(module: str) -> str | None:
    """The LAYERS unit ``module`` belongs to (the longest that names it), or None."""
    rest = module.split(".")[1:] or ["__init__"]
    for size in range(len(rest), 0, -1):
        candidate = ".".join(rest[:size])
        if any(candidate in layer for layer in LAYERS):
            return candidate
    return None


def _rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def test_every_module_has_a_layer_and_every_unit_exists() -> None:
    unlayered = sorted(name for name in MODULES if _unit(name) is None)
    assert not unlayered, f"add these to a layer in LAYERS: {unlayered}"
    stale = sorted(
        unit
        for layer in LAYERS
        for unit in layer
        if unit != "__init__" and f"keyguard.{unit}" not in MODULES
    )
    assert not stale, f"LAYERS names what keyguard no longer has: {stale}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_to_lower_layers_only(name: str) -> None:
    unit = _unit(name)
    assert unit is not None
    bad = []
    for target in sorted(GRAPH[name]):
        other = _unit(target)
        assert other is not None
        if other != unit and _rank(other) <= _rank(unit):
            where = "its own layer" if _rank(other) == _rank(unit) else "a higher layer"
            bad.append(f"{target} ({other}, {where})")
    assert not bad, f"{name} ({unit}) imports {bad}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    """Any cycle fails, through function-level and TYPE_CHECKING imports too: a cycle only the
    type checker sees is still two modules that each need the other's words, and the fix (a
    lower module for what both need) is the same."""
    cycles = _cycles(GRAPH)
    assert not cycles, f"import cycles: {cycles}"


def _lines(name: str) -> int:
    return len(MODULES[name].read_text("utf-8").splitlines())


def test_no_module_past_500_lines() -> None:
    long = {name: _lines(name) for name in MODULES if _lines(name) > MAX_LINES}
    assert not long, f"split these by concern: {long}"
