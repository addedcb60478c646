//! The welcome realm, pure: where a person who belongs to no organisation yet logs in, so that
//! they can make one. Its IdentityProviderConfiguration `welcome` lives in
//! `root:platform-mesh-system` (the security-operator, with Keycloak, makes the realm and
//! registers its clients); the WorkspaceAuthenticationConfiguration `orgs-authentication` in
//! `root` trusts its tokens for its client ids, and the `orgs` WorkspaceType points at it, so
//! that kcp accepts those tokens in `root:orgs`, where organisations are created. The names
//! and clients are upstream's.

use crds::identity_provider::{
    ClientType, IdentityProviderClient, IdentityProviderConfiguration,
    IdentityProviderConfigurationSpec, SecretReference, TokenClaims, authentication_configuration,
};
use crds::platform_mesh::Exposure;
use kcp::types::tenancy::WorkspaceAuthenticationConfiguration;
use serde_json::{Value, json};

use crate::bootstrap::ORGS_WORKSPACE;

/// The realm, its IdentityProviderConfiguration and its portal client.
pub const WELCOME: &str = "welcome";
/// Its public client for `kubectl` logins.
pub const WELCOME_KUBECTL: &str = "welcome-kubectl";
/// The WorkspaceAuthenticationConfiguration in `root` the `orgs` WorkspaceType uses.
pub const ORGS_AUTHENTICATION: &str = "orgs-authentication";
/// Where `kubectl`'s OIDC login (kubelogin) listens, with and without a path.
const KUBECTL_REDIRECTS: &[&str] = &[
    "http://localhost:8000",
    "http://localhost:8000/*",
    "http://localhost:18000",
    "http://localhost:18000/*",
];
/// The namespace of the clients' Secrets in `root:platform-mesh-system`, as upstream.
const SECRET_NAMESPACE: &str = "default";

/// What the welcome realm is built from besides the PlatformMesh (the flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WelcomeSettings {
    /// `--idp-registration-allowed`: people may register themselves.
    pub registration_allowed: bool,
    /// `--idp-welcome-additional-redirect-uris`.
    pub additional_redirect_uris: Vec<String>,
    /// `--idp-welcome-additional-post-logout-redirect-uris`.
    pub additional_post_logout_redirect_uris: Vec<String>,
    /// `--domain-certificate-ca-secret-name` and `-key`: the Secret (in the PlatformMesh's
    /// namespace) and key holding the CA kcp is to trust for the issuer.
    pub domain_ca_secret: Option<(String, String)>,
}

/// `<baseDomain>:<port>` from `spec.exposure` (port 8443 unless given), upstream's
/// `baseDomainPort`: the security-operator's `--base-domain` must be the same, since both
/// build issuers from it.
pub fn portal_domain(exposure: Option<&Exposure>) -> Result<String, String> {
    let exposure = exposure.cloned().unwrap_or_default();
    let domain = exposure
        .base_domain
        .filter(|d| !d.trim().is_empty())
        .ok_or("spec.exposure.baseDomain: required for the welcome realm")?;
    if domain.contains(['/', ':']) {
        return Err(format!(
            "spec.exposure.baseDomain {domain:?}: a host name, without scheme, port or path"
        ));
    }
    let port = exposure.port.unwrap_or(8443);
    if !(1..=65535).contains(&port) {
        return Err(format!("spec.exposure.port {port}: not a port"));
    }
    Ok(format!("{domain}:{port}"))
}

/// The realm's issuer.
pub fn issuer(domain: &str) -> String {
    format!("https://{domain}/keycloak/realms/{WELCOME}")
}

/// The IdentityProviderConfiguration `welcome`: a confidential portal client returning to
/// `https://<domain>/callback*`, and a public `kubectl` client.
pub fn identity_provider(
    domain: &str,
    settings: &WelcomeSettings,
) -> IdentityProviderConfiguration {
    let secret = |client: &str| SecretReference {
        name: format!("portal-client-secret-{client}"),
        namespace: SECRET_NAMESPACE.to_owned(),
    };
    let mut redirects = vec![format!("https://{domain}/callback*")];
    redirects.extend(settings.additional_redirect_uris.iter().cloned());
    let mut logouts = vec![format!("https://{domain}/logout*")];
    logouts.extend(
        settings
            .additional_post_logout_redirect_uris
            .iter()
            .cloned(),
    );
    IdentityProviderConfiguration::new(
        WELCOME,
        IdentityProviderConfigurationSpec {
            registration_allowed: Some(settings.registration_allowed),
            clients: vec![
                IdentityProviderClient {
                    client_type: ClientType::Confidential,
                    client_name: WELCOME.to_owned(),
                    redirect_uris: redirects,
                    post_logout_redirect_uris: Some(logouts),
                    secret_ref: secret(WELCOME),
                },
                IdentityProviderClient {
                    client_type: ClientType::Public,
                    client_name: WELCOME_KUBECTL.to_owned(),
                    redirect_uris: KUBECTL_REDIRECTS.iter().map(|r| (*r).to_owned()).collect(),
                    post_logout_redirect_uris: None,
                    secret_ref: secret(WELCOME_KUBECTL),
                },
            ],
        },
    )
}

