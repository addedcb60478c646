//! `APIExportPolicy`: which accounts may bind an APIExport.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Finalizer that deletes the policy's tuples when it goes.
pub const API_EXPORT_POLICY_FINALIZER: &str = "system.platform-mesh.io/apiexportpolicy-finalizer";

/// The desired state of an APIExportPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "APIExportPolicy",
    root = "ApiExportPolicy",
    status = "ApiExportPolicyStatus",
    doc = "An APIExportPolicy grants the kcp `bind` verb on one APIExport to the accounts that \
           match its path expressions.",
    printcolumn = r#"{"name":"Export","type":"string","jsonPath":".spec.apiExportRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportPolicySpec {
    /// The APIExport the policy is about.
    #[serde(rename = "apiExportRef")]
    pub api_export_ref: ApiExportRef,
    /// Accounts allowed to bind: `root:orgs:<path>` for exactly that account,
    /// `root:orgs:<path>:*` for it and every descendant, `root:orgs:*` for every organisation.
    #[schemars(length(min = 1))]
    pub allow_path_expressions: Vec<String>,
}

/// An APIExport by workspace path and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportRef {
    /// The APIExport's name.
    pub name: String,
    /// The workspace path of the provider holding the export, e.g. `root:providers:httpbin`.
    pub cluster_path: String,
}

/// The observed state of an APIExportPolicy.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiExportPolicyStatus {
    /// The expressions whose tuples are written, used to delete stale ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_allow_expressions: Vec<String>,
    /// `Ready` plus one condition per reconcile step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
