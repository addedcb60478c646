//! `Account`: a node in the account tree; the account-operator turns it into a workspace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Finalizer the account-operator's Workspace subroutine holds on every Account.
pub const ACCOUNT_FINALIZER: &str = "account.core.platform-mesh.io/finalizer";
/// Finalizer the WorkspaceType subroutine holds on org Accounts.
pub const WORKSPACE_TYPE_FINALIZER: &str = "workspacetype.core.platform-mesh.io/finalizer";
/// Finalizer of the retired FGA subroutine; old objects may still carry it.
pub const LEGACY_FGA_FINALIZER: &str = "account.core.platform-mesh.io/fga";

/// Label on an org's WorkspaceTypes naming the org (the account-operator sets it; the
/// security-operator finds the types to give the org's authentication configuration by it).
pub const ORG_LABEL: &str = "core.platform-mesh.io/org";
/// The account type of an organisation (a top-level account in `root:orgs`).
pub const TYPE_ORG: &str = "org";
/// The account type of an account nested under an organisation or another account.
pub const TYPE_ACCOUNT: &str = "account";

/// The desired state of an Account.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "Account",
    status = "AccountStatus",
    doc = "An Account is a node in the Platform Mesh account tree. The account-operator creates a \
           kcp workspace for it (of the organisation's WorkspaceType) and an AccountInfo inside that \
           workspace.",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// The kind of account: `org` for an organisation, `account` for a nested account, or a
    /// custom type allowed by the operator's webhook. Immutable once created.
    #[serde(rename = "type")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.type is immutable"))]
    pub type_: String,

    /// Human-readable name shown in the portal. At most 255 characters.
    #[schemars(length(max = 255))]
    pub display_name: String,

    /// Free-text description of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// The user who created the account. The mutating webhook sets it from the requesting
    /// user on creation; the security-operator makes this user the account's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,

    /// Extension objects to instantiate for the account. Kept for compatibility with the
    /// upstream API; the operator does not act on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<Extension>>,

    /// Free-form data for other components (portal, UI). The operator does not read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::account::preserve_unknown_object")]
    pub data: Option<serde_json::Value>,
}

/// An extension object to instantiate for an account (upstream compatibility; unused).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// API version of the extension object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the extension object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Go template of the extension object's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::account::preserve_unknown_object")]
    pub metadata_go_template: Option<serde_json::Value>,
    /// Go template of the extension object's spec.
    #[schemars(schema_with = "crate::account::preserve_unknown_object")]
    pub spec_go_template: serde_json::Value,
    /// Condition type on the extension object that signals it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_condition_type: Option<String>,
}

/// The observed state of an Account.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// One condition per reconcile step (`WorkspaceTypeSubroutine`, `WorkspaceSubroutine`,
    /// `ManageAccountInfoSubroutine`, `WorkspaceReadySubroutine`) plus the summary `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the operator plans to look at the account again, if it has scheduled that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_reconcile_time: Option<Time>,
}

/// Schema of a free-form JSON object that the API server stores as given.
pub(crate) fn preserve_unknown_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The account-operator's admission webhooks as kcp calls them: the platform-mesh-operator
/// registers them in kcp, the account-operator serves them.
pub mod webhook {
    /// The mutating webhook's path (defaults `spec.creator`).
    pub const MUTATE_PATH: &str = "/mutate-core-platform-mesh-io-v1alpha1-account";
    /// The validating webhook's path (account type allow-list, organisation names).
    pub const VALIDATE_PATH: &str = "/validate-core-platform-mesh-io-v1alpha1-account";
    /// The MutatingWebhookConfiguration, upstream's name.
    pub const MUTATING_CONFIG: &str = "account-operator.webhooks.core.platform-mesh.io";
    /// The webhook inside it.
    pub const MUTATING_WEBHOOK: &str = "maccount.kb.io";
    /// The ValidatingWebhookConfiguration, upstream's name.
    pub const VALIDATING_CONFIG: &str = "organization-validator.webhooks.core.platform-mesh.io";
    /// The webhook inside it.
    pub const VALIDATING_WEBHOOK: &str = "organization.validation.platform-mesh.ui";
}
