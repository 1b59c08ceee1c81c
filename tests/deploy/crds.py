"""Strict schemas for the custom resources the chart renders.

kubernetes-validate ships only the core Kubernetes schemas, so ServiceMonitor, PodMonitor
and PrometheusRule (monitoring.coreos.com/v1) and KEDA's ScaledObject (keda.sh/v1alpha1)
are checked against these: the subset of each CRD's fields that this chart sets, typed
as in the CRD, with unknown fields rejected, so a misspelt or misplaced key fails here
instead of being silently pruned by the API server.
"""

from __future__ import annotations

from typing import Any

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": "^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


_METADATA = _obj(
    {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    ["name"],
)
_LABEL_SELECTOR = _obj(
    {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": _obj(
                {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                ["key", "operator"],
            ),
        },
    }
)
_NAMESPACE_SELECTOR = _obj(
    {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}
)
_AUTHORIZATION = _obj(
    {
        "type": {"type": "string"},
        "credentials": _obj(
            {
                "name": {"type": "string"},
                "key": {"type": "string"},
                "optional": {"type": "boolean"},
            },
            ["key"],
        ),
    }
)
_RELABELING = _obj(
    {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {
            "type": "string",
            "enum": [
                "replace",
                "keep",
                "drop",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
                "keepequal",
                "dropequal",
            ],
        },
    }
)
_ENDPOINT = {
    "port": {"type": "string"},
    "path": {"type": "string", "pattern": "^/"},
    "scheme": {"type": "string", "enum": ["http", "https", "HTTP", "HTTPS"]},
    "interval": _DURATION,
    "scrapeTimeout": _DURATION,
    "honorLabels": {"type": "boolean"},
    "authorization": _AUTHORIZATION,
    "relabelings": {"type": "array", "items": _RELABELING},
}


def _kind(
    kind: str, spec: dict[str, Any], api_version: str = "monitoring.coreos.com/v1"
) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ["apiVersion", "kind", "metadata", "spec"],
    )


# keda.sh/v1alpha1 ScaledObject (KEDA 2.x CRD): trigger metadata values are strings.
_INT = {"type": "integer", "format": "int32"}
_SCALED_OBJECT_SPEC = _obj(
    {
        "scaleTargetRef": _obj(
            {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "name": {"type": "string", "minLength": 1},
                "envSourceContainerName": {"type": "string"},
            },
            ["name"],
        ),
        "pollingInterval": _INT,
        "cooldownPeriod": _INT,
        "initialCooldownPeriod": _INT,
        "idleReplicaCount": _INT,
        "minReplicaCount": _INT,
        "maxReplicaCount": _INT,
        "fallback": _obj(
            {"failureThreshold": _INT, "replicas": _INT}, ["failureThreshold", "replicas"]
        ),
        "advanced": _obj(
            {
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "horizontalPodAutoscalerConfig": _obj(
                    {
                        "name": {"type": "string"},
                        "behavior": {"type": "object"},
                    }
                ),
            }
        ),
        "triggers": {
            "type": "array",
            "minItems": 1,
            "items": _obj(
                {
                    "type": {"type": "string", "minLength": 1},
                    "name": {"type": "string"},
                    "metadata": _STRING_MAP,
                    "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                    "useCachedMetrics": {"type": "boolean"},
                    "authenticationRef": _obj(
                        {"name": {"type": "string"}, "kind": {"type": "string"}}, ["name"]
                    ),
                },
                ["type", "metadata"],
            ),
        },
    },
    ["scaleTargetRef", "triggers"],
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": _kind("ScaledObject", _SCALED_OBJECT_SPEC, "keda.sh/v1alpha1"),
    "ServiceMonitor": _kind(
        "ServiceMonitor",
        _obj(
            {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "jobLabel": {"type": "string"},
                "endpoints": {"type": "array", "minItems": 1, "items": _obj(_ENDPOINT)},
            },
            ["selector", "endpoints"],
        ),
    ),
    "PodMonitor": _kind(
        "PodMonitor",
        _obj(
            {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "jobLabel": {"type": "string"},
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _obj(_ENDPOINT)},
            },
            ["selector", "podMetricsEndpoints"],
        ),
    ),
    "PrometheusRule": _kind(
        "PrometheusRule",
        _obj(
            {
                "groups": {
                    "type": "array",
                    "items": _obj(
                        {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "query_offset": _DURATION,
                            "limit": {"type": "integer"},
                            "labels": _STRING_MAP,
                            "partial_response_strategy": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": _obj(
                                    {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRING_MAP,
                                        "annotations": _STRING_MAP,
                                    },
                                    ["expr"],
                                ),
                            },
                        },
                        ["name", "rules"],
                    ),
                }
            },
            ["groups"],
        ),
    ),
}
