//! The org initializer's identity steps, each behind its flag (on by default when a Keycloak
//! is configured): the org's IdentityProviderConfiguration and its client ids in the org's
//! AccountInfo, the creator's Invite, and the WorkspaceAuthenticationConfiguration the org's
//! WorkspaceTypes use. They wait for the IdentityProviderConfiguration and the Invite to
//! become Ready, which the `system` and `fga` roles' Keycloak controllers make them; until
//! then the org stays initializing.

use crds::account::ORG_LABEL;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo, ClientInfo, OidcInfo};
use crds::identity_provider::{
    ClientType, IdentityProviderClient, IdentityProviderConfiguration,
    IdentityProviderConfigurationSpec, SecretReference, TokenClaims, authentication_configuration,
};
use crds::invite::{Invite, InviteSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kcp::types::tenancy::{
    AuthenticationConfigurationReference, WorkspaceAuthenticationConfiguration, WorkspaceType,
};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use lifecycle::SubroutineError;
use serde_json::json;

use super::workspace::delete_ignoring_missing;
use super::{Ctx, MANAGER, merge_params, poll};

/// What the identity steps are built from (the flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OidcSettings {
    /// `--initializer-idp-enabled`.
    pub idp: bool,
    /// `--initializer-invite-enabled`.
    pub invite: bool,
    /// `--initializer-workspace-auth-enabled`.
    pub workspace_auth: bool,
    /// `--base-domain`.
    pub base_domain: String,
    /// `--idp-registration-allowed`.
    pub registration_allowed: bool,
    /// `--idp-additional-redirect-urls`.
    pub additional_redirect_urls: Vec<String>,
    /// `--idp-kubectl-client-redirect-urls`.
    pub kubectl_redirect_urls: Vec<String>,
    /// `--user-claim`.
    pub user_claim: String,
    /// `--group-claim`.
    pub group_claim: String,
    /// `--additional-audiences`.
    pub additional_audiences: Vec<String>,
    /// `--development-allow-unverified-emails`.
    pub allow_unverified_emails: bool,
    /// The PEM of `--idp-issuer-ca-file`.
    pub issuer_ca: Option<String>,
}

/// The namespace of the clients' Secrets in the orgs workspace, as upstream.
const SECRET_NAMESPACE: &str = "default";
/// The client every org has for `kubectl` logins.
const KUBECTL_CLIENT: &str = "kubectl";

impl OidcSettings {
    /// The org's issuer: its realm behind the portal.
    pub fn issuer(&self, org: &str) -> String {
        format!("https://{}/keycloak/realms/{org}", self.base_domain)
    }

    /// The org's IdentityProviderConfiguration: a confidential portal client named after the
    /// org and a public `kubectl` client.
    pub fn identity_provider(&self, org: &str) -> IdentityProviderConfiguration {
        let mut redirects = self.additional_redirect_urls.clone();
        redirects.push(format!("https://{org}.{}/*", self.base_domain));
        let secret = |client: &str| SecretReference {
            name: format!("portal-client-secret-{org}-{client}"),
            namespace: SECRET_NAMESPACE.to_owned(),
        };
        let mut idp = IdentityProviderConfiguration::new(
            org,
            IdentityProviderConfigurationSpec {
                registration_allowed: Some(self.registration_allowed),
                clients: vec![
                    IdentityProviderClient {
                        client_type: ClientType::Confidential,
                        client_name: org.to_owned(),
                        redirect_uris: redirects,
                        post_logout_redirect_uris: Some(vec![format!(
                            "https://{org}.{}/logout*",
                            self.base_domain
                        )]),
                        secret_ref: secret(org),
                    },
                    IdentityProviderClient {
                        client_type: ClientType::Public,
                        client_name: KUBECTL_CLIENT.to_owned(),
                        redirect_uris: self.kubectl_redirect_urls.clone(),
                        post_logout_redirect_uris: None,
                        secret_ref: secret(KUBECTL_CLIENT),
                    },
                ],
            },
        );
        idp.metadata.managed_fields = None;
        idp
    }

