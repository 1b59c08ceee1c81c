{{/* Chart name, truncated for DNS labels. */}}
{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed with the chart name unless it already has it. */}}
{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tenantry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenantry.namespace" -}}
{{- .Release.Namespace }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "tenantry.labels" -}}
helm.sh/chart: {{ include "tenantry.chart" . }}
{{ include "tenantry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tenantry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tenantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels and selector labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "tenantry.componentLabels" -}}
{{ include "tenantry.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantry.componentSelectorLabels" -}}
{{ include "tenantry.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tenantry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenantry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tenantry.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret the API and workers read (created by the chart or existing). */}}
{{- define "tenantry.secretName" -}}
{{- default (include "tenantry.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* The hook Secret the migration Job reads: it exists before any release object does. */}}
{{- define "tenantry.migrationSecretName" -}}
{{- printf "%s-migration" (include "tenantry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenantry.configName" -}}
{{- include "tenantry.fullname" . }}
{{- end }}

{{/* Where prometheus_client keeps per-process metric files (an emptyDir). */}}
{{- define "tenantry.multiprocDir" -}}
/run/prometheus
{{- end }}

{{/* Pod-level settings shared by every Pod. */}}
{{- define "tenantry.podSpecCommon" -}}
serviceAccountName: {{ include "tenantry.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/* Scratch volumes for a read-only root filesystem. */}}
{{- define "tenantry.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: prometheus-multiproc
  emptyDir:
    sizeLimit: {{ .Values.scratch.metricsSizeLimit }}
{{- end }}

{{- define "tenantry.scratchVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: prometheus-multiproc
  mountPath: {{ include "tenantry.multiprocDir" . }}
{{- end }}

{{/* Settings and app secrets as environment: for the API and the workers. */}}
{{- define "tenantry.envFrom" -}}
- configMapRef:
    name: {{ include "tenantry.configName" . }}
- secretRef:
    name: {{ include "tenantry.secretName" . }}
{{- end }}

{{/* Scheduling knobs of one component: pass the component's values. */}}
{{- define "tenantry.scheduling" -}}
{{- $component := .component }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  - {{ toYaml (merge (dict) . (dict "labelSelector" (dict "matchLabels" (fromYaml (include "tenantry.componentSelectorLabels" (dict "ctx" $.ctx "component" $component)))))) | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Fail early on a release that could not start. */}}
{{- define "tenantry.validate" -}}
{{- if not .Values.secrets.existingSecret }}
{{- if not .Values.secrets.databaseUrl }}{{ fail "set secrets.databaseUrl (the app role's URL) or secrets.existingSecret" }}{{ end }}
{{- if not .Values.secrets.redisUrl }}{{ fail "set secrets.redisUrl or secrets.existingSecret" }}{{ end }}
{{- if not .Values.secrets.secretKey }}{{ fail "set secrets.secretKey (openssl rand -base64 48) or secrets.existingSecret" }}{{ end }}
{{- end }}
{{- if and .Values.worker.autoscaling.enabled .Values.worker.keda.enabled }}
{{- fail "worker.autoscaling and worker.keda both scale the workers: enable one" }}
{{- end }}
{{- if and .Values.migrations.enabled (not .Values.migrations.existingSecret) (not .Values.migrations.databaseOwnerUrl) }}
{{- fail "set migrations.databaseOwnerUrl (the owner role's URL) or migrations.existingSecret" }}
{{- end }}
{{- end }}

{{/*
Egress rules of a component when networkPolicy.egress.enabled: DNS and PostgreSQL for
every Pod; Redis for the API and the workers; SMTP and webhook deliveries for the
workers (they send the outbox and call webhooks); `extra` for the API and the workers
(Sentry, for one). A rule without `to` admits any destination on its ports.
*/}}
{{- define "tenantry.egressRule" -}}
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
    {{- if .udp }}
    {{- range .ports }}
    - port: {{ . }}
      protocol: UDP
    {{- end }}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "tenantry.egressRules" -}}
{{- $e := .ctx.Values.networkPolicy.egress -}}
{{- $c := .component -}}
{{- include "tenantry.egressRule" (dict "ports" $e.dns.ports "to" $e.dns.to "udp" true) }}
{{ include "tenantry.egressRule" (dict "ports" (list $e.postgres.port) "to" $e.postgres.to) }}
{{- if ne $c "migration" }}
{{ include "tenantry.egressRule" (dict "ports" (list $e.redis.port) "to" $e.redis.to) }}
{{- end }}
{{- if and (eq $c "worker") .ctx.Values.config.smtp.host }}
{{ include "tenantry.egressRule" (dict "ports" (list .ctx.Values.config.smtp.port) "to" $e.smtp.to) }}
{{- end }}
{{- if and (eq $c "worker") $e.webhooks.enabled }}
{{ include "tenantry.egressRule" (dict "ports" $e.webhooks.ports "to" $e.webhooks.to) }}
{{- end }}
{{- if and (ne $c "migration") $e.extra }}
{{ toYaml $e.extra }}
{{- end }}
{{- end }}
