//! The IdentityProviderConfiguration controller (role `system`, only with a Keycloak): the
//! organisation's realm, named after the object, and its OIDC clients, registered through
//! Dynamic Client Registration, each client's secret and registration token kept in the Secret
//! its `secretRef` names (in the object's own workspace, `root:orgs`), `status.managedClients`
//! saying what is registered. Clients that left the spec are unregistered and their Secrets
//! deleted; deleting the object deletes the Secrets and the realm, its users and clients with
//! it.
//!
//! A client that is registered as the spec says is left alone: DCR replaces the registration
//! token at every update, so updating on every resync would rewrite every Secret every time.
//! A registration token that was lost (a Secret deleted, a write that failed after the update)
//! is reissued through the admin API.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use crds::identity_provider::{
    ClientType, IDP_FINALIZER, IdentityProviderClient, IdentityProviderConfiguration,
    ManagedClient, SecretReference,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams};
use lifecycle::{Outcome, Subroutine, SubroutineError};
use serde_json::{Value, json};

use super::{Ctx, MANAGER, Settings, merge_params, new_controller};
use crate::controllers::keycloak::{KeycloakSettings, keycloak_failure};

/// The controller's name, as upstream.
pub const IDENTITY_PROVIDER_RECONCILER: &str = "identityproviderconfiguration";

/// The label naming the configuration a client Secret belongs to, as upstream.
pub const IDP_NAME_LABEL: &str = "core.platform-mesh.io/idp-name";
/// The label naming the client a Secret holds, as upstream.
pub const CLIENT_NAME_LABEL: &str = "core.platform-mesh.io/client-name";
/// The Secret keys, as upstream.
pub const CLIENT_SECRET_KEY: &str = "client_secret";
pub const REGISTRATION_TOKEN_KEY: &str = "registration_access_token";

/// Keycloak's own realm, never an organisation's: a configuration of that name would take
/// over the administrators' realm and delete it with itself.
pub const MASTER_REALM: &str = "master";

/// Builds the IdentityProviderConfiguration controller.
pub fn identity_provider_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<IdentityProviderConfiguration, Ctx> {
    new_controller(
        IDENTITY_PROVIDER_RECONCILER,
        setup,
        vec![Box::new(IdentityProviderSubroutine)],
        settings,
    )
}

/// The DCR registration a spec client asks for.
pub(super) fn registration(client: &IdentityProviderClient) -> keycloak::ClientRegistration {
    keycloak::ClientRegistration {
        name: client.client_name.clone(),
        public: client.client_type == ClientType::Public,
        redirect_uris: client.redirect_uris.clone(),
        post_logout_redirect_uris: client.post_logout_redirect_uris.clone().unwrap_or_default(),
    }
}

/// The Secret of one registered client: its secret (confidential clients only) and its
/// registration token, labelled with the configuration and client it belongs to.
pub(super) fn client_secret(
    idp: &str,
    client: &IdentityProviderClient,
    registered: &keycloak::RegisteredClient,
) -> Secret {
    let mut data = BTreeMap::new();
    if let Some(secret) = registered.client_secret.as_ref().filter(|s| !s.is_empty()) {
        data.insert(
            CLIENT_SECRET_KEY.to_owned(),
            ByteString(secret.clone().into_bytes()),
        );
    }
    if !registered.registration_access_token.is_empty() {
        data.insert(
            REGISTRATION_TOKEN_KEY.to_owned(),
            ByteString(registered.registration_access_token.clone().into_bytes()),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(client.secret_ref.name.clone()),
            namespace: Some(client.secret_ref.namespace.clone()),
            labels: Some(BTreeMap::from([
                (IDP_NAME_LABEL.to_owned(), idp.to_owned()),
                (CLIENT_NAME_LABEL.to_owned(), client.client_name.clone()),
            ])),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    }
}

/// The merge patch that makes `status.managedClients` equal to `wanted`: removed clients set
/// to null, since a merge patch keeps the keys it does not mention. None when nothing changes.
pub(super) fn managed_clients_patch(
    current: &BTreeMap<String, ManagedClient>,
    wanted: &BTreeMap<String, ManagedClient>,
) -> Option<Value> {
    if current == wanted {
        return None;
    }
    let mut clients = serde_json::Map::new();
    for name in current.keys().filter(|n| !wanted.contains_key(*n)) {
        clients.insert(name.clone(), Value::Null);
    }
    for (name, client) in wanted {
        clients.insert(name.clone(), json!(client));
    }
    Some(json!({ "status": { "managedClients": clients } }))
}

/// Why a realm name can never be an organisation's, if it cannot.
pub fn refused_realm(name: &str, deny_list: &[String]) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return Some("the realm name is empty".to_owned());
    }
    if name == MASTER_REALM {
        return Some(format!(
            "{MASTER_REALM} is Keycloak's administration realm, never an organisation's"
        ));
    }
    deny_list
        .iter()
        .any(|denied| denied == name)
        .then(|| format!("realm {name} is on the deny list (--idp-realm-deny-list)"))
}

