"""No import cycles between the project's own modules.

A cycle works only while every module in it happens to be imported in the right order, and a function-level
import that hides one breaks as soon as someone moves it to the top. The graph is read from the source with
`ast`, module-level and function-level imports alike, so no code is run.
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fusion_service", "capture_client", "model_server", "training", "protos", "scripts", "bench")


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file in the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a module imports anywhere in its body. `from a import b` is an import of the
    module a.b when there is one, else of a; a package's own __init__ is not counted for its modules."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, one level up per extra dot
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
            names.update(submodules)
            if len(submodules) < len(node.names):  # some names come from base itself
                names.add(base)
    return {name for name in names if name in modules and name != module}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        return list(reversed(error.args[1]))  # graphlib lists it against the import direction
    return None


def test_the_project_has_no_import_cycle():
    modules = project_modules()
    assert "fusion_service.features.faces.pipeline" in modules  # the walk found the packages

    cycle = find_cycle(import_graph(modules))

    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("inner_import", [False, True], ids=["module-level", "function-level"])
def test_a_cycle_is_found_and_named_wherever_the_import_hides(tmp_path, inner_import):
    package = tmp_path / "fusion_service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("from fusion_service.second import thing\n")
    hidden = "def late():\n    from fusion_service import first\n" if inner_import else "from . import first\n"
    (package / "second.py").write_text(hidden + "thing = 1\n")
    modules = project_modules(tmp_path)

    cycle = find_cycle(import_graph(modules))

    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) == {"fusion_service.first", "fusion_service.second"}


def test_a_package_importing_its_own_modules_is_no_cycle(tmp_path):
    package = tmp_path / "bench"
    package.mkdir()
    (package / "__init__.py").write_text("from bench.report import table\nfrom . import stats\n")
    (package / "report.py").write_text("from bench import stats\n\ndef table():\n    pass\n")
    (package / "stats.py").write_text("import math\n")

    assert find_cycle(import_graph(project_modules(tmp_path))) is None
