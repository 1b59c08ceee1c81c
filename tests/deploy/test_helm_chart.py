"""The Helm chart, rendered by Helm's own Go code for its defaults and every ci/ file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import helm_python as helm
import pytest
import yaml
from starlette.routing import Match

from tenantry.config import Settings
from tenantry.main import create_app
from tenantry.observability import probe as worker_probe
from tests.deploy import manifests as m

CASES: dict[str, dict[str, Any]] = {
    "defaults": m.REQUIRED_VALUES,
    **{name: m.deep_merge({}, values) for name, values in m.ci_values().items()},
}
FULL = "full-values.yaml"
VALUES = yaml.safe_load((m.CHART / "values.yaml").read_text())
SCHEMA = json.loads((m.CHART / "values.schema.json").read_text())
# Read by code outside Settings: prometheus_client, and the CLI before any settings exist.
READ_OUTSIDE_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR", "TENANTRY_ALEMBIC_INI"}


def _values(case: str) -> dict[str, Any]:
    values = CASES[case]
    # ci/ files are complete installs on their own, except for secrets managed elsewhere.
    if case != "defaults" and not values.get("secrets", {}).get("existingSecret"):
        return m.deep_merge(m.REQUIRED_VALUES, values)
    return values


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


_RENDERED: dict[str, tuple[list[m.Obj], str]] = {}


def rendered(case: str) -> tuple[list[m.Obj], str]:
    if case not in _RENDERED:
        _RENDERED[case] = m.render_chart(_values(case))
    return _RENDERED[case]


@pytest.fixture(scope="module")
def objects(case: str) -> list[m.Obj]:
    return rendered(case)[0]


@pytest.fixture(scope="module")
def serves() -> Callable[[str], bool]:
    """Whether the real app answers `GET path` with a route (not a 404)."""
    app = create_app(Settings())

    def serves(path: str) -> bool:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
        return any(route.matches(scope)[0] is Match.FULL for route in app.router.routes)

    assert not serves("/no-such-route")
    return serves


def _name(component: str) -> str:
    return f"{m.RELEASE}-{component}"


def _fullname() -> str:
    return m.RELEASE


class TestRender:
    def test_every_object_is_valid_kubernetes(self, objects: list[m.Obj]) -> None:
        assert objects
        for obj in objects:
            m.validate(obj)

    def test_every_object_is_namespaced_and_labelled(self, objects: list[m.Obj]) -> None:
        for obj in objects:
            meta = obj["metadata"]
            assert meta.get("namespace"), meta["name"]
            assert meta["labels"]["app.kubernetes.io/instance"] == m.RELEASE
            assert meta["labels"]["app.kubernetes.io/part-of"] == "tenantry"

    def test_validates_against_a_current_kubernetes(self) -> None:
        major, minor, *_ = (int(part) for part in m.KUBERNETES_VERSION.split("."))
        assert (major, minor) >= (1, 34)

    def test_lint_is_clean(self, case: str) -> None:
        report = helm.lint(m.CHART, _values(case), strict=True, kube_version="v1.30.0")
        assert report["errors"] == []
        problems = [msg for msg in report["messages"] if msg["severity"] >= 2]
        assert problems == []

    def test_names_fit_dns_labels(self, objects: list[m.Obj]) -> None:
        for obj in objects:
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", obj["metadata"]["name"])

    def test_notes_tell_the_operator_what_to_do_next(self, case: str) -> None:
        notes = rendered(case)[1]
        assert "rollout status deployment/tenantry-api" in notes
        assert "create-superuser" in notes


class TestRequiredValues:
    def test_bare_defaults_refuse_with_what_is_missing(self) -> None:
        with pytest.raises(helm.HelmRenderError, match=r"secrets\.databaseUrl"):
            m.render_chart({})

    def test_missing_owner_url_is_refused(self) -> None:
        values = m.deep_merge(m.REQUIRED_VALUES, {"migrations": {"databaseOwnerUrl": ""}})
        with pytest.raises(helm.HelmRenderError, match=r"migrations\.databaseOwnerUrl"):
            m.render_chart(values)

    def test_unknown_value_is_refused(self) -> None:
        values = m.deep_merge(m.REQUIRED_VALUES, {"api": {"replicas": 3}})
        with pytest.raises(helm.HelmError, match="replicas"):
            m.render_chart(values)


def _walk_schema(node: Any, path: str = "$") -> list[str]:
    """Paths of object schemas that would accept keys they do not describe."""
    bad: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            extra = node.get("additionalProperties")
            if extra is not False and not isinstance(extra, dict):
                bad.append(path)
        for key, child in node.items():
            bad += _walk_schema(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            bad += _walk_schema(child, f"{path}[{index}]")
    return bad


def _value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict) and value:
            paths += _value_paths(value, f"{path}.")
    return paths


def _documented_keys() -> tuple[set[str], set[str]]:
    """values.yaml keys with a comment right above them, and those documented as a block
    (`# --` over a mapping documents everything inside it, as helm-docs reads it)."""
    commented: set[str] = set()
    described: set[str] = set()
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    for line in (m.CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped)
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_-]+):", line)
        if not match:
            comment = comment if stripped else []
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([p for _, p in stack] + [match.group(2)])
        if comment:
            commented.add(path)
        if any(c.startswith("# --") for c in comment):
            described.add(path)
        stack.append((indent, match.group(2)))
        comment = []
    blocks = {p for p in described if isinstance(_lookup(VALUES, p), dict) and _lookup(VALUES, p)}
    return commented, blocks


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


class TestValuesDocumentation:
    def test_schema_forbids_unknown_keys_everywhere(self) -> None:
        assert _walk_schema(SCHEMA) == []

    def test_schema_describes_every_default_key(self) -> None:
        def covered(schema: dict[str, Any], path: list[str]) -> bool:
            node = schema
            for part in path:
                if "$ref" in node:
                    node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
                props = node.get("properties", {})
                if part in props:
                    node = props[part]
                elif isinstance(node.get("additionalProperties"), dict):
                    node = node["additionalProperties"]
                else:
                    return False
            return True

        missing = [p for p in _value_paths(VALUES) if not covered(SCHEMA, p.split("."))]
        assert missing == []

    def test_every_values_key_is_commented(self) -> None:
        commented, blocks = _documented_keys()
        undocumented = [
            path
            for path in _value_paths(VALUES)
            if path not in commented
            and not any(path.startswith(block + ".") for block in blocks)
            and not isinstance(_lookup(VALUES, path), dict)
        ]
        assert undocumented == []

    def test_readme_lists_every_value(self) -> None:
        readme = (m.CHART / "README.md").read_text()
        _, blocks = _documented_keys()
        leaves = [
            path
            for path in _value_paths(VALUES)
            if not any(path.startswith(block + ".") for block in blocks)
            and (path in blocks or not isinstance(_lookup(VALUES, path), dict))
        ]
        missing = [path for path in leaves if f"`{path}`" not in readme]
        assert missing == []


class TestProbes:
    def test_api_probes_hit_real_routes(
        self, objects: list[m.Obj], serves: Callable[[str], bool]
    ) -> None:
        api = m.one(objects, "Deployment", _name("api"))
        (container,) = api["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert serves(get["path"]), get["path"]
            assert ports[get["port"]] == 8000
        argv = m.container_argv(container, m.image_entrypoint())
        assert m.parse_cli(argv[1:])["port"] == 8000

    def test_worker_probes_check_the_worker(self, objects: list[m.Obj]) -> None:
        worker = m.one(objects, "Deployment", _name("worker"))
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            spec = container[probe]
            if "exec" in spec:
                argv = spec["exec"]["command"]
                assert argv[0] == m.image_entrypoint()[0]
                assert m.parse_cli(argv[1:]) == {"check": True}
                # It starts a small Python process that waits up to worker_probe.TIMEOUT.
                assert spec["timeoutSeconds"] > worker_probe.TIMEOUT
            else:
                # The worker's metrics server: GET /health next to /metrics; liveness
                # ignores Redis (the worker rides out an outage of it).
                path = "/health/live" if probe == "livenessProbe" else "/health"
                assert spec["httpGet"] == {"path": path, "port": "metrics"}
                assert ports["metrics"] == VALUES["worker"]["metricsPort"]
                # /health bounds its Redis ping to 2 s.
                assert spec["timeoutSeconds"] > 2

    def test_exec_probe_is_what_ci_exercises(self) -> None:
        objects = rendered(FULL)[0]
        worker = m.one(objects, "Deployment", _name("worker"))
        assert "exec" in worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]


class TestShutdown:
    def test_workers_get_longer_than_arq_waits_for_running_jobs(self, objects: list[m.Obj]) -> None:
        from workers.settings import WorkerSettings

        worker = m.one(objects, "Deployment", _name("worker"))
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        # ARQ waits job_completion_wait, then closes its pools; SIGKILL must come later.
        assert WorkerSettings.job_completion_wait >= 60
        assert grace >= WorkerSettings.job_completion_wait + 15


class TestCommands:
    def test_every_container_runs_a_real_cli_command(self, objects: list[m.Obj]) -> None:
        for workload in m.workloads(objects):
            for container in m.containers(workload):
                argv = m.container_argv(container, m.image_entrypoint())
                assert argv[0] == "tenantry"
                m.parse_cli(argv[1:])

    def test_the_worker_is_the_real_worker(self, objects: list[m.Obj]) -> None:
        worker = m.one(objects, "Deployment", _name("worker"))
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        assert m.container_argv(container, m.image_entrypoint()) == ["tenantry", "worker"]

    def test_every_container_uses_the_one_image(self, objects: list[m.Obj]) -> None:
        images = {c["image"] for w in m.workloads(objects) for c in m.containers(w)}
        assert len(images) == 1


class TestSecurity:
    def test_no_container_runs_as_root(self, objects: list[m.Obj]) -> None:
        for workload in m.workloads(objects):
            pod = m.pod_spec(workload)
            for container in m.containers(workload):
                security = m.effective_security(pod, container)
                assert security.get("runAsNonRoot") is True
                assert security.get("runAsUser", 0) != 0
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert security["seccompProfile"]["type"] == "RuntimeDefault"
                assert not container["securityContext"].get("privileged", False)

    def test_the_user_is_the_image_user(self, objects: list[m.Obj]) -> None:
        uid, _, gid = m.image_user().partition(":")
        for workload in m.workloads(objects):
            pod = m.pod_spec(workload)
            for container in m.containers(workload):
                security = m.effective_security(pod, container)
                assert str(security["runAsUser"]) == uid
                assert str(security["runAsGroup"]) == gid

    def test_writable_paths_are_empty_dirs(self, objects: list[m.Obj]) -> None:
        for workload in m.workloads(objects):
            volumes = {v["name"]: v for v in m.pod_spec(workload)["volumes"]}
            for container in m.containers(workload):
                mounts = {v["mountPath"]: v["name"] for v in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]]
                assert "emptyDir" in volumes[mounts["/run/prometheus"]]

    def test_no_service_account_token_is_mounted(self, objects: list[m.Obj]) -> None:
        for workload in m.workloads(objects):
            assert m.pod_spec(workload)["automountServiceAccountToken"] is False

    def test_every_container_requests_resources(self, objects: list[m.Obj]) -> None:
        for workload in m.workloads(objects):
            for container in m.containers(workload):
                requests = container["resources"]["requests"]
                assert requests["cpu"] and requests["memory"]
                assert container["resources"]["limits"]["memory"]


class TestMigrationHook:
    def _job(self, objects: list[m.Obj]) -> m.Obj:
        return m.one(objects, "Job", _name("migrate"))

    def test_runs_tenantry_migrate_before_install_and_upgrade(self, case: str) -> None:
        objects = rendered(case)[0]
        if not _values(case).get("migrations", {}).get("enabled", True):
            assert m.find(objects, "Job") == []
            return
        job = self._job(objects)
        assert m.hook_phases(job) == {"pre-install", "pre-upgrade"}
        (container,) = m.pod_spec(job)["containers"]
        assert m.container_argv(container, m.image_entrypoint()) == ["tenantry", "migrate"]
        assert m.pod_spec(job)["restartPolicy"] == "Never"

    def test_deployments_are_release_objects_created_after_the_hook(
        self, objects: list[m.Obj]
    ) -> None:
        for kind in ("Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"):
            for obj in m.find(objects, kind):
                assert m.hook_phases(obj) == set(), obj["metadata"]["name"]

    def test_what_the_job_reads_exists_before_it(self, case: str) -> None:
        objects = rendered(case)[0]
        jobs = m.find(objects, "Job")
        if not jobs:
            return
        job = jobs[0]
        values = _values(case)
        existing = {
            values.get("secrets", {}).get("existingSecret"),
            values.get("migrations", {}).get("existingSecret"),
        } - {None, ""}
        existing |= {s["name"] for s in values.get("imagePullSecrets", [])}
        needed = {("Secret", name) for name in m.secret_references(job)}
        needed.add(("ServiceAccount", m.pod_spec(job)["serviceAccountName"]))
        for kind, name in needed:
            if kind == "Secret" and name in existing:
                continue
            if kind == "ServiceAccount" and not values.get("serviceAccount", {}).get(
                "create", True
            ):
                continue  # the operator's own ServiceAccount
            (dependency,) = m.find(objects, kind, name)
            assert m.hook_phases(dependency) == m.hook_phases(job)
            assert m.hook_weight(dependency) < m.hook_weight(job)
        assert not m.pod_spec(job).get("envFrom") and not any(
            c.get("envFrom") for c in m.containers(job)
        ), "the Job must not read release objects that do not exist yet at pre-install"

    def test_owner_url_is_read_only_by_the_migration_job(self, case: str) -> None:
        objects = rendered(case)[0]
        values = _values(case)
        owner_secrets = {
            s["metadata"]["name"]
            for s in m.find(objects, "Secret")
            if "DATABASE_OWNER_URL" in s.get("stringData", {}) | s.get("data", {})
        }
        if values.get("migrations", {}).get("existingSecret"):
            owner_secrets.add(values["migrations"]["existingSecret"])
        for workload in m.workloads(objects):
            readers = m.secret_references(workload) & owner_secrets
            env = {e["name"] for c in m.containers(workload) for e in c.get("env", [])}
            if workload["kind"] == "Job":
                continue
            assert readers == set(), workload["metadata"]["name"]
            assert "DATABASE_OWNER_URL" not in env
        for secret in m.find(objects, "Secret", _fullname()):
            assert "DATABASE_OWNER_URL" not in secret["stringData"]

    def test_owner_url_comes_from_the_existing_secret_key(self) -> None:
        objects = rendered("existing-secrets-values.yaml")[0]
        (container,) = m.pod_spec(self._job(objects))["containers"]
        owner = next(e for e in container["env"] if e["name"] == "DATABASE_OWNER_URL")
        assert owner["valueFrom"]["secretKeyRef"] == {
            "name": "tenantry-db-owner",
            "key": "owner-url",
        }
        assert m.find(objects, "Secret") == []


class TestEnvironment:
    def test_every_variable_is_a_setting(self, objects: list[m.Obj]) -> None:
        settings = {name.upper() for name in Settings.model_fields}
        known = settings | READ_OUTSIDE_SETTINGS
        for workload in m.workloads(objects):
            for container in m.containers(workload):
                names = m.env_names(workload, container, objects)
                unknown = {
                    n
                    for n in names - known
                    if not n.startswith("RATE_LIMIT_") and n != "EXTRA_SECRET"
                }
                assert unknown == set(), workload["metadata"]["name"]

    def test_api_and_worker_get_the_same_settings(self, objects: list[m.Obj]) -> None:
        api = m.one(objects, "Deployment", _name("api"))
        worker = m.one(objects, "Deployment", _name("worker"))
        assert (
            api["spec"]["template"]["spec"]["containers"][0]["envFrom"]
            == (worker["spec"]["template"]["spec"]["containers"][0]["envFrom"])
        )


class TestTraffic:
    def test_service_selects_only_api_pods(self, objects: list[m.Obj]) -> None:
        service = m.one(objects, "Service", _name("api"))
        selector = service["spec"]["selector"].items()
        for deployment in m.find(objects, "Deployment"):
            matches = selector <= m.pod_template_labels(deployment).items()
            assert matches == (deployment["metadata"]["name"] == _name("api"))

    def test_deployment_selectors_match_their_pods(self, objects: list[m.Obj]) -> None:
        for deployment in m.find(objects, "Deployment"):
            selector = deployment["spec"]["selector"]["matchLabels"].items()
            assert selector <= m.pod_template_labels(deployment).items()

    def test_ingress_routes_only_api_and_health(self) -> None:
        objects = rendered(FULL)[0]
        (ingress,) = m.find(objects, "Ingress")
        for rule in ingress["spec"]["rules"]:
            paths = {p["path"] for p in rule["http"]["paths"]}
            assert paths == {"/api", "/health"}
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == _name("api")

    def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(self) -> None:
        for case in (FULL, "worker-hpa-values.yaml"):
            objects = rendered(case)[0]
            scalers = m.find(objects, "HorizontalPodAutoscaler") + m.find(objects, "ScaledObject")
            assert scalers
            for scaler in scalers:
                target = m.one(objects, "Deployment", scaler["spec"]["scaleTargetRef"]["name"])
                assert "replicas" not in target["spec"]

    def test_each_pdb_selects_one_deployment(self, objects: list[m.Obj]) -> None:
        deployments = m.find(objects, "Deployment")
        for pdb in m.find(objects, "PodDisruptionBudget"):
            selector = pdb["spec"]["selector"]["matchLabels"].items()
            matching = [d for d in deployments if selector <= m.pod_template_labels(d).items()]
            assert len(matching) == 1, pdb["metadata"]["name"]
            assert pdb["metadata"]["name"] == matching[0]["metadata"]["name"]

    def test_workers_have_a_pdb_by_default(self) -> None:
        m.one(rendered("defaults")[0], "PodDisruptionBudget", _name("worker"))
        m.one(rendered(FULL)[0], "PodDisruptionBudget", _name("worker"))

    def test_network_policies_select_existing_pods(self) -> None:
        objects = rendered(FULL)[0]
        pods = [m.pod_template_labels(w) for w in m.find(objects, "Deployment")]
        pods.append(m.pod_template_labels(m.one(objects, "Job", _name("migrate"))))
        for policy in m.find(objects, "NetworkPolicy"):
            selector = policy["spec"]["podSelector"]["matchLabels"].items()
            assert sum(selector <= labels.items() for labels in pods) == 1


def _admits(policy: m.Obj, port: str, peer: m.Obj) -> bool:
    """Whether a NetworkPolicy lets `peer` reach its Pods on the named `port`."""
    for rule in policy["spec"].get("ingress", []):
        ports = {p["port"] for p in rule.get("ports", [])}
        if ports and port not in ports:
            continue
        if "from" not in rule or peer in rule["from"]:
            return True
    return False


def _egress_ports(policy: m.Obj) -> set[tuple[int, str]]:
    return {
        (p["port"], p.get("protocol", "TCP"))
        for rule in policy["spec"].get("egress", [])
        for p in rule.get("ports", [])
    }


class TestNetworkPolicy:
    def test_prometheus_may_scrape_what_the_monitors_scrape(self) -> None:
        objects = rendered(FULL)[0]
        (scraper,) = _values(FULL)["networkPolicy"]["metricsFrom"]
        (ingress_controller,) = _values(FULL)["networkPolicy"]["apiFrom"]
        (service_monitor,) = m.find(objects, "ServiceMonitor")
        (pod_monitor,) = m.find(objects, "PodMonitor")
        api_policy = m.one(objects, "NetworkPolicy", _name("api"))
        worker_policy = m.one(objects, "NetworkPolicy", _name("worker"))
        api_port = service_monitor["spec"]["endpoints"][0]["port"]
        worker_port = pod_monitor["spec"]["podMetricsEndpoints"][0]["port"]
        assert _admits(api_policy, api_port, scraper)
        assert _admits(api_policy, api_port, ingress_controller)
        assert _admits(worker_policy, worker_port, scraper)
        # And nobody else.
        stranger = {"namespaceSelector": {"matchLabels": {"name": "elsewhere"}}}
        assert not _admits(api_policy, api_port, stranger)
        assert not _admits(worker_policy, worker_port, stranger)
        assert not _admits(worker_policy, worker_port, ingress_controller)
        migration = m.one(objects, "NetworkPolicy", _name("migration"))
        assert "ingress" not in migration["spec"]

    def test_egress_admits_what_each_component_talks_to(self) -> None:
        objects = rendered(FULL)[0]
        values = _values(FULL)
        smtp = values["config"]["smtp"].get("port", VALUES["config"]["smtp"]["port"])
        policies = {c: m.one(objects, "NetworkPolicy", _name(c)) for c in COMPONENTS}
        for policy in policies.values():
            assert "Egress" in policy["spec"]["policyTypes"]
        dns = {(53, "TCP"), (53, "UDP")}
        assert _egress_ports(policies["migration"]) == dns | {(5432, "TCP")}
        assert _egress_ports(policies["api"]) == dns | {(5432, "TCP"), (6379, "TCP"), (443, "TCP")}
        assert _egress_ports(policies["worker"]) == dns | {
            (5432, "TCP"),
            (6379, "TCP"),
            (smtp, "TCP"),
            (443, "TCP"),
        }

    def test_egress_is_left_open_unless_asked(self) -> None:
        values = m.deep_merge(_values(FULL), {"networkPolicy": {"egress": {"enabled": False}}})
        for policy in m.find(m.render_chart(values)[0], "NetworkPolicy"):
            assert policy["spec"]["policyTypes"] == ["Ingress"]
            assert "egress" not in policy["spec"]


COMPONENTS = ("api", "worker", "migration")


class TestKeda:
    def test_scaled_object_scales_workers_on_the_apis_queue_gauge(self) -> None:
        objects = rendered(FULL)[0]
        (scaled,) = m.find(objects, "ScaledObject")
        m.validate(scaled)
        assert scaled["spec"]["scaleTargetRef"]["name"] == _name("worker")
        assert scaled["spec"]["minReplicaCount"] >= 1  # the cron jobs run on workers
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        (service_monitor,) = m.find(objects, "ServiceMonitor")
        (relabel,) = service_monitor["spec"]["endpoints"][0]["relabelings"]
        query = trigger["metadata"]["query"]
        assert f'job="{relabel["replacement"]}"' in query
        assert "tenantry_queue_depth" in query and f'namespace="{m.NAMESPACE}"' in query
        assert m.find(objects, "HorizontalPodAutoscaler", _name("worker")) == []

    def test_misspelt_scaled_object_fields_are_refused(self) -> None:
        import jsonschema

        (scaled,) = m.find(rendered(FULL)[0], "ScaledObject")
        bad = m.deep_merge(scaled, {"spec": {"minReplicas": 1}})
        with pytest.raises(jsonschema.ValidationError):
            m.validate(bad)

    def test_keda_and_the_hpa_together_are_refused(self) -> None:
        values = m.deep_merge(_values(FULL), {"worker": {"autoscaling": {"enabled": True}}})
        with pytest.raises(helm.HelmRenderError, match=r"worker\.keda"):
            m.render_chart(values)

    def test_keda_needs_a_prometheus(self) -> None:
        values = m.deep_merge(
            _values(FULL), {"worker": {"keda": {"prometheus": {"serverAddress": ""}}}}
        )
        with pytest.raises(helm.HelmRenderError, match="serverAddress"):
            m.render_chart(values)


class TestMonitoring:
    def test_service_monitor_scrapes_the_api_metrics(self) -> None:
        objects = rendered(FULL)[0]
        (monitor,) = m.find(objects, "ServiceMonitor")
        service = m.one(objects, "Service", _name("api"))
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        )
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        assert endpoint["authorization"]["credentials"]["key"] == "METRICS_TOKEN"

    def test_pod_monitor_scrapes_the_workers(self) -> None:
        objects = rendered(FULL)[0]
        (monitor,) = m.find(objects, "PodMonitor")
        worker = m.one(objects, "Deployment", _name("worker"))
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            m.pod_template_labels(worker).items()
        )
        ports = {p["name"] for p in worker["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports

    def test_prometheus_rule_carries_the_rule_groups(self) -> None:
        objects = rendered(FULL)[0]
        (rule,) = m.find(objects, "PrometheusRule")
        names = {group["name"] for group in rule["spec"]["groups"]}
        files = sorted((m.CHART / "files" / "rules").glob("*.yaml"))
        assert names == {yaml.safe_load(f.read_text())["name"] for f in files}
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"

    def test_dashboards_are_labelled_for_the_grafana_sidecar(self) -> None:
        objects = rendered(FULL)[0]
        (configmap,) = [
            c for c in m.find(objects, "ConfigMap") if c["metadata"]["name"].endswith("dashboards")
        ]
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["namespace"] == "monitoring"
        files = sorted((m.CHART / "files" / "dashboards").glob("*.json"))
        assert {f"tenantry-{f.name}" for f in files} == set(configmap["data"])
        for file in files:
            dashboard = json.loads(configmap["data"][f"tenantry-{file.name}"])
            assert dashboard == json.loads(file.read_text())
            assert dashboard["title"]

    def test_optional_objects_are_off_by_default(self) -> None:
        kinds = {o["kind"] for o in rendered("defaults")[0]}
        for kind in (
            "Ingress",
            "HorizontalPodAutoscaler",
            "ScaledObject",
            "NetworkPolicy",
            "ServiceMonitor",
            "PodMonitor",
            "PrometheusRule",
        ):
            assert kind not in kinds
