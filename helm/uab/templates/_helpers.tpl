{{/*
Names are fixed (uab-<service>, uab-gateway, …) rather than derived from the release: the
gateway's static Envoy config addresses services as uab-<service>:8080. One release per
namespace.
*/}}

{{/* Labels on every object. Call with (dict "root" $ "component" "<name>"). */}}
{{- define "uab.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "uab.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: uab
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "uab.selectorLabels" -}}
app.kubernetes.io/name: uab
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The UAB image reference. */}}
{{- define "uab.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
A service's effective settings: `defaults` overridden by services.<name>, as YAML (read back
with fromYaml). Call with (dict "root" $ "name" "<name>").
*/}}
{{- define "uab.settings" -}}
{{- toYaml (mustMergeOverwrite (deepCopy .root.Values.defaults) (deepCopy (index .root.Values.services .name))) }}
{{- end }}

{{/* Enabled service names, sorted, one per line. */}}
{{- define "uab.enabledServices" -}}
{{- range $name, $cfg := .Values.services }}
{{- if $cfg.enabled }}
{{ $name }}
{{- end }}
{{- end }}
{{- end }}

{{/* Upper-case environment-variable form of a service name. */}}
{{- define "uab.envSuffix" -}}
{{ . | upper | replace "-" "_" }}
{{- end }}

{{/*
Where a service's DATABASE_URL comes from (secretKeyRef body). Call with
(dict "root" $ "name" "<name>" "s" <settings>). Order: the service's own existingSecret, its
own url (kept in uab-env), the global existingSecret, the global url (kept in uab-env).
*/}}
{{- define "uab.databaseRef" -}}
{{- if .s.postgres.existingSecret -}}
name: {{ .s.postgres.existingSecret }}
key: DATABASE_URL
{{- else if .s.postgres.url -}}
name: uab-env
key: DATABASE_URL_{{ include "uab.envSuffix" .name }}
{{- else if .root.Values.postgres.existingSecret -}}
name: {{ .root.Values.postgres.existingSecret }}
key: DATABASE_URL
{{- else -}}
name: uab-env
key: DATABASE_URL
{{- end }}
{{- end }}

{{/* Where NATS_URL comes from (secretKeyRef body). */}}
{{- define "uab.natsRef" -}}
{{- if .Values.nats.existingSecret -}}
name: {{ .Values.nats.existingSecret }}
{{- else -}}
name: uab-env
{{- end }}
key: NATS_URL
{{- end }}

{{/* Where the migration Job's DATABASE_URL comes from (secretKeyRef body). */}}
{{- define "uab.migrationDatabaseRef" -}}
{{- $m := .Values.postgres.migration -}}
{{- if $m.existingSecret -}}
name: {{ $m.existingSecret }}
{{- else if and (not $m.url) .Values.postgres.existingSecret -}}
name: {{ .Values.postgres.existingSecret }}
{{- else -}}
name: uab-migration
{{- end }}
key: DATABASE_URL
{{- end }}

{{/* One migration container. Call with (dict "root" $ "name" "<service>"). */}}
{{- define "uab.migrationContainer" -}}
- name: migrate-{{ .name }}
  image: {{ include "uab.image" .root }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: {{ toJson (concat .root.Values.migration.command (list "--service" .name)) }}
  env:
    - name: UAB_SERVICE
      value: {{ .name | quote }}
    - name: DATABASE_URL
      valueFrom:
        secretKeyRef:
          {{- include "uab.migrationDatabaseRef" .root | nindent 10 }}
  {{- with .root.Values.postgres.migration.runtimePasswordsSecret }}
  envFrom:
    - secretRef:
        name: {{ . }}
  {{- end }}
  resources:
    {{- toYaml .root.Values.migration.resources | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}
