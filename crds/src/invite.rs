//! `Invite`: invites a user, by e-mail address, into an account.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the API server accepts as an e-mail address: a non-empty local part of RFC 5322
/// "atext" characters and dots, `@`, then one or more dot-separated DNS labels. Rejects empty
/// labels (`a@b..com`), a second `@`, and spaces.
pub const EMAIL_PATTERN: &str = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";

/// The desired state of an Invite.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "Invite",
    status = "InviteStatus",
    doc = "An Invite asks the identity provider to invite a user into the organisation of the \
           workspace it is created in.",
    printcolumn = r#"{"name":"Email","type":"string","jsonPath":".spec.email"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
pub struct InviteSpec {
    /// The e-mail address of the user to invite.
    #[schemars(email, regex(pattern = EMAIL_PATTERN))]
    pub email: String,
}

/// The observed state of an Invite.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteStatus {
    /// `Ready` and `Invite`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
