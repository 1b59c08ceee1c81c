"""The plain manifests in k8s/: valid, and equivalent to what the chart renders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import manifests as m

# The chart values that say what the example overlay says.
OVERLAY_AS_VALUES = m.deep_merge(
    m.REQUIRED_VALUES,
    {
        "config": {"publicUrl": "https://app.example.com", "smtp": {"host": "smtp.example.com"}},
        "api": {"replicaCount": 3},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": ["app.example.com"],
            "tls": [{"secretName": "tenantry-tls", "hosts": ["app.example.com"]}],
        },
    },
)
FIRST_LABEL = ("tenantry.dev/apply", "first")
FIRST_STEP = "kubectl apply -k k8s/overlays/example -l tenantry.dev/apply=first"


@pytest.fixture(scope="module")
def overlay() -> list[m.Obj]:
    return m.kustomize(m.OVERLAY)


@pytest.fixture(scope="module")
def base() -> list[m.Obj]:
    return m.kustomize(m.K8S / "base")


@pytest.fixture(scope="module")
def chart() -> list[m.Obj]:
    return m.render_chart(OVERLAY_AS_VALUES)[0]


@pytest.fixture(scope="module")
def chart_defaults() -> list[m.Obj]:
    return m.render_chart(m.REQUIRED_VALUES)[0]


def _unhash(objects: list[m.Obj]) -> list[m.Obj]:
    """Generated names lose their content hash, everywhere they appear."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: m.strip_hash(v) if k == "name" and isinstance(v, str) else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return [walk(o) for o in objects]


def _container_view(workload: m.Obj, container: m.Obj, objects: list[m.Obj]) -> dict[str, Any]:
    env = [
        {"name": e["name"], "value": e.get("value"), "ref": e.get("valueFrom")}
        for e in container.get("env", [])
    ]
    return {
        "name": container["name"],
        "repository": container["image"].split("@")[0].rsplit(":", 1)[0],
        "command": container.get("command"),
        "args": [str(a) for a in container.get("args", [])],
        "ports": container.get("ports"),
        "probes": {
            p: container.get(p) for p in ("startupProbe", "livenessProbe", "readinessProbe")
        },
        "lifecycle": container.get("lifecycle"),
        "env": sorted(env, key=lambda e: e["name"]),
        "env_names": sorted(m.env_names(workload, container, objects)),
        "envFrom": container.get("envFrom"),
        "securityContext": container.get("securityContext"),
        "volumeMounts": container.get("volumeMounts"),
        "resources": container.get("resources"),
    }


def _workload_view(workload: m.Obj, objects: list[m.Obj]) -> dict[str, Any]:
    pod = m.pod_spec(workload)
    keys = (
        "securityContext",
        "volumes",
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "terminationGracePeriodSeconds",
        "restartPolicy",
    )
    spec = workload["spec"]
    return {
        "kind": workload["kind"],
        "name": workload["metadata"]["name"],
        "pod": {k: pod.get(k) for k in keys},
        "selector": spec.get("selector"),
        "labels": m.pod_template_labels(workload),
        "replicas": spec.get("replicas"),
        "strategy": spec.get("strategy"),
        "job": {k: spec.get(k) for k in ("backoffLimit", "activeDeadlineSeconds")},
        "containers": [_container_view(workload, c, objects) for c in m.containers(workload)],
    }


class TestBuild:
    def test_overlay_builds_and_every_object_is_valid(self, overlay: list[m.Obj]) -> None:
        assert overlay
        for obj in overlay:
            m.validate(obj)

    def test_base_builds_and_every_object_is_valid(self, base: list[m.Obj]) -> None:
        for obj in base:
            m.validate(obj)

    def test_everything_lands_in_the_namespace(self, overlay: list[m.Obj]) -> None:
        for obj in overlay:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == "tenantry"