    /// The org's JWT authenticator: its issuer, any of its client ids (and the additional
    /// audiences) as audience, users and groups from the configured claims.
    pub fn authentication(
        &self,
        org: &str,
        client_ids: &[String],
    ) -> WorkspaceAuthenticationConfiguration {
        let mut audiences = client_ids.to_vec();
        audiences.extend(self.additional_audiences.iter().cloned());
        let claims = TokenClaims {
            user: self.user_claim.clone(),
            groups: self.group_claim.clone(),
            allow_unverified_emails: self.allow_unverified_emails,
        };
        authentication_configuration(
            org,
            &self.issuer(org),
            &audiences,
            &claims,
            self.issuer_ca.as_deref(),
        )
    }
}

/// The AccountInfo `spec.oidc` an IdentityProviderConfiguration's status gives, or why not yet.
pub fn oidc_info(issuer: String, idp: &IdentityProviderConfiguration) -> Result<OidcInfo, String> {
    let clients = idp.client_ids()?;
    Ok(OidcInfo {
        issuer_url: issuer,
        clients: clients
            .into_iter()
            .map(|(name, client_id)| (name, ClientInfo { client_id }))
            .collect(),
    })
}

/// Whether `name` looks like an e-mail address (one `@` between non-empty parts); the Invite's
/// schema checks the rest, and refuses what it does not take with a condition.
fn is_email_like(name: &str) -> bool {
    name.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    })
}

