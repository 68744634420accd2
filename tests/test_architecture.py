"""The package's architecture, checked: one folder per concept, layers that import downwards only.

Every ``import`` in ``src/finetune_kit`` is read from the source (function-level imports too;
``if TYPE_CHECKING:`` blocks are type hints only and left out). A package may import its own
modules and packages of lower layers, never a higher or a same-layer neighbour; module-level
imports must not form a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import finetune_kit

SRC = Path(finetune_kit.__file__).parent

# Lower numbers are lower layers: a package imports only from strictly lower ones.
LAYERS = {
    "_version": 0,
    "errors": 0,
    "registry": 1,
    "storage": 2,
    "config": 2,
    "runtime": 2,
    "scratch": 2,
    "imaging": 2,
    "data": 3,
    "models": 3,
    "metrics": 3,
    "analysis": 3,
    "optim": 4,
    "freezing": 5,
    "inference": 6,
    "callbacks": 7,
    "training": 8,
    "tuning": 9,
    "__init__": 10,
    "cli": 11,
    "__main__": 12,
}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py", "_version.py", "errors.py", "registry.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(name: str) -> str | None:
    """The finetune_kit module an import names (a name imported from a package: the package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(path: Path) -> list[tuple[str, bool]]:
    """``(module, at_module_level)`` for every finetune_kit import in ``path``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            else:
                inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                visit(child, inner)
                continue
            for name in names:
                if name.split(".")[0] == "finetune_kit" and (target := _resolve(name)):
                    found.append((target, top))

    visit(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_top_level_holds_only_the_public_face():
    files = {p.name for p in SRC.glob("*.py")}
    assert files <= TOP_LEVEL_FILES | {"cli.py"}, sorted(files - TOP_LEVEL_FILES)
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders | {p.removesuffix(".py") for p in files} <= set(LAYERS), "a package without a layer"


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_too_long(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 420, f"{path.relative_to(SRC)} has {lines} lines: split it by concept"


def test_packages_import_only_lower_layers():
    wrong = []
    for module, path in MODULES.items():
        source = package_of(module)
        for target, _ in imports_of(path):
            dest = package_of(target)
            if dest != source and not LAYERS[dest] < LAYERS[source]:
                wrong.append(
                    f"{module} -> {target} ({source}: layer {LAYERS[source]}, {dest}: layer {LAYERS[dest]})"
                )
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(wrong)


def test_the_lower_layers_never_import_training_or_callbacks():
    low = {"data", "models", "optim", "metrics", "storage"}
    wrong = [
        f"{m} -> {t}"
        for m, p in MODULES.items()
        if package_of(m) in low
        for t, _ in imports_of(p)
        if package_of(t) in ("training", "callbacks")
    ]
    assert not wrong


def test_module_level_imports_have_no_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        graph[module] |= {target for target, top in imports_of(path) if top and target != module}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


def test_the_checker_sees_a_violation(tmp_path):
    """The walker is not blind: a module-level and a function-level import are both seen."""
    path = tmp_path / "probe.py"
    path.write_text(
        "from finetune_kit.training.trainer import Trainer\n"
        "if TYPE_CHECKING:\n    import finetune_kit.data\n"
        "def f():\n    import finetune_kit.cli\n"
    )
    assert imports_of(path) == [("finetune_kit.training.trainer", True), ("finetune_kit.cli", False)]
