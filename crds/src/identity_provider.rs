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

impl IdentityProviderConfiguration {
    /// The client id of every client in the spec, by client name, once the configuration is
    /// Ready with all of them registered; otherwise what it still waits for.
    pub fn client_ids(&self) -> Result<BTreeMap<String, String>, String> {
        let status = self.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            let name = self.metadata.name.as_deref().unwrap_or_default();
            let why = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default();
            return Err(format!(
                "waiting for IdentityProviderConfiguration {name} to become Ready{why}"
            ));
        }
        self.spec
            .clients
            .iter()
            .map(|client| {
                let id = status
                    .managed_clients
                    .get(&client.client_name)
                    .map(|m| m.client_id.clone())
                    .filter(|id| !id.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "waiting for client {} to get a client id",
                            client.client_name
                        )
                    })?;
                Ok((client.client_name.clone(), id))
            })
            .collect()
    }
}

/// How kcp reads a user out of a realm's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// The claim that is the user name (`email`).
    pub user: String,
    /// The claim listing the groups (`groups`).
    pub groups: String,
    /// Take the user claim whether or not `email_verified` is true (development only).
    pub allow_unverified_emails: bool,
}

/// A kcp WorkspaceAuthenticationConfiguration `name` with one JWT authenticator: tokens of
/// `issuer` for any of `audiences`, the user and groups read as `claims` says, the issuer's
/// certificate checked against `issuer_ca` (PEM) when given, else the system's roots.
pub fn authentication_configuration(
    name: &str,
    issuer: &str,
    audiences: &[String],
    claims: &TokenClaims,
    issuer_ca: Option<&str>,
) -> kcp::types::tenancy::WorkspaceAuthenticationConfiguration {
    use serde_json::{Value, json};
    let (username, validation): (Value, Vec<Value>) = if claims.allow_unverified_emails {
        (
            json!({"expression": format!("claims.{}", claims.user)}),
            vec![json!({
                "expression": "claims.?email_verified.orValue(true) == true || claims.?email_verified.orValue(true) == false",
                "message": "email_verified must be a boolean",
            })],
        )
    } else {
        (json!({"claim": claims.user, "prefix": ""}), Vec::new())
    };
    let mut jwt = json!({
        "issuer": {
            "url": issuer,
            "audiences": audiences,
            "audienceMatchPolicy": "MatchAny",
        },
        "claimMappings": {
            "username": username,
            "groups": {"claim": claims.groups, "prefix": ""},
        },
    });
    if !validation.is_empty() {
        jwt["claimValidationRules"] = Value::Array(validation);
    }
    if let Some(ca) = issuer_ca {
        jwt["issuer"]["certificateAuthority"] = json!(ca);
    }
    kcp::types::tenancy::WorkspaceAuthenticationConfiguration::new(
        name,
        kcp::types::tenancy::WorkspaceAuthenticationConfigurationSpec { jwt: vec![jwt] },
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn ready(status: &str, message: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: "Reason".into(),
            message: message.into(),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    #[test]
    fn client_ids_wait_for_ready_and_every_client_and_say_why() {
        let client = |name: &str| IdentityProviderClient {
            client_name: name.into(),
            redirect_uris: vec!["https://x/*".into()],
            ..Default::default()
        };
        let mut idp = IdentityProviderConfiguration::new(
            "welcome",
            IdentityProviderConfigurationSpec {
                registration_allowed: None,
                clients: vec![client("portal"), client("kubectl")],
            },
        );
        let waiting = idp.client_ids().unwrap_err();
        assert_eq!(
            waiting,
            "waiting for IdentityProviderConfiguration welcome to become Ready"
        );
        let mut status = IdentityProviderConfigurationStatus {
            conditions: vec![ready("False", "Keycloak at https://k did not answer")],
            ..Default::default()
        };
        idp.status = Some(status.clone());
        assert!(
            idp.client_ids()
                .unwrap_err()
                .ends_with(": Keycloak at https://k did not answer")
        );
        status.conditions = vec![ready("True", "")];
        status.managed_clients.insert(
            "portal".into(),
            ManagedClient {
                client_id: "c-portal".into(),
                ..Default::default()
            },
        );
        idp.status = Some(status.clone());
        assert_eq!(
            idp.client_ids().unwrap_err(),
            "waiting for client kubectl to get a client id"
        );
        status.managed_clients.insert(
            "kubectl".into(),
            ManagedClient {
                client_id: "c-kubectl".into(),
                ..Default::default()
            },
        );
        idp.status = Some(status);
        let ids = idp.client_ids().unwrap();
        assert_eq!(ids["portal"], "c-portal");
        assert_eq!(ids["kubectl"], "c-kubectl");
    }
}
