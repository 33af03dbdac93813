{{/* The chart's name, and the name of every object: "steer" for a release named steer. */}}
{{- define "steer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "steer.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "steer.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "steer.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The DaemonSet's selector: immutable, so it never changes with the release or version. */}}
{{- define "steer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "steer.name" . }}
{{- end }}

{{- define "steer.labels" -}}
{{ include "steer.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- end }}

{{- define "steer.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* steerd's socket in thick mode, on the host (the plugin) and in the container alike. */}}
{{- define "steer.socket" -}}
/run/steer/steerd.sock
{{- end }}

{{/*
The plugin entry's extra keys as JSON: pluginConfig plus, in thick mode, socketPath. Keys that
the chart or steerd set themselves are refused (keys match case-insensitively, as the plugin
reads them).
*/}}
{{- define "steer.pluginConfig" -}}
{{- $owned := dict "socketpath" "it follows mode (thick or thin)" "type" "steerd install sets it" "delegates" "steerd install wraps the node's primary CNI config" "bpffsroot" "steerd and the plugin must agree on it; the chart keeps the default" -}}
{{- range $key, $_ := .Values.pluginConfig }}
{{- with get $owned (lower $key) }}
{{- fail (printf "pluginConfig.%s cannot be set: %s" $key .) }}
{{- end }}
{{- end }}
{{- $config := deepCopy .Values.pluginConfig }}
{{- if eq .Values.mode "thick" }}
{{- $_ := set $config "socketPath" (include "steer.socket" .) }}
{{- end }}
{{- toJson $config }}
{{- end }}

{{/* A YAML single-quoted scalar holding any string. */}}
{{- define "steer.singleQuoted" -}}
'{{ replace "'" "''" . }}'
{{- end }}
