"""No import circle in `mimicry`: the module graph, with imports inside functions, is acyclic.

A function-level import hides a circle from Python's import machinery but not from the design:
the two modules still depend on each other. Lazy registry entries ("module:object" strings) are
not imports and do not count; neither do imports under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import mimicry


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement anywhere in `tree` names (`from a import b`: a.b and a)."""
    names: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack.extend(node.orelse)  # type: ignore[attr-defined]
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.update(f"{base}.{alias.name}" for alias in node.names)
            names.add(base)
        stack.extend(ast.iter_child_nodes(node))
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (the deepest existing module each import names)."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(ast.parse(path.read_text(encoding="utf-8")), module, path.stem == "__init__"):
            if name in modules:
                targets.add(name)
            elif name.rpartition(".")[0] in modules and name.rpartition(".")[0] != module:
                targets.add(name.rpartition(".")[0])
        graph[module] = targets - {module}
    return graph


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph(Path(mimicry.__file__).parent)
    # `evaluate` imports the strategies inside the function.
    assert "mimicry.strategies" in graph["mimicry.evaluation.suites"]
    assert "mimicry.evaluation.judge_base" in graph["mimicry.evaluation.llm_judges"]
    assert len(graph) > 50


def test_there_is_no_import_circle() -> None:
    graph = import_graph(Path(mimicry.__file__).parent)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import circle: {' -> '.join(err.args[1])}") from None


# docs/architecture.md: a package imports only from its own layer or the layers above it.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(names.split())
    for names in (
        "mimicry errors config hashing registry paths console text sampling records data hardware memory provenance"
        " artifacts",
        "models tasks",
        "strategies generation",
        "evaluation",
        "mitigations",
        "training",
        "experiments service",
        "cli",
    )
)


def _layer(module: str) -> int:
    package = module.split(".")[1] if "." in module else "mimicry"
    return next(i for i, names in enumerate(LAYERS) if package in names)


def test_packages_import_only_from_their_layer_or_above() -> None:
    graph = import_graph(Path(mimicry.__file__).parent)
    upward = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))
    assert not upward, "imports from a lower layer (docs/architecture.md):\n" + "\n".join(upward)


def test_the_runner_and_the_service_do_not_import_each_other() -> None:
    graph = import_graph(Path(mimicry.__file__).parent)
    crossing = sorted(
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if {m.split(".")[1:2][0] if "." in m else "", t.split(".")[1:2][0] if "." in t else ""}
        == {"experiments", "service"}
    )
    assert not crossing, crossing
