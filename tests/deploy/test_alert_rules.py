"""The alert rules the chart installs: `promtool check rules`, `promtool test rules` with
a firing and a silent case for every alert, and the values that shape them.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it); without it
the promtool checks skip and say why, and everything else still runs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import manifests as m
from tests.deploy import rules

RUNBOOK = m.ROOT / "docs" / "operations" / "runbook.md"
needs_promtool = pytest.mark.skipif(
    rules.PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)
_DEFAULTS: list[dict[str, Any]] = []


def default_groups() -> list[dict[str, Any]]:
    if not _DEFAULTS:
        _DEFAULTS.extend(rules.render_groups())
    return _DEFAULTS


def _test_files() -> list[Path]:
    return sorted(rules.ALERT_TESTS.glob("*.yaml"))


def _selectors(expr: str) -> list[str]:
    return re.findall(r"\{([^}]*)\}", expr)


class TestPromtool:
    @needs_promtool
    def test_check_rules_accepts_the_full_values_render(self, tmp_path: Path) -> None:
        objects = m.render_chart(
            m.deep_merge(m.REQUIRED_VALUES, m.ci_values()["full-values.yaml"])
        )[0]
        (rule,) = m.find(objects, "PrometheusRule")
        (tmp_path / "rules.yaml").write_text(rules.dump_rule_file(rule["spec"]["groups"]))
        result = rules.promtool("check", "rules", "rules.yaml", cwd=tmp_path)
        print(result.stdout, result.stderr)
        assert result.returncode == 0
        assert f"SUCCESS: {sum(len(g['rules']) for g in rule['spec']['groups'])} rules" in (
            result.stdout
        )

    @needs_promtool
    @pytest.mark.parametrize("tests", _test_files(), ids=lambda p: p.stem)
    def test_unit_tests_pass(self, tests: Path, tmp_path: Path) -> None:
        groups = rules.without_annotations(default_groups())
        (tmp_path / "rules.yaml").write_text(rules.dump_rule_file(groups))
        shutil.copy(tests, tmp_path / tests.name)
        result = rules.promtool("test", "rules", tests.name, cwd=tmp_path)
        print(result.stdout, result.stderr)
        assert result.returncode == 0
        assert "SUCCESS" in result.stdout


class TestCoverage:
    def test_every_alert_has_a_firing_and_a_silent_case(self) -> None:
        fires: set[str] = set()
        silent: set[str] = set()
        for path in _test_files():
            document = yaml.safe_load(path.read_text())
            assert document["rule_files"] == ["rules.yaml"], path.name
            for case in document["tests"]:
                for check in case.get("alert_rule_test", []):
                    (fires if check.get("exp_alerts") else silent).add(check["alertname"])
        names = set(rules.alerts(default_groups()))
        assert names - fires == set(), "alerts without a case where they fire"
        assert names - silent == set(), "alerts without a case where they stay silent"
        assert (fires | silent) - names == set(), "tests of alerts that do not exist"

    def test_every_group_has_a_test_file(self) -> None:
        groups = {p.stem for p in rules.RULE_FILES.glob("*.yaml")}
        assert groups == {p.stem for p in _test_files()}


class TestRules:
    def test_every_selector_is_this_releases_job_and_namespace(self) -> None:
        jobs = {rules.API_JOB, rules.WORKER_JOB}
        for group in default_groups():
            for rule in group["rules"]:
                for selector in _selectors(rule["expr"]):
                    job = re.search(r'job="([^"]+)"', selector)
                    assert job and job.group(1) in jobs, (rule, selector)
                    assert f'namespace="{m.NAMESPACE}"' in selector, (rule, selector)

    def test_every_aggregation_keeps_namespace_and_job(self) -> None:
        for group in default_groups():
            for rule in group["rules"]:
                clauses = re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"])
                assert clauses or "absent" in rule["expr"] or ":" in rule["expr"], rule
                for clause in clauses:
                    labels = {label.strip() for label in clause.split(",")}
                    assert "namespace" in labels, (rule.get("alert") or rule["record"], clause)
                    if not re.search(r"\bon\s*\(" + re.escape(clause), rule["expr"]):
                        assert {"namespace", "job"} <= labels or "unless" in rule["expr"], rule

    def test_every_alert_is_severe_summarised_and_linked_to_its_runbook(self) -> None:
        base = yaml.safe_load((m.CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]
        for name, rule in rules.alerts(default_groups()).items():
            assert rule["labels"]["severity"] in {"warning", "critical"}, name
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert rule["annotations"]["runbook_url"] == f"{base['runbookUrl']}#{name.lower()}"

    def test_the_runbook_has_a_section_per_alert(self) -> None:
        headings = {
            line[3:].strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")
        }
        assert set(rules.alerts(default_groups())) <= headings
        assert (
            "blob/main/docs/operations/runbook.md"
            in (
                yaml.safe_load((m.CHART / "values.yaml").read_text())["metrics"]["prometheusRule"][
                    "runbookUrl"
                ]
            )
        )

    def test_compose_loads_exactly_the_charts_rules(self) -> None:
        assert (
            rules.COMPOSE_RULES.read_text().split("groups:", 1)[1]
            == (rules.dump_rule_file(default_groups()).split("groups:", 1)[1])
        ), "run: uv run python -m tests.deploy.rules"


class TestValues:
    def test_an_alert_can_be_turned_off(self) -> None:
        groups = rules.render_groups({"disabled": {"TenantryDbPoolExhausted": True}})
        names = set(rules.alerts(groups))
        assert "TenantryDbPoolExhausted" not in names
        assert names == set(rules.alerts(default_groups())) - {"TenantryDbPoolExhausted"}

    def test_a_group_can_be_turned_off(self) -> None:
        groups = rules.render_groups({"rules": {"slo": False}})
        assert "tenantry-slo" not in {g["name"] for g in groups}
        assert "tenantry-queue" in {g["name"] for g in groups}

    def test_labels_annotations_thresholds_and_runbook_base(self) -> None:
        groups = rules.render_groups(
            {
                "additionalRuleLabels": {"team": "platform", "severity": "ignored"},
                "additionalRuleAnnotations": {"dashboard": "https://grafana.example.com/d/x"},
                "runbookUrl": "https://wiki.example.com/tenantry",
                "thresholds": {"queueOldestAgeSeconds": 900, "latencySeconds": 0.5},
            }
        )
        found = rules.alerts(groups)
        for name, rule in found.items():
            assert rule["labels"]["team"] == "platform"
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["dashboard"] == "https://grafana.example.com/d/x"
            assert rule["annotations"]["runbook_url"] == (
                f"https://wiki.example.com/tenantry#{name.lower()}"
            )
        assert found["TenantryQueueBacklog"]["expr"].endswith("> 900")
        records = [r["expr"] for g in groups for r in g["rules"] if "record" in r]
        assert any(r"le=~`0\.5(\.0)?`" in expr for expr in records)

    def test_job_names_follow_the_values(self) -> None:
        groups = rules.render_groups({"jobs": {"api": "my-api", "worker": "my-workers"}})
        exprs = " ".join(r["expr"] for g in groups for r in g["rules"])
        assert 'job="my-api"' in exprs and 'job="my-workers"' in exprs
        assert rules.API_JOB not in exprs

    def test_monitors_set_the_job_label_the_rules_select(self) -> None:
        objects = m.render_chart(
            m.deep_merge(m.REQUIRED_VALUES, m.ci_values()["full-values.yaml"])
        )[0]
        (service_monitor,) = m.find(objects, "ServiceMonitor")
        (pod_monitor,) = m.find(objects, "PodMonitor")
        for monitor, endpoints, job in (
            (service_monitor, "endpoints", rules.API_JOB),
            (pod_monitor, "podMetricsEndpoints", rules.WORKER_JOB),
        ):
            (endpoint,) = monitor["spec"][endpoints]
            assert {"action": "replace", "targetLabel": "job", "replacement": job} in (
                endpoint["relabelings"]
            )

    def test_an_unknown_placeholder_is_refused(self, tmp_path: Path) -> None:
        import helm_python as helm

        chart = tmp_path / "tenantry"
        shutil.copytree(m.CHART, chart)
        (chart / "files" / "rules" / "queue.yaml").write_text(
            "name: x\nrules:\n  - alert: X\n    expr: up{${nope}}\n"
        )
        values = m.deep_merge(m.REQUIRED_VALUES, {"metrics": {"prometheusRule": {"enabled": True}}})
        with (
            helm.Chart.load(chart) as loaded,
            pytest.raises(helm.HelmError, match=r"nope|placeholder"),
        ):
            loaded.render(values, name=m.RELEASE, namespace=m.NAMESPACE, is_install=True)
