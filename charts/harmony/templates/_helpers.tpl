{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "harmony.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name already has it. */}}
{{- define "harmony.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "harmony.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: name and instance only, because a Deployment's selector is immutable. */}}
{{- define "harmony.selectorLabels" -}}
app.kubernetes.io/name: {{ include "harmony.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "harmony.labels" -}}
helm.sh/chart: {{ include "harmony.chart" . }}
{{ include "harmony.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: harmony
app.kubernetes.io/component: operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "harmony.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "harmony.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "harmony.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The webhook's --webhook-namespace-selector: webhook.namespaceSelector, narrowed to the watched
namespaces when there are any (the webhook GETs the pod's HarmonyGateway, which the operator may
read only there; a pod elsewhere would fail the call and meet the failure policy). Empty: every
namespace.
*/}}
{{- define "harmony.webhookNamespaceSelector" -}}
{{- $parts := list }}
{{- with trim .Values.webhook.namespaceSelector }}
{{- $parts = append $parts . }}
{{- end }}
{{- with .Values.operator.watchNamespaces }}
{{- $parts = append $parts (printf "kubernetes.io/metadata.name in (%s)" (join "," .)) }}
{{- end }}
{{- join "," $parts }}
{{- end }}

{{/*
What the operator does through the API, and nothing more (operator/src: informers on the three
kinds, Secrets, its own ConfigMaps and the data-plane Pods; merge patches of status; server-side
apply of ConfigMap, Secret, Deployment and Service, which needs create as well as patch; reads of
Deployments and Services before applying them; Events). It never deletes: children go with their
gateway through ownerReferences. Rendered into a ClusterRole, or into a Role per watched namespace.
*/}}
{{- define "harmony.rules" -}}
- apiGroups: ["harmony.runbeam.io"]
  resources: ["harmonygateways", "harmonypipelines", "harmonyendpoints"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["harmony.runbeam.io"]
  resources: ["harmonygateways/status", "harmonypipelines/status", "harmonyendpoints/status"]
  verbs: ["patch"]
# Children carry blockOwnerDeletion: clusters with OwnerReferencesPermissionEnforcement ask for this.
- apiGroups: ["harmony.runbeam.io"]
  resources: ["harmonygateways/finalizers"]
  verbs: ["update"]
# delete: the shard ConfigMaps of a set a large gateway has left (README: Large gateways).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Secrets are read one by one when a render needs them, never listed or watched: the operator holds
# only the Secrets gateways reference, not every Secret in its namespaces.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  # patch: a repeated Event bumps the count of the one already written (client-go's aggregation).
  verbs: ["create", "patch"]
{{- if .Values.operator.manageWorkloads }}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch"]
{{- /* delete: a gateway whose spec drops podDisruptionBudget loses the PDB the operator made (only ones it owns). */}}
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "delete"]
{{- /* Each gateway's pods get a ServiceAccount and a Role reading exactly their ConfigMap (get,
watch) and Secret (get), so they see a config change in about a second. RBAC lets the operator
grant only what it holds itself (get/watch on ConfigMaps and get on Secrets, above). No escalate
or bind. */}}
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create", "patch"]
{{- end }}
{{- end }}

{{/*
HarmonyNetworks are cluster-scoped: watching them takes a ClusterRole on that one kind, with or
without watchNamespaces (rbac.yaml gives a scoped operator exactly this, and nothing else
cluster-wide, unless operator.networks is false).
*/}}
{{- define "harmony.networkRules" -}}
- apiGroups: ["harmony.runbeam.io"]
  resources: ["harmonynetworks"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["harmony.runbeam.io"]
  resources: ["harmonynetworks/status"]
  verbs: ["patch"]
{{- end }}

{{/*
Cluster-wide only (the ClusterRole): HarmonyNetworks, and the namespaces whose labels choose their
members. A scoped operator reads only its own namespaces, one GET each (a Role per namespace). Network
CA Secrets, peering tokens and stored peer imports live in the release namespace and are covered by
the Secret and ConfigMap rules above (scoped: by the release namespace's networks Role).
*/}}
{{- define "harmony.clusterRules" -}}
{{ include "harmony.networkRules" . }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- /* HarmonyNetwork spec.ca.mode CertManager: one cert-manager Certificate per member gateway, in
its org's namespace. Static (RBAC cannot follow a field of a network), harmless without cert-manager:
no such resource exists then. The Secrets cert-manager fills are read one by one, as above. */}}
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["list", "create", "patch", "delete"]
- apiGroups: ["cert-manager.io"]
  resources: ["certificaterequests"]
  verbs: ["list"]
{{- if .Values.gatewayAPI.enabled }}
{{- /* Gateway API: GatewayClass is cluster-scoped, and routes and grants cross namespaces. Backends
are Services and their EndpointSlices (pod IPs); certificate Secrets are read one by one, as above. */}}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gatewayclasses", "gateways", "httproutes", "referencegrants"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gatewayclasses/status", "gateways/status", "httproutes/status"]
  verbs: ["patch", "update"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/*
harmony.webhookNamespaceSelector as the LabelSelector the operator's parseLabelSelector
(operator/src/webhook/config.ts) makes of it, for the chart's MutatingWebhookConfiguration:
key=value (or ==) into matchLabels; key!=value, key in (...), key notin (...), key and !key into
matchExpressions, in order, with in/notin values deduplicated and sorted. test/chart.test.ts
checks that both agree. Anything else fails the render, naming the part.
*/}}
{{- define "harmony.webhookNamespaceLabelSelector" -}}
{{- $matchLabels := dict }}
{{- $exprs := list }}
{{- $sel := include "harmony.webhookNamespaceSelector" . }}
{{- range $raw := regexFindAll "[^,(]*(\\([^)]*\\))?[^,]*" $sel -1 }}
{{- $part := trim $raw }}
{{- if not $part }}
{{- else if regexMatch "^\\S+\\s+(in|notin)\\s*\\([^()]*\\)$" $part }}
{{- $key := regexReplaceAll "^(\\S+)\\s+(in|notin)\\s*\\(([^()]*)\\)$" $part "${1}" }}
{{- $op := ternary "In" "NotIn" (eq (regexReplaceAll "^(\\S+)\\s+(in|notin)\\s*\\(([^()]*)\\)$" $part "${2}") "in") }}
{{- $values := list }}
{{- range splitList "," (regexReplaceAll "^(\\S+)\\s+(in|notin)\\s*\\(([^()]*)\\)$" $part "${3}") }}
{{- $values = append $values (trim .) }}
{{- end }}
{{- $exprs = append $exprs (dict "key" $key "operator" $op "values" ($values | uniq | sortAlpha)) }}
{{- else if regexMatch "^[^=!\\s]+\\s*!=\\s*\\S*$" $part }}
{{- $exprs = append $exprs (dict "key" (regexReplaceAll "^([^=!\\s]+)\\s*!=\\s*(\\S*)$" $part "${1}") "operator" "NotIn" "values" (list (regexReplaceAll "^([^=!\\s]+)\\s*!=\\s*(\\S*)$" $part "${2}"))) }}
{{- else if regexMatch "^[^=!\\s]+\\s*==?\\s*\\S*$" $part }}
{{- $_ := set $matchLabels (regexReplaceAll "^([^=!\\s]+)\\s*==?\\s*(\\S*)$" $part "${1}") (regexReplaceAll "^([^=!\\s]+)\\s*==?\\s*(\\S*)$" $part "${2}") }}
{{- else if regexMatch "^!\\s*\\S+$" $part }}
{{- $exprs = append $exprs (dict "key" (regexReplaceAll "^!\\s*(\\S+)$" $part "${1}") "operator" "DoesNotExist") }}
{{- else if regexMatch "^\\S+$" $part }}
{{- $exprs = append $exprs (dict "key" $part "operator" "Exists") }}
{{- else }}
{{- fail (printf "webhook.namespaceSelector %q: %q is not key, !key, key=value, key!=value, key in (...) or key notin (...)" $sel $part) }}
{{- end }}
{{- end }}
{{- $out := dict }}
{{- if $matchLabels }}{{ $_ := set $out "matchLabels" $matchLabels }}{{ end }}
{{- if $exprs }}{{ $_ := set $out "matchExpressions" $exprs }}{{ end }}
{{- toJson $out }}
{{- end }}
