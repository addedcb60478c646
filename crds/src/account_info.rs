//! `AccountInfo`: the singleton `account` in every account's workspace, describing where the
//! account sits in the tree.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The name of the one AccountInfo in each account workspace.
pub const ACCOUNT_INFO_NAME: &str = "account";
/// Finalizer the account-operator's AccountInfo controller holds until no Accounts remain in
/// the workspace.
pub const ACCOUNT_INFO_FINALIZER: &str = "account.core.platform-mesh.io/info";

/// Where an account sits in the tree.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "AccountInfo",
    status = "AccountInfoStatus",
    doc = "AccountInfo describes the account whose workspace it lives in: the account itself, its \
           parent, its organisation, the kcp CA, and the OpenFGA store and OIDC clients of the \
           organisation. There is exactly one, named `account`, in every account workspace."
)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfoSpec {
    /// The account this workspace belongs to.
    pub account: AccountLocation,
    /// The parent account; absent for organisations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_account: Option<AccountLocation>,
    /// The organisation at the top of this account's subtree (for an organisation, itself).
    pub organization: AccountLocation,
    /// The organisation's OpenFGA store.
    pub fga: FgaInfo,
    /// How to reach kcp.
    pub cluster_info: ClusterInfo,
    /// The organisation's OIDC issuer and clients, copied down from the organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcInfo>,
}

/// An account's place in kcp.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLocation {
    /// The Account object's name.
    pub name: String,
    /// The logical-cluster name of the workspace created for the account.
    pub generated_cluster_id: String,
    /// The logical-cluster name of the workspace that holds the Account object.
    pub origin_cluster_id: String,
    /// The workspace path, e.g. `root:orgs:acme:team-a`.
    pub path: String,
    /// The workspace URL.
    pub url: String,
    /// The account type (`org`, `account`, …).
    #[serde(rename = "type")]
    pub type_: String,
}

/// The organisation's OpenFGA store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct FgaInfo {
    /// The store.
    pub store: StoreInfo,
}

/// An OpenFGA store reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct StoreInfo {
    /// The OpenFGA store id; empty until known.
    pub id: String,
}

/// How clients reach kcp.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct ClusterInfo {
    /// PEM-encoded CA certificate of kcp's serving certificate.
    pub ca: String,
}

/// The organisation's OpenID Connect configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcInfo {
    /// The OIDC issuer URL.
    pub issuer_url: String,
    /// The OIDC clients, by client name.
    pub clients: BTreeMap<String, ClientInfo>,
}

/// One OIDC client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// The client id at the issuer.
    pub client_id: String,
}

/// The observed state of an AccountInfo. Upstream's status is empty; the conditions are an
/// addition that shows why an AccountInfo is held (Accounts still exist in its workspace).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfoStatus {
    /// One condition per reconcile step plus the summary `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
