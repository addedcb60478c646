//! `tenancy.kcp.io/v1alpha1`: Workspace, WorkspaceType and WorkspaceAuthenticationConfiguration.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::KcpCondition;
use super::core::LogicalClusterPhase;

/// A reference to a WorkspaceType by name and the path of the workspace that holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkspaceTypeReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// A Workspace: a child logical cluster in the workspace tree.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "tenancy.kcp.io",
    version = "v1alpha1",
    kind = "Workspace",
    status = "WorkspaceStatus",
    schema = "disabled"
)]
pub struct WorkspaceSpec {
    /// The WorkspaceType; defaults to the parent type's `defaultChildWorkspaceType`. Immutable.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<WorkspaceTypeReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<WorkspaceLocation>,
    /// The logical-cluster name, set by kcp once scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The URL of the workspace, set by kcp (the JSON key is literally `URL`).
    #[serde(default, rename = "URL", skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Where a workspace is scheduled.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct WorkspaceLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Observed state of a Workspace.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct WorkspaceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LogicalClusterPhase>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initializers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminators: Vec<String>,
}

impl Workspace {
    /// The phase kcp reports, if any.
    pub fn phase(&self) -> Option<LogicalClusterPhase> {
        self.status.as_ref().and_then(|s| s.phase.clone())
    }

    /// Whether kcp reports the workspace Ready.
    pub fn is_ready(&self) -> bool {
        self.phase() == Some(LogicalClusterPhase::Ready)
    }
}

/// A WorkspaceType: what a workspace of this type is initialised with and may contain.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "tenancy.kcp.io",
    version = "v1alpha1",
    kind = "WorkspaceType",
    status = "WorkspaceTypeStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTypeSpec {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initializer: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminator: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend: Option<WorkspaceTypeExtension>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_workspace_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_child_workspace_type: Option<WorkspaceTypeReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_children: Option<WorkspaceTypeSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_parents: Option<WorkspaceTypeSelector>,
    #[serde(
        default,
        rename = "defaultAPIBindings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_api_bindings: Vec<ApiExportReference>,
    #[serde(
        default,
        rename = "defaultAPIBindingLifecycle",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_api_binding_lifecycle: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authentication_configurations: Vec<AuthenticationConfigurationReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initializer_permissions: Vec<PolicyRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminator_permissions: Vec<PolicyRule>,
}

/// The types a WorkspaceType extends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkspaceTypeExtension {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub with: Vec<WorkspaceTypeReference>,
}

/// Which types are allowed as parents or children.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WorkspaceTypeSelector {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<WorkspaceTypeReference>,
}

/// An APIExport bound by default into workspaces of a type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiExportReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    pub export: String,
}

/// A WorkspaceAuthenticationConfiguration used by workspaces of a type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct AuthenticationConfigurationReference {
    pub name: String,
}

/// Observed state of a WorkspaceType.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTypeStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<KcpCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_workspaces: Vec<TypeVirtualWorkspace>,
}

/// A virtual-workspace URL kcp publishes for a WorkspaceType, one per shard and kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TypeVirtualWorkspace {
    pub url: String,
    /// `initializing` or `terminating`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
}

impl WorkspaceType {
    /// Whether kcp reports the type Ready.
    pub fn is_ready(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| super::condition_is_true(&s.conditions, "Ready"))
    }

    /// The virtual-workspace URLs of one kind (`initializing` or `terminating`).
    pub fn virtual_workspace_urls<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> {
        self.status
            .iter()
            .flat_map(|s| s.virtual_workspaces.iter())
            .filter(move |vw| vw.type_ == kind)
            .map(|vw| vw.url.as_str())
    }
}

/// How workspaces of the types that reference it authenticate users: JWT authenticators, as
/// in Kubernetes' structured authentication configuration (kept as JSON; the operators build
/// them whole).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "tenancy.kcp.io",
    version = "v1alpha1",
    kind = "WorkspaceAuthenticationConfiguration",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceAuthenticationConfigurationSpec {
    /// The JWT authenticators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt: Vec<serde_json::Value>,
}
