{{/*
An operator's Deployment. dict:
  root            the including chart's context
  name            the Deployment's name
  component       app.kubernetes.io/component of its pods (one per Deployment of a release)
  args            the binary's own arguments, positional first; the shared flags
                  (common.operatorArgs) and .Values.extraArgs follow
  env             more env entries (optional); POD_NAMESPACE and .Values.extraEnv are added
  volumes         (optional)
  volumeMounts    (optional)
  ports           more container ports, e.g. the webhook's (optional)
  hostApi         whether the pod calls the hosting cluster's API (leader election, the
                  platform-mesh-operator); without it no ServiceAccount token is mounted
  podAnnotations  more pod annotations, e.g. checksums (optional)
*/}}
{{- define "common.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $args := concat .args (include "common.operatorArgs" $root | fromYamlArray) ($v.extraArgs | default list) }}
{{- $env := list (dict "name" "POD_NAMESPACE" "valueFrom" (dict "fieldRef" (dict "fieldPath" "metadata.namespace"))) }}
{{- $env = concat $env (.env | default list) ($v.extraEnv | default list) }}
{{- $annotations := merge (dict) ($v.podAnnotations | default dict) (.podAnnotations | default dict) }}
{{- $selector := dict "root" $root "component" .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "common.componentLabels" $selector | nindent 4 }}
spec:
  replicas: {{ int $v.deployment.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "common.componentSelectorLabels" $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "common.componentLabels" $selector | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $annotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "common.serviceAccountName" $root }}
      automountServiceAccountToken: {{ .hostApi }}
      enableServiceLinks: false
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "common.podSecurityContext" $root | nindent 8 }}
      terminationGracePeriodSeconds: {{ int $v.terminationGracePeriodSeconds }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $v.hostAliases }}
      hostAliases:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "common.topologySpreadConstraints" $selector | trim }}
      topologySpreadConstraints:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $root.Chart.Name }}
          image: {{ include "common.image" $root | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            {{- toYaml $args | nindent 12 }}
          env:
            {{- toYaml $env | nindent 12 }}
          ports:
            - name: metrics
              containerPort: {{ int $v.metrics.port }}
              protocol: TCP
            - name: health
              containerPort: {{ int $v.health.port }}
              protocol: TCP
            {{- with .ports }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "common.probes" $root | nindent 10 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "common.containerSecurityContext" $root | nindent 12 }}
          {{- with .volumeMounts }}
          volumeMounts:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      {{- with .volumes }}
      volumes:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
A PodDisruptionBudget for a Deployment of more than one replica (one replica cannot be both
protected and drained). dict "root" "name" "component".
*/}}
{{- define "common.pdb" -}}
{{- $v := .root.Values }}
{{- if and $v.podDisruptionBudget.enabled (gt (int $v.deployment.replicas) 1) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "common.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable | toJson }}
  selector:
    matchLabels:
      {{- include "common.componentSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
