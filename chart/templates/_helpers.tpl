{{/* Chart name, truncated to a DNS label. */}}
{{- define "secretid.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object-name prefix: the release name, with the chart name unless the release already holds it. */}}
{{- define "secretid.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's object name: <fullname>-<component>, within 63 characters. */}}
{{- define "secretid.componentName" -}}
{{- printf "%s-%s" (include "secretid.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component -}}
{{- end -}}

{{/* Labels that select pods; never includes the chart version. */}}
{{- define "secretid.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secretid.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "secretid.labels" -}}
{{ include "secretid.selectorLabels" . }}
app.kubernetes.io/part-of: secretid
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Public host of a function or service: <label>.<domain>. */}}
{{- define "secretid.host" -}}
{{- printf "%s.%s" (index .root.Values.hosts .name) .root.Values.domain -}}
{{- end -}}

{{/* The Secret holding the database passwords. */}}
{{- define "secretid.credentialsSecret" -}}
{{- default (include "secretid.componentName" (dict "root" . "component" "credentials")) .Values.credentials.existingSecret -}}
{{- end -}}

{{/* The PostgreSQL Service's in-cluster DNS name. */}}
{{- define "secretid.postgresHost" -}}
{{- printf "%s.%s.svc" (include "secretid.componentName" (dict "root" . "component" "postgres")) .Release.Namespace -}}
{{- end -}}

{{/* The Secret holding the edge certificate. */}}
{{- define "secretid.tlsSecret" -}}
{{- if eq .Values.edge.tls.source "existingSecret" -}}
{{- .Values.edge.tls.existingSecret -}}
{{- else -}}
{{- include "secretid.componentName" (dict "root" . "component" "tls") -}}
{{- end -}}
{{- end -}}

{{/* Container security context shared by every container: non-root, nothing extra. */}}
{{- define "secretid.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod security context shared by every pod. */}}
{{- define "secretid.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
A cluster-scoped object's name (PersistentVolume, ClusterRole, ClusterRoleBinding):
<namespace>-<fullname>-<component>, so releases in different namespaces never share one. When
that is longer than 63 characters, the prefix is cut and a hash of namespace and fullname keeps
it unique, while the component stays whole (two components never truncate to the same name).
*/}}
{{- define "secretid.clusterScopedName" -}}
{{- $prefix := printf "%s-%s" .root.Release.Namespace (include "secretid.fullname" .root) -}}
{{- $name := printf "%s-%s" $prefix .component -}}
{{- if le (len $name) 63 -}}
{{- $name -}}
{{- else -}}
{{- $hash := printf "%s/%s" .root.Release.Namespace (include "secretid.fullname" .root) | sha256sum | trunc 8 -}}
{{- printf "%s-%s-%s" ($prefix | trunc (int (sub 53 (len .component))) | trimSuffix "-") $hash .component -}}
{{- end -}}
{{- end -}}

{{/* The NFS PersistentVolume is cluster-scoped: its name carries the namespace. */}}
{{- define "secretid.postgresVolumeName" -}}
{{- include "secretid.clusterScopedName" (dict "root" . "component" "postgres-data") -}}
{{- end -}}

{{/* Every host name the edge serves: the three hosts, the configured tag hosts, and a wildcard. */}}
{{- define "secretid.edgeHosts" -}}
{{- $root := . -}}
{{- $hosts := list -}}
{{- range $name := list "api" "web" "prometheus" "alertmanager" -}}
{{- $hosts = append $hosts (include "secretid.host" (dict "root" $root "name" $name)) -}}
{{- end -}}
{{- range $tag := .Values.edge.tls.tags -}}
{{- range $name := list "api" "web" -}}
{{- $hosts = append $hosts (printf "%s-%s" $tag (include "secretid.host" (dict "root" $root "name" $name))) -}}
{{- end -}}
{{- end -}}
{{- $hosts = append $hosts (printf "*.%s" .Values.domain) -}}
{{- toJson $hosts -}}
{{- end -}}

{{/* Traefik rule for a function: its host and its Knative tag hosts (<tag>-<name>.<domain>),
     except /metrics, which only Prometheus reads, inside the cluster (no router: Traefik's 404). */}}
{{- define "secretid.functionRule" -}}
{{- $label := index .root.Values.hosts .name -}}
{{- $domain := .root.Values.domain -}}
{{- printf "(Host(`%s.%s`) || HostRegexp(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?-%s\\.%s$`)) && !PathPrefix(`/metrics`)" $label $domain (replace "." "\\." $label) (replace "." "\\." $domain) -}}
{{- end -}}

{{/* A namespaceSelector for one namespace by its automatic name label. */}}
{{- define "secretid.namespaceSelector" -}}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ . }}
{{- end -}}

{{/* Whether a monitoring part is on: its own switch and monitoring.enabled. */}}
{{- define "secretid.monitoring" -}}
{{- if and .root.Values.monitoring.enabled (index .root.Values .part).enabled -}}true{{- end -}}
{{- end -}}

{{/* kube-state-metrics collectors: the kinds the rules use, and the ClusterRole's resources. */}}
{{- define "secretid.kubeStateMetricsResources" -}}
cronjobs,deployments,jobs,nodes,persistentvolumeclaims,persistentvolumes,pods,statefulsets
{{- end -}}

{{/*
The backup claim's access mode: backup.persistence.accessMode, or ReadWriteMany on NFS and
ReadWriteOnce on a storage class. PostgreSQL (archiving WAL) and the backup jobs mount the
volume at the same time, so ReadWriteOncePod can never work.
*/}}
{{- define "secretid.backupAccessMode" -}}
{{- $persistence := .Values.backup.persistence }}
{{- $mode := $persistence.accessMode | default (ternary "ReadWriteMany" "ReadWriteOnce" $persistence.nfs.enabled) }}
{{- if eq $mode "ReadWriteOncePod" }}
{{- fail "backup.persistence.accessMode=ReadWriteOncePod cannot work: PostgreSQL (archiving WAL) and the backup jobs mount the backup volume at the same time. Set it to ReadWriteOnce (the jobs then run on PostgreSQL's node) or ReadWriteMany (needs a storage class that offers it, or backup.persistence.nfs.enabled=true)" }}
{{- end }}
{{- $mode }}
{{- end }}

{{/* The edge's TLSOption: Traefik's default one (edge.tls.defaultOptions), or one of its own. */}}
{{- define "secretid.tlsOptionName" -}}
{{- if .Values.edge.tls.defaultOptions -}}
default
{{- else -}}
{{- include "secretid.componentName" (dict "root" . "component" "edge") -}}
{{- end -}}
{{- end -}}

{{/* True when the chart runs Alertmanager: monitoring, Prometheus and Alertmanager all on. */}}
{{/* A functions route's middlewares and backend: Kourier, with the Host header intact. */}}
{{- define "secretid.functionsBackend" -}}
middlewares:
  - name: {{ include "secretid.componentName" (dict "root" . "component" "secure-headers") }}
services:
  - kind: Service
    name: {{ .Values.edge.kourier.service }}
    namespace: {{ .Values.edge.kourier.namespace }}
    port: {{ int .Values.edge.kourier.port }}
    passHostHeader: true
{{- end -}}

{{/* The functions IngressRoutes' TLS: the edge's certificate, with the chart's options. */}}
{{- define "secretid.functionsTls" -}}
tls:
  secretName: {{ include "secretid.tlsSecret" . }}
  {{- if not .Values.edge.tls.defaultOptions }}
  options:
    name: {{ include "secretid.tlsOptionName" . }}
  {{- end }}
{{- end -}}

{{/*
Where the probe finds the CA it checks the edge's certificate with (ca.crt of the edge's TLS
Secret), or nothing with edge.tls.source=existingSecret (the image's public roots then).
*/}}
{{- define "secretid.probeCaDirectory" -}}
{{- if ne .Values.edge.tls.source "existingSecret" -}}/etc/blackbox/ca{{- end -}}
{{- end -}}

{{/* The synthetic probe: its switch, with Prometheus and the edge it goes through. */}}
{{- define "secretid.probe" -}}
{{- if and (include "secretid.monitoring" (dict "root" . "part" "prometheus")) .Values.edge.enabled .Values.probe.enabled -}}true{{- end -}}
{{- end -}}

{{/*
The request header that sends the probe's requests through their own route (its Traefik service
is not the functions' one, so the SLIs, measured at the edge, count clients only).
*/}}
{{- define "secretid.probeHeader" -}}X-Secretid-Probe{{- end -}}

{{/* The functions the probe asks, with the path it asks for: the api reads the database. */}}
{{- define "secretid.probeTargets" -}}
{{- dict "api" "/randomName" "web" "/" | toJson -}}
{{- end -}}

{{- define "secretid.alertmanager" -}}
{{- if and (include "secretid.monitoring" (dict "root" . "part" "prometheus")) .Values.alertmanager.enabled -}}true{{- end -}}
{{- end -}}
