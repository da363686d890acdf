{{/* Name of a resource: <release>-modelguard[-<component>], at most 63 characters. */}}
{{- define "modelguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modelguard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelguard.labels" -}}
{{ include "modelguard.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelguard
{{- end -}}

{{/* Files of a ConfigMap: values (<key>.files) if any, else the chart's files/<key>/. */}}
{{- define "modelguard.configFiles" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $values := index $root.Values $key "files" -}}
{{- if $values -}}
{{- range $name, $text := $values }}
{{ $name }}: |-
{{ $text | indent 2 }}
{{- end -}}
{{- else -}}
{{- ($root.Files.Glob (printf "files/%s/*.yaml" $key)).AsConfig -}}
{{- end -}}
{{- end -}}
