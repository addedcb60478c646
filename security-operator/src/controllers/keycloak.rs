//! What the identity controllers share: the Keycloak they talk to, the realm settings every
//! organisation's realm gets, and how Keycloak's answers become conditions.

use std::time::Duration;

use keycloak::{Error, KeycloakApi, RealmSettings, Smtp};
use lifecycle::SubroutineError;

/// The Keycloak of the IdentityProviderConfiguration and Invite controllers (`--keycloak-*`).
#[derive(Debug)]
pub struct KeycloakSettings {
    pub api: KeycloakApi,
    /// `--idp-access-token-lifespan`: also the realms' SSO session idle timeout.
    pub access_token_lifespan: Duration,
    /// `--idp-smtp-*`: the mail server realms send invitations through.
    pub smtp: Option<Smtp>,
    /// `--set-default-password`: invited users get the temporary password `password`.
    pub set_default_password: bool,
    /// `--idp-realm-deny-list`.
    pub realm_deny_list: Vec<String>,
}

impl KeycloakSettings {
    /// The settings of organisation realm `name`.
    pub fn realm(&self, name: &str, registration_allowed: Option<bool>) -> RealmSettings {
        RealmSettings {
            name: name.to_owned(),
            registration_allowed: registration_allowed.unwrap_or(false),
            access_token_lifespan: self.access_token_lifespan,
            smtp: self.smtp.clone(),
        }
    }
}

/// A failed Keycloak request, saying `what` failed: a request Keycloak refuses as invalid (400,
/// 422) is permanent, since sending it again gets the same answer; no answer, a refused login
/// (401, 403, until the credentials are fixed), a conflict or a server error is retried.
pub fn keycloak_failure(what: impl std::fmt::Display, error: Error) -> SubroutineError {
    match &error {
        Error::Refused { status, body, .. } if matches!(status.as_u16(), 400 | 422) => {
            SubroutineError::permanent("RejectedByKeycloak", format!("{what}: {status}: {body}"))
        }
        _ => SubroutineError::transient_from(what, error),
    }
}
