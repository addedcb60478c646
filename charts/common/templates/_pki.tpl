{{/*
The webhook's serving certificate from cert-manager: a self-signed Issuer signs a CA, a CA
Issuer signs the serving certificate. The serving Secret therefore carries `ca.crt`, which the
platform-mesh-operator copies into kcp (webhook configurations, the authorization webhook's
kubeconfig), so kcp trusts the webhook. dict "root" "service" (name) "certificate"
(.Values.webhooks.certificate: secretName, certManager).
*/}}
{{- define "common.webhookPki" -}}
{{- $certManager := .certificate.certManager }}
{{- if $certManager.enabled }}
{{- $root := .root }}
{{- $namespace := $root.Release.Namespace }}
{{- $fullname := include "common.fullname" $root }}
{{- $labels := include "common.componentLabels" (dict "root" $root "component" "webhook") }}
{{- $privateKey := dict "algorithm" "ECDSA" "size" 256 "encoding" "PKCS8" "rotationPolicy" "Always" }}
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: {{ $fullname }}-selfsigned
  namespace: {{ $namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $fullname }}-ca
  namespace: {{ $namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  isCA: true
  commonName: {{ $fullname }}-ca
  secretName: {{ $fullname }}-ca
  duration: {{ $certManager.caDuration }}
  renewBefore: {{ $certManager.caRenewBefore }}
  privateKey:
    {{- toYaml $privateKey | nindent 4 }}
  issuerRef:
    group: cert-manager.io
    kind: Issuer
    name: {{ $fullname }}-selfsigned
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: {{ $fullname }}-ca
  namespace: {{ $namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  ca:
    secretName: {{ $fullname }}-ca
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .service }}
  namespace: {{ $namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  secretName: {{ .certificate.secretName }}
  commonName: {{ printf "%s.%s.svc" .service $namespace }}
  dnsNames:
    - {{ printf "%s.%s.svc" .service $namespace }}
    - {{ printf "%s.%s.svc.cluster.local" .service $namespace }}
  duration: {{ $certManager.duration }}
  renewBefore: {{ $certManager.renewBefore }}
  usages:
    - server auth
    - digital signature
  privateKey:
    {{- toYaml $privateKey | nindent 4 }}
  issuerRef:
    group: cert-manager.io
    kind: Issuer
    name: {{ $fullname }}-ca
{{- end }}
{{- end }}
