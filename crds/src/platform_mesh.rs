//! `PlatformMesh`: one installation of Platform Mesh, on the hosting Kubernetes cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelectorRequirement, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::account::preserve_unknown_object;

/// The desired state of a Platform Mesh installation.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "PlatformMesh",
    namespaced,
    status = "PlatformMeshStatus",
    doc = "A PlatformMesh is one installation of Platform Mesh. The platform-mesh-operator sets \
           up kcp for it (workspaces, WorkspaceTypes, APIResourceSchemas, APIExports, the \
           endpoint slice, bindings, the orgs Store, webhook configurations), writes a \
           kubeconfig Secret per provider connection and kcp's kubeconfig for the \
           authorization webhook, and can render a Flux HelmRelease per component.",
    printcolumn = r#"{"name":"KCP","type":"string","jsonPath":".status.conditions[?(@.type==\"KcpsetupSubroutine\")].status"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.conditions[?(@.type==\"ProvidersecretSubroutine\")].status"}"#,
    printcolumn = r#"{"name":"Webhook","type":"string","jsonPath":".status.conditions[?(@.type==\"AuthorizationwebhookSubroutine\")].status"}"#,
    printcolumn = r#"{"name":"Deployment","type":"string","jsonPath":".status.conditions[?(@.type==\"DeploymentSubroutine\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMeshSpec {
    /// How the installation is reached from outside: the external kcp address
    /// (`https://kcp.api.<baseDomain>:<port>`) of provider connections marked `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
    /// kcp setup settings: provider connections, extra default bindings, extra workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kcp: Option<KcpSettings>,
    /// Helm values per component, merged over the operator's defaults into the Flux
    /// HelmReleases: `{services: {<component>: {enabled: bool, values: {...}}}}`, or the same
    /// map without `services`. Components: account-operator, security-operator,
    /// rebac-authz-webhook; an unknown name or a malformed entry is an InvalidValues
    /// condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub values: Option<serde_json::Value>,
    /// Accepted for compatibility with upstream manifests; not used (upstream does not read it
    /// either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub infra_values: Option<serde_json::Value>,
    /// Accepted for compatibility with upstream manifests (OCM component resolution); not
    /// used: charts come from the operator's `--chart-repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocm: Option<OcmSettings>,
    /// Accepted for compatibility with upstream manifests; not used: this operator has no
    /// feature toggles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_toggles: Vec<FeatureToggle>,
    /// Accepted for compatibility with upstream manifests; not used: readiness is the
    /// subroutines' conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitSettings>,
    /// Accepted for compatibility with upstream manifests; not used: there is no profile,
    /// component values come from `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_config_map: Option<ConfigMapReference>,
}

/// How the installation is reached from outside.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    /// The public base domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    /// The public port; defaults to 8443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The public protocol; defaults to `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// kcp bootstrap settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KcpSettings {
    /// Provider kubeconfigs to write; when set, replaces the built-in list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_connections: Vec<ProviderConnection>,
    /// Provider kubeconfigs to write in addition to the configured or built-in list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_provider_connections: Vec<ProviderConnection>,
    /// Extra default APIBindings for the WorkspaceTypes this operator manages, each named by
    /// `workspaceTypePath` (`root:org`, `root:account`, …).
    #[serde(
        default,
        rename = "extraDefaultAPIBindings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_default_api_bindings: Vec<DefaultApiBinding>,
    /// Extra workspaces to create after the tree, each in its parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_workspaces: Vec<ExtraWorkspace>,
}

/// A kubeconfig Secret for a provider, pointing at a kcp workspace or virtual workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderConnection {
    /// The Secret to write (data key `kubeconfig`), in `namespace`; a lowercase DNS name.
    pub secret: String,
    /// The kcp workspace path, e.g. `root:platform-mesh-system`: the kubeconfig's workspace, or
    /// the workspace of the slice or export named below. Required except with `rawPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A verbatim URL path (e.g. `/services/marketplace`); admin mode only, overrides `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_path: Option<String>,
    /// An APIExportEndpointSlice in `path` whose first endpoint URL becomes the server URL.
    /// While it lists none the connection is Pending and no Secret is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_slice_name: Option<String>,
    /// Scoped mode: the APIExport in `path` whose resources and claims define the RBAC; the
    /// server is the workspace `path`. Exactly one of this and `endpointSliceName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_export_name: Option<String>,
    /// Use the operator's kcp admin credentials. Unset or false writes a scoped kubeconfig:
    /// a ServiceAccount token, renewed when a third of its lifetime is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_auth: Option<bool>,
    /// Use the external kcp address (`https://kcp.api.<baseDomain>:<port>`) instead of the
    /// in-cluster front proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<bool>,
    /// The namespace of the Secret; defaults to the PlatformMesh's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A default APIBinding to add to a bootstrap WorkspaceType.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultApiBinding {
    /// The WorkspaceType, as `<workspace path>:<type name>`.
    pub workspace_type_path: String,
    /// The APIExport's name.
    pub export: String,
    /// The workspace path of the APIExport.
    pub path: String,
}

/// An extra workspace to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct ExtraWorkspace {
    /// The workspace path, `<parent path>:<name>`.
    pub path: String,
    /// The workspace's type.
    #[serde(rename = "type")]
    pub type_: WorkspaceTypeRef,
}

/// A WorkspaceType by name and workspace path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct WorkspaceTypeRef {
    /// The type's name.
    pub name: String,
    /// The workspace path holding the type.
    pub path: String,
}

/// Where component versions come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OcmSettings {
    /// The OCM Repository object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<NamedRef>,
    /// The OCM Component object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<NamedRef>,
    /// Prefix prepended to the OCM reference path of every rendered resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_path: Vec<NamedRef>,
}

/// An object by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct NamedRef {
    /// The object's name.
    pub name: String,
}

/// An optional feature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct FeatureToggle {
    /// The feature's name.
    pub name: String,
    /// Feature parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
}

/// Readiness gates.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitSettings {
    /// The resources to wait for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_types: Vec<WaitResource>,
}

/// Resources of one kind that must meet a condition.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitResource {
    /// API group of the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version of the resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind of the resources.
    pub kind: String,
    /// Only the resource of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only resources in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only resources with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Only resources matching these label expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
    /// The condition status to wait for; defaults to `True`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_status: Option<String>,
    /// The condition type to wait for; defaults to `Ready`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_type: Option<String>,
}

/// A ConfigMap by name and optional namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct ConfigMapReference {
    /// The ConfigMap's name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The ConfigMap's namespace; defaults to the PlatformMesh's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The observed state of a Platform Mesh installation.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMeshStatus {
    /// One condition per reconcile step plus the summary `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Accepted for compatibility with upstream; not written by this operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reconcile_time: Option<Time>,
    /// Accepted for compatibility with upstream (which wrote a fixed list); not written by this
    /// operator: the KcpsetupSubroutine condition says which phase of the tree it waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kcp_workspaces: Vec<KcpWorkspaceStatus>,
}

/// A bootstrap workspace and its phase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct KcpWorkspaceStatus {
    /// The workspace path.
    pub name: String,
    /// The workspace's phase.
    pub phase: String,
}
