"""Dependencies run one way (function-level imports included): no import cycle between calico's sub-packages and
top-level modules; the applications (``calico.apps``: demo, study, report) sit above everything, so nothing but the
CLI layer imports them; nothing below the CLI imports the CLI dispatcher."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "calico"
APPLICATIONS = "calico.apps"  # above the CLI: they run calico commands
CLI_LAYER = {"calico.cli", "calico.__main__"}  # the dispatcher names the applications' modules as commands


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> dict[str, set[str]]:
    """``{module: {imported calico modules}}`` from every import statement, wherever it is."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        if is_init:
            parts = parts[:-1]
        module = ".".join(parts)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_init else parts[:-1]
                    base = base[: len(base) - node.level + 1]
                    found.add(".".join(base + ([node.module] if node.module else [])))
                elif node.module:
                    found.add(node.module)
        out[module] = {m for m in found if m == "calico" or m.startswith("calico.")}
    return out


def test_no_import_cycles_between_units():
    edges: dict[str, set[str]] = {}
    for module, targets in _imports().items():
        for target in targets:
            a, b = _unit(module), _unit(target)
            if a != b and b != "calico":
                edges.setdefault(a, set()).add(b)
    # depth-first search for a cycle, reporting its path
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    for unit in sorted(edges):
        if unit not in state:
            cycle = visit(unit, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _in_apps(module: str) -> bool:
    return module == APPLICATIONS or module.startswith(APPLICATIONS + ".")


def test_only_entry_points_and_applications_import_the_cli():
    offenders = sorted(m for m, targets in _imports().items() if "calico.cli" in targets
                       and m not in CLI_LAYER and not _in_apps(m))
    assert offenders == []


def test_nothing_below_the_applications_imports_them():
    offenders = sorted(f"{m} imports {t}" for m, targets in _imports().items() for t in targets
                       if _in_apps(t) and not _in_apps(m) and m not in CLI_LAYER)
    assert offenders == []


def test_the_cli_runs_the_applications_from_calico_apps():
    """``calico demo`` / ``calico study`` stay the users' commands; their code lives in calico.apps."""
    from calico.cli import COMMANDS

    assert COMMANDS["demo"][0] == "calico.apps.demo" and COMMANDS["study"][0] == "calico.apps.study"
    assert not any((PACKAGE / f"{name}.py").exists() for name in ("demo", "study", "report", "grids"))


def test_the_check_sees_apps_imports():
    """The import walk resolves relative and function-level imports of calico.apps (a guard against a vacuous
    test)."""
    imports = _imports()
    assert "calico.apps.study" in imports["calico.apps.demo"]
    assert "calico.apps.report" in imports["calico.apps.study"]
