{{/* The non-secret environment of every Pod (also copied into the migration hook). */}}
{{- define "tenantry.configData" -}}
ENVIRONMENT: {{ .Values.config.environment | quote }}
PUBLIC_URL: {{ .Values.config.publicUrl | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
{{- with .Values.config.corsOrigins }}
CORS_ORIGINS: {{ join "," . | quote }}
{{- end }}
{{- with .Values.config.trustedProxies }}
TRUSTED_PROXIES: {{ join "," . | quote }}
{{- end }}
{{- with .Values.config.smtp.host }}
SMTP_HOST: {{ . | quote }}
{{- end }}
SMTP_PORT: {{ .Values.config.smtp.port | quote }}
SMTP_FROM: {{ .Values.config.smtp.from | quote }}
SMTP_STARTTLS: {{ .Values.config.smtp.starttls | quote }}
WORKER_METRICS_PORT: {{ .Values.worker.metricsPort | quote }}
PROMETHEUS_MULTIPROC_DIR: {{ include "tenantry.multiprocDir" . | quote }}
{{- range $name, $value := .Values.config.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}
