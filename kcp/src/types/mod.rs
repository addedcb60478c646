//! The kcp API kinds the operators use, as kube-rs resources.
//!
//! Write versions follow kcp's storage versions: `tenancy.kcp.io/v1alpha1`, `core.kcp.io/v1alpha1`,
//! `apis.kcp.io/v1alpha2` for APIExport and APIBinding, `apis.kcp.io/v1alpha1` for
//! APIResourceSchema and APIExportEndpointSlice. Fields this crate does not model are dropped on
//! deserialisation, so callers that update kcp objects use patches, never whole-object replaces.

pub mod apis;
pub mod core;
pub mod tenancy;

use serde::{Deserialize, Serialize};

/// kcp's own condition type (kcp's `conditionsv1alpha1.Condition`), used on Workspaces,
/// WorkspaceTypes, LogicalClusters and APIs objects.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KcpCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether the condition of `type_` in `conditions` has status `True`.
pub fn condition_is_true(conditions: &[KcpCondition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
