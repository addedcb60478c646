//! The Invite controller (role `fga`, only with a Keycloak): the invited user in the realm of
//! the Invite's organisation, and the e-mail that asks them to set a password (and, unless
//! `--set-default-password`, to verify their address), its link leading through the org's
//! portal client to the org's portal.
//!
//! Upstream sends the e-mail only when it creates the user, so an e-mail that failed (no mail
//! server yet) was never sent again. Here a user who has not acted yet is sent it until the
//! Invite is Ready; a user who exists and has nothing left to do is not mailed at all.

use std::sync::Arc;

use async_trait::async_trait;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::invite::Invite;
use kit::controller::{LifecycleController, Setup};
use kube::api::Api;
use lifecycle::{Outcome, Subroutine, SubroutineError};

use super::keycloak::keycloak_failure;
use super::{Ctx, Settings, new_controller, poll};

/// The controller's name, as upstream.
pub const INVITE_RECONCILER: &str = "invite";

/// The subroutine's name: the condition type, as upstream.
const INVITE_CONDITION: &str = "Invite";

/// The temporary password of `--set-default-password`, as upstream.
pub const DEFAULT_PASSWORD: &str = "password";

/// Builds the Invite controller.
pub fn invite_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<Invite, Ctx> {
    new_controller(
        INVITE_RECONCILER,
        setup,
        vec![Box::new(InviteSubroutine)],
        settings,
    )
}

/// What an invited user must do at their first login: set a password, and verify their
/// address unless they were given a default password (local use, where no mail is read).
pub fn required_actions(default_password: bool) -> &'static [&'static str] {
    if default_password {
        &["UPDATE_PASSWORD"]
    } else {
        &["UPDATE_PASSWORD", "VERIFY_EMAIL"]
    }
}

/// Whether the Invite's e-mail went out already: its condition is True for its generation.
fn sent(invite: &Invite) -> bool {
    invite.status.as_ref().is_some_and(|s| {
        s.observed_generation == invite.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == INVITE_CONDITION && c.status == "True")
    })
}

/// Invites the user (condition `Invite`, as upstream).
#[derive(Debug)]
struct InviteSubroutine;

#[async_trait]
impl Subroutine<Invite, Ctx> for InviteSubroutine {
    fn name(&self) -> &str {
        INVITE_CONDITION
    }

    async fn process(&self, invite: &Invite, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let keycloak = ctx.keycloak()?;
        let email = &invite.spec.email;
        let own = Api::<AccountInfo>::all(ctx.origin()?)
            .get_opt(ACCOUNT_INFO_NAME)
            .await
            .map_err(|e| SubroutineError::kube("reading this workspace's AccountInfo", e))?
            .ok_or_else(|| poll("waiting for this workspace's AccountInfo"))?;
        let realm = own.spec.organization.name;
        let user = keycloak
            .api
            .user_by_email(&realm, email)
            .await
            .map_err(|e| match e {
                e if e.is_not_found() => poll(format!("waiting for realm {realm}")).into(),
                e => keycloak_failure(format!("looking up {email} in realm {realm}"), e),
            })?;
        if let Some(user) = &user
            && (sent(invite) || user.required_actions.is_empty())
        {
            return Ok(Outcome::Ok);
        }

        // The link in the e-mail leads through the org's portal client, which the org's
        // AccountInfo names once its IdentityProviderConfiguration is Ready.
        let org = ctx.settings.orgs_path.join(&realm).map_err(|e| {
            SubroutineError::permanent("InvalidName", format!("organization {realm:?}: {e}"))
        })?;
        let client_id = Api::<AccountInfo>::all(ctx.settings.workspace(&org)?)
            .get_opt(ACCOUNT_INFO_NAME)
            .await
            .map_err(|e| SubroutineError::kube(format!("reading the AccountInfo of {org}"), e))?
            .and_then(|info| info.spec.oidc)
            .and_then(|oidc| oidc.clients.get(&realm).map(|c| c.client_id.clone()))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| poll(format!("waiting for the OIDC client {realm} of {org}")))?;
        let clients =
            keycloak.api.clients(&realm).await.map_err(|e| {
                keycloak_failure(format!("listing the clients of realm {realm}"), e)
            })?;
        if !clients.iter().any(|c| c.client_id == client_id) {
            return Err(poll(format!("waiting for client {client_id} in realm {realm}")).into());
        }

        let actions = required_actions(keycloak.set_default_password);
        let user = match user {
            Some(user) => user,
            None => {
                let password = keycloak.set_default_password.then_some(DEFAULT_PASSWORD);
                keycloak
                    .api
                    .create_user(&realm, email, actions, password)
                    .await
                    .map_err(|e| {
                        keycloak_failure(format!("creating user {email} in realm {realm}"), e)
                    })?;
                keycloak
                    .api
                    .user_by_email(&realm, email)
                    .await
                    .map_err(|e| keycloak_failure(format!("looking up {email}"), e))?
                    .ok_or_else(|| {
                        SubroutineError::transient(format!(
                            "user {email} is not in realm {realm} right after its creation"
                        ))
                    })?
            }
        };
        let redirect = format!("https://{realm}.{}/", ctx.settings.oidc.base_domain);
        keycloak
            .api
            .send_actions_email(&realm, &user.id, actions, &client_id, &redirect)
            .await
            .map_err(|e| keycloak_failure(format!("sending {email} the invitation e-mail"), e))?;
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::invite::{InviteSpec, InviteStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn invite(generation: i64, observed: Option<i64>, status: &str) -> Invite {
        let mut invite = Invite::new(
            "acme",
            InviteSpec {
                email: "a@example.com".into(),
            },
        );
        invite.metadata.generation = Some(generation);
        invite.status = Some(InviteStatus {
            conditions: vec![Condition {
                type_: INVITE_CONDITION.into(),
                status: status.into(),
                reason: "Complete".into(),
                message: String::new(),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                observed_generation: observed,
            }],
            observed_generation: observed,
        });
        invite
    }

    #[test]
    fn an_invite_counts_as_sent_only_when_its_generation_succeeded() {
        assert!(sent(&invite(1, Some(1), "True")));
        assert!(!sent(&invite(2, Some(1), "True")), "a changed address");
        assert!(!sent(&invite(1, Some(1), "False")), "the e-mail failed");
    }

    #[test]
    fn a_default_password_spares_the_address_verification() {
        assert_eq!(required_actions(true), ["UPDATE_PASSWORD"]);
        assert_eq!(required_actions(false), ["UPDATE_PASSWORD", "VERIFY_EMAIL"]);
    }
}