fn is_ready(conditions: &[Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

async fn apply<K>(api: &Api<K>, object: &K, what: &str) -> Result<K, SubroutineError>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(&object.name_any(), &apply_params(), &Patch::Apply(object))
        .await
        .map_err(|e| SubroutineError::kube(format!("applying {what}"), e))
}

/// The IdP step: the IdentityProviderConfiguration, waited for, then the org's AccountInfo.
pub(super) async fn identity_provider(ctx: &Ctx, org: &str) -> Result<(), SubroutineError> {
    let settings = &ctx.settings;
    let oidc = &settings.oidc;
    let idp = apply(
        &Api::<IdentityProviderConfiguration>::all(settings.workspace(&settings.orgs_path)?),
        &oidc.identity_provider(org),
        &format!("IdentityProviderConfiguration {org}"),
    )
    .await?;
    let info = oidc_info(oidc.issuer(org), &idp).map_err(poll)?;
    let infos = Api::<AccountInfo>::all(settings.workspace(&org_path(ctx, org)?)?);
    let current = infos
        .get_opt(ACCOUNT_INFO_NAME)
        .await
        .map_err(|e| SubroutineError::kube(format!("reading the AccountInfo of {org}"), e))?
        .ok_or_else(|| poll(format!("waiting for the AccountInfo of {org}")))?;
    if current.spec.oidc.as_ref() != Some(&info) {
        let patch = json!({ "spec": { "oidc": info } });
        infos
            .patch(ACCOUNT_INFO_NAME, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| SubroutineError::kube(format!("writing the OIDC clients of {org}"), e))?;
    }
    Ok(())
}

/// The Invite step: the creator's Invite in the org's workspace, waited for until Ready. A
/// creator who is no e-mail address (a service account, a user of a static token) cannot be
/// invited, and the org does not wait for it: upstream's Invite would be refused and the org
/// would never be released.
pub(super) async fn invite(ctx: &Ctx, org: &str, creator: &str) -> Result<(), SubroutineError> {
    if !is_email_like(creator) {
        tracing::info!(
            org,
            creator,
            "the creator is no e-mail address: no invitation"
        );
        return Ok(());
    }
    let settings = &ctx.settings;
    let mut invite = Invite::new(
        org,
        InviteSpec {
            email: creator.to_owned(),
        },
    );
    invite.metadata.managed_fields = None;
    let invite = apply(
        &Api::<Invite>::all(settings.workspace(&org_path(ctx, org)?)?),
        &invite,
        &format!("Invite {org}"),
    )
    .await?;
    let ready = invite
        .status
        .as_ref()
        .is_some_and(|s| is_ready(&s.conditions));
    if !ready {
        return Err(poll(format!("waiting for Invite {org} to become Ready")).into());
    }
    Ok(())
}

/// The WorkspaceAuthenticationConfiguration step: the org's configuration, and its
/// WorkspaceTypes pointed at it.
pub(super) async fn workspace_authentication(ctx: &Ctx, org: &str) -> Result<(), SubroutineError> {
    let settings = &ctx.settings;
    let info = Api::<AccountInfo>::all(settings.workspace(&org_path(ctx, org)?)?)
        .get_opt(ACCOUNT_INFO_NAME)
        .await
        .map_err(|e| SubroutineError::kube(format!("reading the AccountInfo of {org}"), e))?
        .and_then(|i| i.spec.oidc)
        .filter(|o| !o.clients.is_empty() && o.clients.values().all(|c| !c.client_id.is_empty()))
        .ok_or_else(|| {
            poll(format!(
                "waiting for the OIDC clients of {org} in its AccountInfo"
            ))
        })?;
    let client_ids: Vec<String> = info.clients.values().map(|c| c.client_id.clone()).collect();
    let orgs = settings.workspace(&settings.orgs_path)?;
    apply(
        &Api::<WorkspaceAuthenticationConfiguration>::all(orgs.clone()),
        &settings.oidc.authentication(org, &client_ids),
        &format!("WorkspaceAuthenticationConfiguration {org}"),
    )
    .await?;
    let types: Api<WorkspaceType> = Api::all(orgs);
    let labelled = types
        .list(&ListParams::default().labels(&format!("{ORG_LABEL}={org}")))
        .await
        .map_err(|e| SubroutineError::kube(format!("listing the WorkspaceTypes of {org}"), e))?;
    let wanted = vec![AuthenticationConfigurationReference {
        name: org.to_owned(),
    }];
    for workspace_type in labelled.items {
        if workspace_type.spec.authentication_configurations == wanted {
            continue;
        }
        let name = workspace_type.name_any();
        let patch = json!({ "spec": { "authenticationConfigurations": wanted } });
        types
            .patch(&name, &merge_params(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                SubroutineError::kube(format!("pointing WorkspaceType {name} at {org}"), e)
            })?;
    }
    Ok(())
}

/// The org's identity, gone with it: its WorkspaceAuthenticationConfiguration, then its
/// IdentityProviderConfiguration, waited for until its finalizer has deleted the realm and the
/// client Secrets; each only while its step is on, since an operator without the identity
/// steps has no RBAC on either (an org made while a step was on and deleted after it was
/// turned off leaves that object behind).
pub(super) async fn terminate(ctx: &Ctx, org: &str) -> Result<(), SubroutineError> {
    let oidc = &ctx.settings.oidc;
    let orgs = ctx.settings.workspace(&ctx.settings.orgs_path)?;
    if oidc.workspace_auth {
        let configs = Api::<WorkspaceAuthenticationConfiguration>::all(orgs.clone());
        delete_ignoring_missing(&configs, org).await.map_err(|e| {
            SubroutineError::kube(
                format!("deleting WorkspaceAuthenticationConfiguration {org}"),
                e,
            )
        })?;
    }
    if !oidc.idp {
        return Ok(());
    }
    let idps = Api::<IdentityProviderConfiguration>::all(orgs);
    delete_ignoring_missing(&idps, org).await.map_err(|e| {
        SubroutineError::kube(format!("deleting IdentityProviderConfiguration {org}"), e)
    })?;
    let left = match idps.get_opt(org).await {
        Ok(left) => left,
        // Not served here: the system export is not bound, so there never was one.
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(e) => {
            return Err(SubroutineError::kube(
                format!("reading IdentityProviderConfiguration {org}"),
                e,
            ));
        }
    };
    if left.is_some() {
        return Err(poll(format!(
            "waiting for IdentityProviderConfiguration {org} to delete its realm and client Secrets"
        ))
        .into());
    }
    Ok(())
}

fn org_path(ctx: &Ctx, org: &str) -> Result<kcp::ClusterPath, SubroutineError> {
    ctx.settings.orgs_path.join(org).map_err(|e| {
        SubroutineError::permanent("InvalidName", format!("organization {org:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings {
            base_domain: "portal.example".into(),
            kubectl_redirect_urls: vec!["http://localhost:8000".into()],
            user_claim: "email".into(),
            group_claim: "groups".into(),
            additional_audiences: vec!["extra".into()],
            ..Default::default()
        }
    }

    #[test]
    fn only_creators_with_an_address_are_invited() {
        assert!(is_email_like("alice@example.com"));
        for name in [
            "alice",
            "system:serviceaccount:ns:sa",
            "@example.com",
            "a@",
            "a@b@c",
        ] {
            assert!(!is_email_like(name), "{name}");
        }
    }

    #[test]
    fn an_org_gets_a_portal_and_a_kubectl_client() {
        let idp = settings().identity_provider("acme");
        let clients = &idp.spec.clients;
        assert_eq!(clients.len(), 2);
        assert_eq!(clients[0].client_name, "acme");
        assert_eq!(clients[0].client_type, ClientType::Confidential);
        assert_eq!(clients[0].redirect_uris, ["https://acme.portal.example/*"]);
        assert_eq!(clients[0].secret_ref.name, "portal-client-secret-acme-acme");
        assert_eq!(clients[1].client_type, ClientType::Public);
        assert_eq!(clients[1].redirect_uris, ["http://localhost:8000"]);
    }

    #[test]
    fn the_account_info_names_the_issuer_and_each_clients_id_once_ready() {
        // When a configuration is ready is crds' IdentityProviderConfiguration::client_ids
        // (tested there); this is what the AccountInfo gets from it.
        let oidc = settings();
        let mut idp = oidc.identity_provider("acme");
        assert!(
            oidc_info(oidc.issuer("acme"), &idp)
                .unwrap_err()
                .contains("Ready")
        );
        idp.status = serde_json::from_value(json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Complete",
                            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "managedClients": {
                "acme": {"clientId": "c-acme", "registrationClientUri": "",
                         "secretRef": {"name": "", "namespace": ""}},
                "kubectl": {"clientId": "c-kubectl", "registrationClientUri": "",
                            "secretRef": {"name": "", "namespace": ""}},
            },
        }))
        .unwrap();
        let info = oidc_info(oidc.issuer("acme"), &idp).unwrap();
        assert_eq!(
            info.issuer_url,
            "https://portal.example/keycloak/realms/acme"
        );
        assert_eq!(info.clients["acme"].client_id, "c-acme");
        assert_eq!(info.clients["kubectl"].client_id, "c-kubectl");
    }

    #[test]
    fn the_authenticator_trusts_the_orgs_issuer_for_its_clients() {
        let config = settings().authentication("acme", &["c-acme".into()]);
        let jwt = &config.spec.jwt[0];
        assert_eq!(
            jwt["issuer"]["url"],
            "https://portal.example/keycloak/realms/acme"
        );
        assert_eq!(jwt["issuer"]["audiences"], json!(["c-acme", "extra"]));
        assert!(jwt["issuer"].get("certificateAuthority").is_none());
        let trusting = OidcSettings {
            issuer_ca: Some("PEM".into()),
            ..settings()
        };
        let jwt = &trusting.authentication("acme", &[]).spec.jwt[0];
        assert_eq!(jwt["issuer"]["certificateAuthority"], "PEM");
        assert_eq!(
            jwt["claimMappings"]["username"],
            json!({"claim": "email", "prefix": ""})
        );
        let unverified = OidcSettings {
            allow_unverified_emails: true,
            ..settings()
        };
        let jwt = &unverified.authentication("acme", &[]).spec.jwt[0];
        assert_eq!(
            jwt["claimMappings"]["username"],
            json!({"expression": "claims.email"})
        );
        assert!(jwt["claimValidationRules"].is_array());
    }
}
