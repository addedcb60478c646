{{/*
The pieces of an operator's pod: security contexts, probes, the flags of kit::cli::OperatorArgs,
topology spread, and the Secret mounts.
*/}}

{{/* The image runs as distroless' nonroot user; the binaries write nothing to disk. */}}
{{- define "common.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "common.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
/healthz answers while the process runs; /readyz turns 503 while a watch has not synced or has
been failing (a standby replica is ready). The startup probe asks /healthz so that a kcp that is
slow to answer delays readiness, not a restart.
*/}}
{{- define "common.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: health
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: health
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 3
{{- end }}

{{/*
The flags every binary takes (kit::cli::OperatorArgs), as a YAML list. `operator` is optional in
the values: the rebac-authz-webhook has no leader election and no reconciles to bound.
*/}}
{{- define "common.operatorArgs" -}}
{{- $v := .Values }}
{{- $operator := $v.operator | default dict }}
{{- $args := list
  (printf "--metrics-bind-address=:%v" $v.metrics.port)
  (printf "--health-probe-bind-address=:%v" $v.health.port)
  (printf "--log-level=%s" $v.log.level) }}
{{- if not $v.log.json }}
{{- $args = append $args "--no-json" }}
{{- end }}
{{- if $operator.leaderElect }}
{{- $args = append $args "--leader-elect" }}
{{- end }}
{{- with $operator.shutdownTimeout }}
{{- $args = append $args (printf "--shutdown-timeout=%s" .) }}
{{- end }}
{{- with $operator.maxConcurrentReconciles }}
{{- $args = append $args (printf "--max-concurrent-reconciles=%v" .) }}
{{- end }}
{{- toYaml $args }}
{{- end }}

{{/*
The given constraints; without any, one Deployment of several replicas spreads over nodes and
zones (preferred, so a small cluster still schedules them). dict "root" "component".
*/}}
{{- define "common.topologySpreadConstraints" -}}
{{- $v := .root.Values }}
{{- if $v.topologySpreadConstraints }}
{{- toYaml $v.topologySpreadConstraints }}
{{- else if gt (int $v.deployment.replicas) 1 }}
{{- range list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
- maxSkew: 1
  topologyKey: {{ . }}
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "common.componentSelectorLabels" $ | nindent 6 }}
  matchLabelKeys:
    - pod-template-hash
{{- end }}
{{- end }}
{{- end }}

{{/*
A kubeconfig Secret (key `kubeconfig`) mounted read-only at "dir": dict "name" (volume) "secret"
"dir". Gives {volume, mount, path} as YAML, for fromYaml.
*/}}
{{- define "common.kubeconfigMount" -}}
volume:
  name: {{ .name }}
  secret:
    secretName: {{ .secret | quote }}
    items:
      - key: kubeconfig
        path: kubeconfig
mount:
  name: {{ .name }}
  mountPath: {{ .dir | quote }}
  readOnly: true
path: {{ printf "%s/kubeconfig" .dir | quote }}
{{- end }}

{{/*
A webhook serving certificate Secret (tls.crt, tls.key) mounted read-only at "dir", as a whole
Secret and not per key, so that a renewed certificate reaches the running server (it reloads the
files when they change). dict "secret" "dir". Gives {volume, mount} as YAML.
*/}}
{{- define "common.webhookCertMount" -}}
volume:
  name: webhook-cert
  secret:
    secretName: {{ .secret | quote }}
mount:
  name: webhook-cert
  mountPath: {{ .dir | quote }}
  readOnly: true
{{- end }}
