"""The capture client is a thin client: of this project it imports only the API (protos/), so it can ship alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parents[2] / "capture_client"
SERVER_SIDE = ("fusion_service", "model_server", "training", "bench", "scripts", "tests")


def imported_modules(path: Path) -> set[str]:
    """Absolute module names a file imports, wherever in the file (function-level imports included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def test_the_check_sees_imports_of_every_kind(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import fusion_service.config\nfrom training import labels\n\ndef f():\n    from bench.media import jpeg\n")
    assert imported_modules(sample) == {"fusion_service.config", "training", "bench.media"}


@pytest.mark.parametrize("path", sorted(CLIENT.rglob("*.py")), ids=lambda path: str(path.relative_to(CLIENT)))
def test_the_capture_client_imports_nothing_from_the_service_side(path):
    leaks = sorted(m for m in imported_modules(path) if m.split(".")[0] in SERVER_SIDE)
    assert not leaks, f"{path.relative_to(CLIENT.parent)} imports {', '.join(leaks)}: take API values from protos/ instead"
