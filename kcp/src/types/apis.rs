//! `apis.kcp.io`: APIResourceSchema and APIExportEndpointSlice (v1alpha1), APIExport and
//! APIBinding (v1alpha2).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinitionNames, CustomResourceSubresources,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::KcpCondition;

/// An immutable, CRD-like schema of one resource, published through an APIExport.
#[derive(CustomResource, Clone, Debug, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha1",
    kind = "APIResourceSchema",
    root = "ApiResourceSchema",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceSchemaSpec {
    pub group: String,
    pub names: CustomResourceDefinitionNames,
    /// `Cluster` or `Namespaced`.
    pub scope: String,
    pub versions: Vec<ApiResourceVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_validation: Option<String>,
}

/// One version of an APIResourceSchema, as in a CRD but with the schema as raw JSON.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceVersion {
    pub name: String,
    pub served: bool,
    pub storage: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecation_warning: Option<String>,
    /// The OpenAPI v3 schema (`openAPIV3Schema` of a CRD version).
    pub schema: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresources: Option<CustomResourceSubresources>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_printer_columns: Vec<CustomResourceColumnDefinition>,
}

/// A set of resources a provider shares with the workspaces that bind it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha2",
    kind = "APIExport",
    root = "ApiExport",
    status = "ApiExportStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceSchema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximal_permission_policy: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_claims: Vec<PermissionClaim>,
}

/// One exported resource and the APIResourceSchema that defines it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResourceSchema {
    /// The plural resource name.
    pub name: String,
    pub group: String,
    /// The APIResourceSchema's name.
    pub schema: String,
    pub storage: ResourceSchemaStorage,
}

/// How an exported resource is stored; CRD storage is the only kind this project uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResourceSchemaStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crd: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ResourceSchemaStorage {
    /// Plain CRD storage (`crd: {}`).
    pub fn crd() -> Self {
        Self {
            crd: Some(serde_json::Map::new()),
        }
    }
}

/// Access an export asks for to resources it does not own, in the binding workspaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionClaim {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub resource: String,
    pub verbs: Vec<String>,
    /// The identity hash of the export that serves `resource`, for resources served by another
    /// export (such as `tenancy.kcp.io` workspaces); empty for built-in resources.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_hash: String,
}

/// Observed state of an APIExport.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
}

/// A workspace's binding to an APIExport.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha2",
    kind = "APIBinding",
    root = "ApiBinding",
    status = "ApiBindingStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ApiBindingSpec {
    pub reference: BindingReference,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_claims: Vec<AcceptablePermissionClaim>,
}

/// What an APIBinding binds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct BindingReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportBindingReference>,
}

/// An APIExport by workspace path and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExportBindingReference {
    /// The workspace path of the export; empty means the binding's own workspace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub name: String,
}

/// A permission claim as a binding accepts or rejects it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct AcceptablePermissionClaim {
    #[serde(flatten)]
    pub claim: PermissionClaim,
    pub selector: PermissionClaimSelector,
    /// `Accepted` or `Rejected`.
    pub state: String,
}

/// Which objects a claim applies to.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionClaimSelector {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

impl AcceptablePermissionClaim {
    /// Accept `claim` for every object.
    pub fn accept_all(claim: PermissionClaim) -> Self {
        Self {
            claim,
            selector: PermissionClaimSelector {
                match_all: true,
                ..Default::default()
            },
            state: "Accepted".to_owned(),
        }
    }
}

/// Observed state of an APIBinding.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiBindingStatus {
    /// The logical-cluster name of the bound export's workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_export_cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
}

impl ApiBinding {
    /// Whether kcp reports the binding Ready.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| super::condition_is_true(&s.conditions, "Ready"))
    }
}

/// The virtual-workspace URLs (one per shard) through which a provider reaches its consumers.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "apis.kcp.io",
    version = "v1alpha1",
    kind = "APIExportEndpointSlice",
    root = "ApiExportEndpointSlice",
    status = "ApiExportEndpointSliceStatus",
    schema = "disabled"
)]
pub struct ApiExportEndpointSliceSpec {
    pub export: ExportBindingReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// Observed state of an APIExportEndpointSlice.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportEndpointSliceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ApiExportEndpoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
}

/// One shard's virtual-workspace URL for an export.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiExportEndpoint {
    pub url: String,
}

impl ApiExportEndpointSlice {
    /// The published endpoint URLs; empty while no shard hosts a binding.
    pub fn endpoint_urls(&self) -> impl Iterator<Item = &str> {
        self.status
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .map(|e| e.url.as_str())
    }
}
