{{/* The app Secret's keys, from values (used when no existing Secret is named). */}}
{{- define "tenantry.secretData" -}}
DATABASE_URL: {{ .Values.secrets.databaseUrl | quote }}
REDIS_URL: {{ .Values.secrets.redisUrl | quote }}
SECRET_KEY: {{ .Values.secrets.secretKey | quote }}
{{- with .Values.secrets.sentryDsn }}
SENTRY_DSN: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.smtpUsername }}
SMTP_USERNAME: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.smtpPassword }}
SMTP_PASSWORD: {{ . | quote }}
{{- end }}
{{- with .Values.secrets.metricsToken }}
METRICS_TOKEN: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.secrets.extra }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end }}
