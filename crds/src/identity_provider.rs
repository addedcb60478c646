//! `IdentityProviderConfiguration`: an organisation's identity-provider realm and OIDC clients.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Finalizer that unregisters the clients when the configuration goes.
pub const IDP_FINALIZER: &str = "core.platform-mesh.io/idp-finalizer";

/// The security-operator's validating webhook, as the platform-mesh-operator registers it in
/// kcp.
pub mod webhook {
    /// Where kcp sends the reviews, upstream's path.
    pub const VALIDATE_PATH: &str =
        "/validate-core-platform-mesh-io-v1alpha1-identityproviderconfiguration";
    /// The ValidatingWebhookConfiguration, upstream's name.
    pub const VALIDATING_CONFIG: &str =
        "identityproviderconfiguration-validator.webhooks.core.platform-mesh.io";
    /// The webhook inside it.
    pub const VALIDATING_WEBHOOK: &str =
        "identityproviderconfiguration.validation.platform-mesh.io";
}

/// The desired state of an IdentityProviderConfiguration.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "IdentityProviderConfiguration",
    status = "IdentityProviderConfigurationStatus",
    doc = "An IdentityProviderConfiguration describes the identity-provider realm of one \
           organisation (named after it) and the OIDC clients to keep registered there.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderConfigurationSpec {
    /// Whether users may register themselves in the realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_allowed: Option<bool>,
    /// The OIDC clients to keep registered.
    pub clients: Vec<IdentityProviderClient>,
}

/// An OIDC client to register.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderClient {
    /// `confidential` (client secret) or `public` (no client authentication).
    pub client_type: ClientType,
    /// The client's name at the identity provider; the key of `status.managedClients`.
    pub client_name: String,
    /// Allowed redirect URIs after login; at least one, since a client with none can never
    /// complete a login.
    #[schemars(length(min = 1))]
    pub redirect_uris: Vec<String>,
    /// Allowed redirect URIs after logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// The Secret (in `root:orgs`) that receives `client_secret` and `registration_access_token`.
    pub secret_ref: SecretReference,
}

/// How an OIDC client authenticates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// Authenticates with a client secret (`client_secret_basic`).
    #[default]
    Confidential,
    /// Does not authenticate (`none`), e.g. a browser application.
    Public,
}

/// A Secret by name and namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct SecretReference {
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace.
    pub namespace: String,
}

/// The observed state of an IdentityProviderConfiguration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderConfigurationStatus {
    /// The clients registered, by client name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub managed_clients: BTreeMap<String, ManagedClient>,
    /// `Ready` and `IdentityProviderConfiguration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A client registered through OIDC dynamic client registration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClient {
    /// The client id the identity provider assigned.
    pub client_id: String,
    /// The client's registration management URI.
    pub registration_client_uri: String,
    /// The Secret holding the client's credentials.
    pub secret_ref: SecretReference,
}