/// Keeps the realm and its clients (condition `IdentityProviderConfiguration`, as upstream).
#[derive(Debug)]
struct IdentityProviderSubroutine;

#[async_trait]
impl Subroutine<IdentityProviderConfiguration, Ctx> for IdentityProviderSubroutine {
    fn name(&self) -> &str {
        "IdentityProviderConfiguration"
    }

    fn finalizers(&self, _: &IdentityProviderConfiguration) -> Vec<String> {
        vec![IDP_FINALIZER.to_owned()]
    }

    async fn process(
        &self,
        idp: &IdentityProviderConfiguration,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let keycloak = ctx.keycloak()?;
        let realm = idp.name_any();
        if let Some(why) = refused_realm(&realm, &keycloak.realm_deny_list) {
            return Err(SubroutineError::permanent("RealmNotAllowed", why));
        }
        let secrets = ClientSecrets::of(ctx)?;
        keycloak
            .api
            .apply_realm(&keycloak.realm(&realm, idp.spec.registration_allowed))
            .await
            .map_err(|e| keycloak_failure(format!("applying realm {realm}"), e))?;

        let current = idp
            .status
            .as_ref()
            .map(|s| s.managed_clients.clone())
            .unwrap_or_default();
        for (name, managed) in &current {
            if idp.spec.clients.iter().any(|c| &c.client_name == name) {
                continue;
            }
            if let Some(token) = secrets.registration_token(&managed.secret_ref).await? {
                keycloak
                    .api
                    .delete_client(&managed.registration_client_uri, &token)
                    .await
                    .map_err(|e| keycloak_failure(format!("unregistering client {name}"), e))?;
            }
            secrets.delete(&managed.secret_ref).await?;
        }

        let existing =
            keycloak.api.clients(&realm).await.map_err(|e| {
                keycloak_failure(format!("listing the clients of realm {realm}"), e)
            })?;
        let mut wanted = BTreeMap::new();
        for client in &idp.spec.clients {
            let desired = registration(client);
            let found = existing
                .iter()
                .find(|c| c.name.as_deref() == Some(client.client_name.as_str()));
            let token = secrets.registration_token(&client.secret_ref).await?;
            let registered = match (found, token) {
                (None, _) => {
                    let registered = keycloak
                        .api
                        .register_client(&realm, &desired)
                        .await
                        .map_err(|e| {
                            keycloak_failure(
                                format!("registering client {}", client.client_name),
                                e,
                            )
                        })?;
                    secrets.write(&realm, client, &registered).await?;
                    registered.client_id
                }
                (Some(found), Some(_)) if found.matches(&desired) => found.client_id.clone(),
                (Some(found), token) => {
                    let registered = update(keycloak, &realm, found, token, &desired).await?;
                    secrets.write(&realm, client, &registered).await?;
                    registered.client_id
                }
            };
            wanted.insert(
                client.client_name.clone(),
                ManagedClient {
                    registration_client_uri: keycloak
                        .api
                        .registration_client_uri(&realm, &registered),
                    client_id: registered,
                    secret_ref: client.secret_ref.clone(),
                },
            );
        }
        if let Some(patch) = managed_clients_patch(&current, &wanted) {
            ctx.runtime
                .api::<IdentityProviderConfiguration>()
                .map_err(|e| SubroutineError::transient_from("client", e))?
                .patch_status(&realm, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| SubroutineError::kube("recording the managed clients", e))?;
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(
        &self,
        idp: &IdentityProviderConfiguration,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let keycloak = ctx.keycloak()?;
        let realm = idp.name_any();
        let secrets = ClientSecrets::of(ctx)?;
        let mut refs: Vec<&SecretReference> =
            idp.spec.clients.iter().map(|c| &c.secret_ref).collect();
        if let Some(status) = &idp.status {
            refs.extend(status.managed_clients.values().map(|m| &m.secret_ref));
        }
        for secret in refs {
            secrets.delete(secret).await?;
        }
        // The realm takes its clients and users with it, so no client is unregistered one by
        // one. A name that was never allowed never had a realm of ours.
        if refused_realm(&realm, &keycloak.realm_deny_list).is_none() {
            keycloak
                .api
                .delete_realm(&realm)
                .await
                .map_err(|e| keycloak_failure(format!("deleting realm {realm}"), e))?;
        }
        Ok(Outcome::Ok)
    }
}

/// A DCR update of `found` to `desired`, with the registration token of its Secret, or a new
/// one when the Secret has none or Keycloak no longer takes it (401).
async fn update(
    keycloak: &KeycloakSettings,
    realm: &str,
    found: &keycloak::ClientSummary,
    token: Option<String>,
    desired: &keycloak::ClientRegistration,
) -> Result<keycloak::RegisteredClient, SubroutineError> {
    let what = || format!("updating client {}", desired.name);
    let reissue = || async {
        keycloak
            .api
            .new_registration_token(realm, &found.id)
            .await
            .map_err(|e| keycloak_failure(format!("reissuing the token of {}", desired.name), e))
    };
    let registered = |token: String| keycloak::RegisteredClient {
        client_id: found.client_id.clone(),
        client_secret: None,
        registration_access_token: token,
        registration_client_uri: keycloak
            .api
            .registration_client_uri(realm, &found.client_id),
    };
    let token = match token {
        Some(token) => token,
        None => reissue().await?,
    };
    match keycloak
        .api
        .update_client(&registered(token), desired)
        .await
    {
        Err(keycloak::Error::Refused { status, .. }) if status.as_u16() == 401 => keycloak
            .api
            .update_client(&registered(reissue().await?), desired)
            .await
            .map_err(|e| keycloak_failure(what(), e)),
        result => result.map_err(|e| keycloak_failure(what(), e)),
    }
}

/// The client Secrets, in the configuration's own workspace through the system export's claim
/// on Secrets.
struct ClientSecrets {
    client: kube::Client,
}

impl ClientSecrets {
    fn of(ctx: &Ctx) -> Result<Self, SubroutineError> {
        Ok(Self {
            client: ctx.origin()?,
        })
    }

    fn api(&self, secret: &SecretReference) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &secret.namespace)
    }

