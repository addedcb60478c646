//! `core.kcp.io/v1alpha1`: LogicalCluster, the singleton `cluster` in every workspace.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::KcpCondition;

/// The name of the one LogicalCluster object in every logical cluster.
pub const LOGICAL_CLUSTER_NAME: &str = "cluster";

/// The lifecycle phase of a logical cluster (and of its Workspace).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum LogicalClusterPhase {
    Scheduling,
    Initializing,
    Ready,
    Unavailable,
    Inactive,
    Terminating,
    Deleting,
    /// A phase this client does not know yet; kept verbatim.
    #[serde(untagged)]
    Other(String),
}

/// The LogicalCluster: a workspace's own view of itself.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "core.kcp.io",
    version = "v1alpha1",
    kind = "LogicalCluster",
    status = "LogicalClusterStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct LogicalClusterSpec {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub directly_deletable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<LogicalClusterOwner>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initializers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminators: Vec<String>,
}

/// The object that owns a logical cluster, normally the parent's Workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalClusterOwner {
    pub api_version: String,
    pub resource: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub cluster: String,
    pub uid: String,
}

/// Observed state of a LogicalCluster.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct LogicalClusterStatus {
    #[serde(default, rename = "URL", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LogicalClusterPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initializers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminators: Vec<String>,
}