class TestEquivalentToTheChart:
    def test_same_workloads(self, overlay: list[m.Obj], chart: list[m.Obj]) -> None:
        names = sorted((o["kind"], o["metadata"]["name"]) for o in m.workloads(overlay))
        assert names == sorted((o["kind"], o["metadata"]["name"]) for o in m.workloads(chart))

    def test_workloads_match(self, overlay: list[m.Obj], chart: list[m.Obj]) -> None:
        ours = _unhash(overlay)
        for theirs in m.workloads(chart):
            mine = m.one(ours, theirs["kind"], theirs["metadata"]["name"])
            assert _workload_view(mine, ours) == _workload_view(theirs, chart)

    def test_same_services_pdbs_and_ingress(self, overlay: list[m.Obj], chart: list[m.Obj]) -> None:
        for kind in ("Service", "PodDisruptionBudget", "Ingress", "ServiceAccount"):
            assert sorted(o["metadata"]["name"] for o in m.find(overlay, kind)) == sorted(
                o["metadata"]["name"] for o in m.find(chart, kind)
            ), kind
            for theirs in m.find(chart, kind):
                mine = m.one(overlay, kind, theirs["metadata"]["name"])
                if kind == "ServiceAccount":
                    assert mine["automountServiceAccountToken"] is False
                else:
                    assert mine["spec"] == theirs["spec"], kind

    def test_same_settings(self, overlay: list[m.Obj], chart: list[m.Obj]) -> None:
        (mine,) = m.find(_unhash(overlay), "ConfigMap")
        theirs = m.one(chart, "ConfigMap", m.RELEASE)
        assert mine["data"] == theirs["data"]

    def test_base_settings_are_the_chart_defaults(
        self, base: list[m.Obj], chart_defaults: list[m.Obj]
    ) -> None:
        (mine,) = m.find(_unhash(base), "ConfigMap")
        assert mine["data"] == m.one(chart_defaults, "ConfigMap", m.RELEASE)["data"]

    def test_same_secret_keys(self, overlay: list[m.Obj], chart: list[m.Obj]) -> None:
        for theirs in m.find(chart, "Secret"):
            mine = m.one(_unhash(overlay), "Secret", theirs["metadata"]["name"])
            assert set(mine["data"]) == set(theirs["stringData"])


class TestMigrationOrder:
    def test_the_documented_first_step_is_this_selector(self) -> None:
        assert FIRST_STEP in (m.OVERLAY / "kustomization.yaml").read_text()
        assert FIRST_STEP in (m.ROOT / "docs" / "operations" / "deploy.md").read_text()

    def test_what_the_job_needs_is_labelled_for_the_first_apply(self, overlay: list[m.Obj]) -> None:
        (job,) = m.find(overlay, "Job")
        needed = [("Secret", name) for name in m.secret_references(job)]
        needed.append(("ServiceAccount", m.pod_spec(job)["serviceAccountName"]))
        needed.append(("Job", job["metadata"]["name"]))
        # On a new cluster the Namespace must exist before anything in it.
        needed.append(("Namespace", job["metadata"]["namespace"]))
        for kind, name in needed:
            obj = m.one(overlay, kind, name)
            assert FIRST_LABEL in obj["metadata"]["labels"].items(), (kind, name)
        assert not any(c.get("envFrom") for c in m.containers(job))

    def test_nothing_else_is_in_the_first_apply(self, overlay: list[m.Obj]) -> None:
        first = [o["kind"] for o in overlay if FIRST_LABEL in o["metadata"]["labels"].items()]
        assert sorted(first) == ["Job", "Namespace", "Secret", "ServiceAccount"]

    def test_owner_url_is_read_only_by_the_job(self, overlay: list[m.Obj]) -> None:
        owner = {
            s["metadata"]["name"]
            for s in m.find(overlay, "Secret")
            if "DATABASE_OWNER_URL" in s["data"]
        }
        assert owner
        for workload in m.find(overlay, "Deployment"):
            assert m.secret_references(workload) & owner == set()


class TestSecurity:
    def test_no_container_runs_as_root(self, overlay: list[m.Obj]) -> None:
        for workload in m.workloads(overlay):
            pod = m.pod_spec(workload)
            for container in m.containers(workload):
                security = m.effective_security(pod, container)
                assert security["runAsNonRoot"] is True
                assert security["runAsUser"] != 0
                assert security["readOnlyRootFilesystem"] is True

    def test_namespace_enforces_restricted_pod_security(self, overlay: list[m.Obj]) -> None:
        (namespace,) = m.find(overlay, "Namespace")
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
