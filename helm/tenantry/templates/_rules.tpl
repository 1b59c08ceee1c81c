{{/*
The alert and recording rules: every files/rules/<group>.yaml that
`metrics.prometheusRule.rules.<group>` leaves on, with `${name}` placeholders filled in
(`${api}` and `${worker}` select this release's targets, the rest are
`metrics.prometheusRule.thresholds`), alerts in `disabled` left out, and every alert
given `additionalRuleLabels`, `additionalRuleAnnotations` and a `runbook_url`.
Returns `{groups: [...]}` as YAML.
*/}}
{{/* The `job` label of a component's targets: set by the monitors, selected by the rules. */}}
{{- define "tenantry.metricsJob" -}}
{{- index .ctx.Values.metrics.prometheusRule.jobs .component | default (printf "%s-%s" (include "tenantry.fullname" .ctx) .component) -}}
{{- end }}

{{- define "tenantry.ruleGroups" -}}
{{- $cfg := .Values.metrics.prometheusRule -}}
{{- $ns := include "tenantry.namespace" . -}}
{{- $vars := dict
  "api" (printf "job=%q, namespace=%q" (include "tenantry.metricsJob" (dict "ctx" . "component" "api")) $ns)
  "worker" (printf "job=%q, namespace=%q" (include "tenantry.metricsJob" (dict "ctx" . "component" "worker")) $ns)
-}}
{{- range $key, $value := $cfg.thresholds }}
{{- $_ := set $vars $key (toString $value) }}
{{- end }}
{{- /* The latency bucket, as prometheus_client writes it ("1.0") or Prometheus 3 keeps it ("1"). */ -}}
{{- $_ := set $vars "latencyLe" (printf "%s(\\.0)?" (replace "." "\\." (toString $cfg.thresholds.latencySeconds))) -}}
{{- $groups := list -}}
{{- range $path, $_ := .Files.Glob "files/rules/*.yaml" }}
{{- $key := base $path | trimSuffix ".yaml" }}
{{- if not (hasKey $cfg.rules $key) }}
{{- fail (printf "metrics.prometheusRule.rules.%s: add a toggle for %s to values.yaml and the schema" $key $path) }}
{{- end }}
{{- if index $cfg.rules $key }}
{{- $text := $.Files.Get $path }}
{{- range $name, $value := $vars }}
{{- $text = replace (printf "${%s}" $name) $value $text }}
{{- end }}
{{- if contains "${" $text }}
{{- fail (printf "%s: a ${placeholder} has no value" $path) }}
{{- end }}
{{- $group := fromYaml $text }}
{{- if hasKey $group "Error" }}
{{- fail (printf "%s: %s" $path $group.Error) }}
{{- end }}
{{- $rules := list }}
{{- range $group.rules }}
{{- if not .alert }}
{{- $rules = append $rules . }}
{{- else if not (index $cfg.disabled .alert) }}
{{- $labels := merge (deepCopy (.labels | default dict)) $cfg.additionalRuleLabels }}
{{- $annotations := merge (deepCopy (.annotations | default dict)) (dict "runbook_url" (printf "%s#%s" $cfg.runbookUrl (lower .alert))) $cfg.additionalRuleAnnotations }}
{{- $rules = append $rules (merge (dict "labels" $labels "annotations" $annotations) (omit . "labels" "annotations")) }}
{{- end }}
{{- end }}
{{- $groups = append $groups (dict "name" $group.name "rules" $rules) }}
{{- end }}
{{- end }}
{{- toYaml (dict "groups" $groups) }}
{{- end }}
