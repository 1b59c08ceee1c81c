"""The chart's alert rules, rendered, and promtool to test them.

The rules live in helm/tenantry/files/rules/ with `${placeholders}`; only a render fills
them in, so every check here works on what the chart really installs. Docker Compose's
Prometheus loads the same render, kept in deploy/compose/prometheus/alerts.yaml:

    uv run python -m tests.deploy.rules   # rewrite it after changing a rule
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy import manifests as m

ALERT_TESTS = Path(__file__).resolve().parent / "alerts"
COMPOSE_RULES = m.ROOT / "deploy" / "compose" / "prometheus" / "alerts.yaml"
RULE_FILES = m.CHART / "files" / "rules"
PROMTOOL = shutil.which("promtool")
# What the rules select with the chart's defaults (release and namespace "tenantry").
API_JOB = f"{m.RELEASE}-api"
WORKER_JOB = f"{m.RELEASE}-worker"

_HEADER = """\
# GENERATED from helm/tenantry/files/rules/ by `uv run python -m tests.deploy.rules`;
# do not edit. These are the rules the chart installs for release "tenantry" in namespace
# "tenantry", which is what compose's prometheus.yml names its targets.
"""


def render_groups(prometheus_rule: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The PrometheusRule's groups for the default release, with `metrics.prometheusRule`
    values merged over the chart's defaults ([] when it renders no PrometheusRule)."""
    values = m.deep_merge(
        m.REQUIRED_VALUES,
        {"metrics": {"prometheusRule": {"enabled": True, **(prometheus_rule or {})}}},
    )
    objects, _ = m.render_chart(values)
    found = m.find(objects, "PrometheusRule")
    if not found:
        return []
    groups: list[dict[str, Any]] = found[0]["spec"]["groups"]
    return groups


def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


class _Literal(str):
    pass


def _dumper() -> type[yaml.SafeDumper]:
    class Dumper(yaml.SafeDumper):
        pass

    def literal(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")

    Dumper.add_representer(_Literal, literal)
    return Dumper


def dump_rule_file(groups: list[dict[str, Any]]) -> str:
    """A Prometheus rule file, multi-line expressions kept readable."""

    order = ["name", "alert", "record", "expr", "for", "labels", "annotations"]

    def readable(node: Any) -> Any:
        if isinstance(node, dict):
            keys = sorted(node, key=lambda k: order.index(k) if k in order else len(order))
            return {k: readable(node[k]) for k in keys}
        if isinstance(node, list):
            return [readable(v) for v in node]
        if isinstance(node, str) and "\n" in node:
            return _Literal(node)
        return node

    return yaml.dump({"groups": readable(groups)}, Dumper=_dumper(), sort_keys=False, width=1000)


def without_annotations(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """promtool compares annotations too; the unit tests check expressions, `for` and
    labels, and `promtool check rules` checks the annotation templates."""
    return [
        {
            **group,
            "rules": [
                {k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]
            ],
        }
        for group in groups
    ]


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool is not installed"
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def write_compose_rules() -> None:
    COMPOSE_RULES.write_text(_HEADER + dump_rule_file(render_groups()))


if __name__ == "__main__":
    write_compose_rules()
    print(f"wrote {COMPOSE_RULES.relative_to(m.ROOT)}")