    /// The registration token the Secret holds, if it exists and holds one.
    async fn registration_token(
        &self,
        secret: &SecretReference,
    ) -> Result<Option<String>, SubroutineError> {
        let found = self.api(secret).get_opt(&secret.name).await.map_err(|e| {
            SubroutineError::kube(
                format!("reading Secret {}/{}", secret.namespace, secret.name),
                e,
            )
        })?;
        Ok(found
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(REGISTRATION_TOKEN_KEY))
            .and_then(|b| String::from_utf8(b.0).ok())
            .filter(|t| !t.is_empty()))
    }

    async fn write(
        &self,
        idp: &str,
        client: &IdentityProviderClient,
        registered: &keycloak::RegisteredClient,
    ) -> Result<(), SubroutineError> {
        let secret = client_secret(idp, client, registered);
        let reference = &client.secret_ref;
        self.api(reference)
            .patch(
                &reference.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(|e| {
                SubroutineError::kube(
                    format!(
                        "writing Secret {}/{} of client {}",
                        reference.namespace, reference.name, client.client_name
                    ),
                    e,
                )
            })
            .map(drop)
    }

    /// Deletes the Secret; one that is gone already is fine.
    async fn delete(&self, secret: &SecretReference) -> Result<(), SubroutineError> {
        match self
            .api(secret)
            .delete(&secret.name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(SubroutineError::kube(
                format!("deleting Secret {}/{}", secret.namespace, secret.name),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(name: &str, client_type: ClientType) -> IdentityProviderClient {
        IdentityProviderClient {
            client_type,
            client_name: name.into(),
            redirect_uris: vec![format!("https://{name}.example/*")],
            post_logout_redirect_uris: None,
            secret_ref: SecretReference {
                name: format!("secret-{name}"),
                namespace: "default".into(),
            },
        }
    }

    #[test]
    fn a_public_client_registers_without_authentication() {
        assert!(registration(&client("kubectl", ClientType::Public)).public);
        let portal = registration(&client("acme", ClientType::Confidential));
        assert!(!portal.public);
        assert!(portal.post_logout_redirect_uris.is_empty());
    }

    #[test]
    fn a_secret_holds_what_the_client_has_and_says_whose_it_is() {
        let registered = keycloak::RegisteredClient {
            client_id: "id".into(),
            client_secret: None,
            registration_access_token: "rat".into(),
            registration_client_uri: "https://kc/uri".into(),
        };
        let secret = client_secret("acme", &client("kubectl", ClientType::Public), &registered);
        let data = secret.data.unwrap();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            [REGISTRATION_TOKEN_KEY],
            "a public client has no secret"
        );
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels[IDP_NAME_LABEL], "acme");
        assert_eq!(labels[CLIENT_NAME_LABEL], "kubectl");
        assert_eq!(secret.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn removed_clients_are_nulled_in_the_status_patch() {
        let managed = |id: &str| ManagedClient {
            client_id: id.into(),
            ..Default::default()
        };
        let current = BTreeMap::from([("a".to_owned(), managed("1")), ("b".into(), managed("2"))]);
        assert_eq!(managed_clients_patch(&current, &current), None);
        let wanted = BTreeMap::from([("a".to_owned(), managed("1"))]);
        let patch = managed_clients_patch(&current, &wanted).unwrap();
        assert_eq!(patch["status"]["managedClients"]["b"], Value::Null);
        assert_eq!(patch["status"]["managedClients"]["a"]["clientId"], "1");
    }

    #[test]
    fn master_an_empty_name_and_denied_names_are_never_realms() {
        let deny = vec!["admin".to_owned()];
        assert!(
            refused_realm("master", &deny)
                .unwrap()
                .contains("administration")
        );
        assert!(refused_realm(" ", &deny).unwrap().contains("empty"));
        assert!(refused_realm("admin", &deny).unwrap().contains("deny list"));
        assert_eq!(refused_realm("acme", &deny), None);
    }
}
