{{/* Selects every pod of the release (all Deployments of a split security-operator). */}}
{{- define "common.metricsService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.fullname" . }}-metrics
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.componentLabels" (dict "root" . "component" "metrics") | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ int .Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end }}

{{- define "common.serviceMonitor" -}}
{{- $monitor := .Values.metrics.serviceMonitor }}
{{- if $monitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "common.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
    {{- with $monitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  namespaceSelector:
    matchNames:
      - {{ .Release.Namespace }}
  selector:
    matchLabels:
      {{- include "common.componentSelectorLabels" (dict "root" . "component" "metrics") | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      {{- with $monitor.interval }}
      interval: {{ . }}
      {{- end }}
      {{- with $monitor.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
{{- end }}
{{- end }}

{{/*
The Service kcp calls the webhook through (HTTPS; its name is part of the URL and of the serving
certificate). dict "root" "component" "service" (.Values.webhooks.service: name, port).
*/}}
{{- define "common.webhookService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .service.name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "common.componentLabels" (dict "root" .root "component" "webhook") | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "common.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: https
      port: {{ int .service.port }}
      targetPort: webhook
      protocol: TCP
{{- end }}

{{/*
What every chart renders the same way: the ServiceAccount, the leader-election RBAC, the metrics
Service and the ServiceMonitor.
*/}}
{{- define "common.sharedObjects" -}}
{{ include "common.serviceAccount" . }}
---
{{ include "common.leaderElectionRbac" . }}
---
{{ include "common.metricsService" . }}
---
{{ include "common.serviceMonitor" . }}
{{- end }}