/// `orgs-authentication`: the realm's tokens for any of its `client_ids`, the user named by
/// the verified `email` claim (as in the orgs' realms), the issuer checked against `ca` (PEM)
/// when given.
pub fn authentication(
    domain: &str,
    client_ids: &[String],
    ca: Option<&str>,
) -> WorkspaceAuthenticationConfiguration {
    let claims = TokenClaims {
        user: "email".to_owned(),
        groups: "groups".to_owned(),
        allow_unverified_emails: false,
    };
    authentication_configuration(
        ORGS_AUTHENTICATION,
        &issuer(domain),
        client_ids,
        &claims,
        ca,
    )
}

/// The one field of the `orgs` WorkspaceType the welcome realm owns: its authentication
/// configurations. Applied under a field manager of its own, so that the kcp tree's apply of
/// the rest of the type neither removes nor fights it.
pub fn orgs_type_authentication() -> Value {
    json!({
        "apiVersion": "tenancy.kcp.io/v1alpha1",
        "kind": "WorkspaceType",
        "metadata": {"name": ORGS_WORKSPACE},
        "spec": {"authenticationConfigurations": [{"name": ORGS_AUTHENTICATION}]},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(domain: Option<&str>, port: Option<i32>) -> Exposure {
        Exposure {
            base_domain: domain.map(str::to_owned),
            port,
            protocol: None,
        }
    }

    #[test]
    fn the_domain_is_upstreams_base_domain_and_port() {
        assert_eq!(
            portal_domain(Some(&exposure(Some("portal.example"), None))).unwrap(),
            "portal.example:8443"
        );
        assert_eq!(
            portal_domain(Some(&exposure(Some("portal.example"), Some(443)))).unwrap(),
            "portal.example:443"
        );
        for (bad, field) in [
            (exposure(None, None), "spec.exposure.baseDomain"),
            (exposure(Some(" "), None), "spec.exposure.baseDomain"),
            (
                exposure(Some("https://portal.example"), None),
                "spec.exposure.baseDomain",
            ),
            (
                exposure(Some("portal.example"), Some(0)),
                "spec.exposure.port",
            ),
        ] {
            let error = portal_domain(Some(&bad)).unwrap_err();
            assert!(error.starts_with(field), "{error}");
        }
        assert!(portal_domain(None).unwrap_err().contains("baseDomain"));
    }

    #[test]
    fn the_realm_has_a_portal_and_a_kubectl_client() {
        let settings = WelcomeSettings {
            registration_allowed: true,
            additional_redirect_uris: vec!["https://extra/cb".into()],
            additional_post_logout_redirect_uris: vec!["https://extra/bye".into()],
            domain_ca_secret: None,
        };
        let idp = identity_provider("portal.example:8443", &settings);
        assert_eq!(idp.metadata.name.as_deref(), Some(WELCOME));
        assert_eq!(idp.spec.registration_allowed, Some(true));
        let [portal, kubectl] = &idp.spec.clients[..] else {
            panic!("{:?}", idp.spec.clients)
        };
        assert_eq!(portal.client_type, ClientType::Confidential);
        assert_eq!(
            portal.redirect_uris,
            ["https://portal.example:8443/callback*", "https://extra/cb"]
        );
        assert_eq!(
            portal.post_logout_redirect_uris.as_deref(),
            Some(
                &[
                    "https://portal.example:8443/logout*".to_owned(),
                    "https://extra/bye".to_owned()
                ][..]
            )
        );
        assert_eq!(portal.secret_ref.name, "portal-client-secret-welcome");
        assert_eq!(portal.secret_ref.namespace, "default");
        assert_eq!(kubectl.client_name, WELCOME_KUBECTL);
        assert_eq!(kubectl.client_type, ClientType::Public);
        assert!(
            kubectl
                .redirect_uris
                .contains(&"http://localhost:8000".to_owned())
        );
    }

    #[test]
    fn orgs_authentication_trusts_the_welcome_issuer_for_its_clients() {
        let config = authentication(
            "portal.example:8443",
            &["c1".into(), "c2".into()],
            Some("PEM"),
        );
        assert_eq!(config.metadata.name.as_deref(), Some(ORGS_AUTHENTICATION));
        let jwt = &config.spec.jwt[0];
        assert_eq!(
            jwt["issuer"]["url"],
            "https://portal.example:8443/keycloak/realms/welcome"
        );
        assert_eq!(jwt["issuer"]["audiences"], json!(["c1", "c2"]));
        assert_eq!(jwt["issuer"]["audienceMatchPolicy"], "MatchAny");
        assert_eq!(jwt["issuer"]["certificateAuthority"], "PEM");
        assert_eq!(
            jwt["claimMappings"]["username"],
            json!({"claim": "email", "prefix": ""})
        );
        let reference = orgs_type_authentication();
        assert_eq!(reference["metadata"]["name"], "orgs");
        assert_eq!(
            reference["spec"]["authenticationConfigurations"],
            json!([{"name": "orgs-authentication"}])
        );
    }
}
