"""The house's shape: `platform` stays the standard library's; imports run one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "tenantry"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_platform_is_still_the_standard_library() -> None:
    assert not (ROOT / "platform" / "__init__.py").exists()
    out = subprocess.run(
        [sys.executable, "-c", "import platform, tenantry; print(platform.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "site-packages" not in out or "platform.py" in out
    assert out.strip().endswith("platform.py")


def test_tenantry_never_imports_workers() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if any(name == "workers" or name.startswith("workers.") for name in _imports(path))
    ]
    assert offenders == []


def test_models_import_nothing_above_them() -> None:
    above = ("tenantry.deps", "tenantry.main", "tenantry.auth", "tenantry.kit")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (PACKAGE / "models").rglob("*.py")
        if any(name.startswith(above) for name in _imports(path))
    ]
    assert offenders == []


def test_every_route_ends_its_unit_of_work() -> None:
    """A route of any other class would leave SessionDep's session uncommitted."""
    from fastapi.routing import APIRoute

    from tenantry import health
    from tenantry.deps import UnitOfWorkRoute
    from tenantry.main import api_routers

    routes = [r for router in (*api_routers(), health.router) for r in router.routes]
    api_routes = [r for r in routes if isinstance(r, APIRoute)]
    assert len(api_routes) > 40
    assert [r.path for r in api_routes if not isinstance(r, UnitOfWorkRoute)] == []
