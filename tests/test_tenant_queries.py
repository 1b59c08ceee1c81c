"""Tenancy in the code (DESIGN.md "Tenancy, twice"): only repositories select tenant rows.

A repository starts every statement from its tenant filter. This test finds any other
module that names a tenant-scoped model inside a query (`select`, `update`, `delete`,
`insert`, `session.get`, joins, `exists`), so a query that forgot the tenant cannot hide
in a service, an endpoint or a job. The few modules that are data access of their own
kind are listed with the reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tenantry import models
from tenantry.models import TenantScoped

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "platform" / "tenantry"

TENANT_MODELS = frozenset(
    name
    for name, value in vars(models).items()
    if isinstance(value, type) and issubclass(value, TenantScoped) and value is not TenantScoped
)
TENANT_TABLES = frozenset(getattr(models, name).__tablename__ for name in TENANT_MODELS)
# Raw SQL counts too: a table name after FROM / JOIN / UPDATE / INTO in a string.
_RAW = re.compile(
    r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(" + "|".join(sorted(TENANT_TABLES)) + r")\b", re.I
)
QUERIES = frozenset(
    {"select", "update", "delete", "insert", "get", "select_from", "join", "outerjoin", "exists"}
)
# Data access that is not a repository, and why each may query tenant rows itself.
ALLOWED = {
    "reports/builders.py": "a report's own SQL, streamed for the report's tenant",
    "reports/storage.py": "report chunks are written and streamed by (tenant_id, report_id)",
    "auth/api_key.py": "finds a key by its hash before any tenant is known (the RLS key arm)",
    "usage.py": "upserts the usage counters of one tenant from Redis",
}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def offenders(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name not in QUERIES:
            continue
        named = set().union(*(_names(arg) for arg in node.args)) & TENANT_MODELS
        found += [f"line {node.lineno}: {name}({model})" for model in sorted(named)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [f"line {node.lineno}: SQL on {m}" for m in _RAW.findall(node.value)]
    return found


def _is_repository(path: Path) -> bool:
    return path.name == "repository.py"


def test_only_repositories_query_tenant_models() -> None:
    assert len(TENANT_MODELS) >= 8, TENANT_MODELS
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if _is_repository(path) or relative in ALLOWED or relative.startswith("models/"):
            continue
        hits = offenders(path.read_text())
        if hits:
            found[relative] = hits
    assert found == {}


def test_workers_query_nothing_themselves() -> None:
    found = {
        path.name: offenders(path.read_text())
        for path in sorted((ROOT / "workers").rglob("*.py"))
        if offenders(path.read_text())
    }
    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        "stmt = sa.select(Task).where(Task.id == task_id)",
        "rows = select(col(Project.name))",
        "await session.get(Report, report_id)",
        "sa.update(Membership).values(role=role)",
        "stmt.join(ApiKey, ApiKey.id == x)",
        'sa.text("SELECT id FROM tasks WHERE project_id = :p")',
    ],
)
def test_a_query_outside_a_repository_is_caught(source: str) -> None:
    assert offenders(source)
