"""The package's shape, checked: no import cycle between its modules (imports inside functions count,
``TYPE_CHECKING`` ones do not), no module over 600 lines, no private name of one module used by another, and the
library never imports its faces (the CLI)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zrealism_lab"
MAX_MODULE_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(module: str, level: int, name: str | None, is_package: bool) -> str:
    if level == 0:
        return name or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _target(candidate: str) -> str | None:
    """The package module an import statement reads: the longest module prefix of the dotted name."""
    while candidate:
        if candidate in MODULES:
            return candidate
        candidate = candidate.rpartition(".")[0]
    return None


def imports_of(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import in the module, function bodies included."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    target = _target(alias.name)
                    if target:
                        found.append((target, [], child.lineno))
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(module, child.level, child.module, is_package)
                for alias in child.names:
                    target = _target(f"{base}.{alias.name}") or _target(base)
                    if target:
                        found.append((target, [alias.name], child.lineno))
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for target, _, _ in imports_of(module):
            if target != module and not _is_parent(target, module):
                graph[module].add(target)
    return graph


def _is_parent(package: str, module: str) -> bool:
    """Importing a submodule runs its package's __init__: that edge is implied, not a design choice."""
    return module.startswith(package + ".")


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of modules that import each other, directly or round about."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycle_between_the_package_modules():
    cycles = strongly_connected(import_graph())
    assert cycles == [], f"import cycles: {cycles}"


def test_no_module_is_over_600_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding='utf-8').splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_module_imports_a_private_name_of_another():
    leaks = [f"{module}:{line} imports {target}.{name}"
             for module in MODULES for target, names, line in imports_of(module)
             for name in names if target != module and name.startswith("_") and not name.startswith("__")]
    assert leaks == []


@pytest.mark.parametrize("face", ["zrealism_lab.cli"])
def test_the_library_never_imports_the_cli(face):
    graph = import_graph()
    outside = [m for m in graph if not (m == face or m.startswith(face + ".")) and m != "zrealism_lab.sweep.__main__"]
    importers = sorted(m for m in outside if any(t == face or t.startswith(face + ".") for t in graph[m]))
    assert importers == []


def test_old_module_paths_import_the_moved_modules_themselves():
    import importlib

    from zrealism_lab.moved import MOVED_MODULES

    for old, new in MOVED_MODULES.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    from zrealism_lab.static import run_static  # the spelling notebooks and scripts of earlier versions used
    from zrealism_lab.generate.static import run_static as moved

    assert run_static is moved


def test_the_notebooks_import_public_names_only():
    import json
    import re

    import zrealism_lab

    notebooks = sorted((PACKAGE / "reports" / "notebooks").glob("*.ipynb"))
    assert notebooks, "the notebooks ship inside the package"
    for notebook in notebooks:
        code = "\n".join("".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]
                         if cell["cell_type"] == "code")
        for module, names in re.findall(r"^\s*from (zrealism_lab[\w.]*) import \(?([^)\n]+)", code, re.M):
            if module == "zrealism_lab":
                imported = [name.split(" as ")[0].strip() for name in names.split(",")]
                assert set(imported) <= set(zrealism_lab.__all__), (notebook.name, imported)
            else:  # a public subpackage's own exports (zrealism_lab.sweep)
                assert module == "zrealism_lab.sweep", (notebook.name, module)
