//! The org initializer's identity steps, switched on: the org's IdentityProviderConfiguration,
//! the creator's Invite and the WorkspaceAuthenticationConfiguration, each waited for, and
//! the org released only after all of them. The test plays the OIDC provider (which a later
//! release brings): it marks the IdentityProviderConfiguration and the Invite Ready.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::identity_provider::IdentityProviderConfiguration;
use crds::invite::Invite;
use harness::{is_ready, new_account, unique_suffix, wait_for, workspace_of};
use kcp::types::tenancy::{
    AuthenticationConfigurationReference, WorkspaceAuthenticationConfiguration, WorkspaceType,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::base;

fn ready_status() -> serde_json::Value {
    json!({
        "type": "Ready",
        "status": "True",
        "reason": "Complete",
        "message": "ready",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    })
}

#[tokio::test]
async fn an_org_is_released_only_after_its_identity_provider_invite_and_authentication() {
    let platform = base().await;
    let orgs = platform.orgs().await;
    let _operator = platform
        .start_operator_with(
            "security-operator-identity",
            &[
                "--initializer-idp-enabled=true",
                "--initializer-invite-enabled=true",
                "--initializer-workspace-auth-enabled=true",
                "--base-domain=portal.test",
            ],
        )
        .await;
    let org = format!("ident-{}", unique_suffix());
    let creator = "irene@example.com";
    let accounts: Api<Account> = Api::all(orgs.client());
    accounts
        .create(&PostParams::default(), &new_account(&org, "org", creator))
        .await
        .unwrap();

    // The provider's configuration: a portal client and a kubectl client.
    let idps: Api<IdentityProviderConfiguration> = Api::all(orgs.client());
    let idp = wait_for(&idps, &org, "to exist", |_| true).await;
    let names: Vec<&str> = idp
        .spec
        .clients
        .iter()
        .map(|c| c.client_name.as_str())
        .collect();
    assert_eq!(names, [org.as_str(), "kubectl"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !is_ready(&accounts.get(&org).await.unwrap()),
        "released before its IdP was Ready"
    );

    // Played provider: the clients registered, the configuration Ready.
    let status = json!({"status": {
        "managedClients": {
            &org: {"clientId": "cid-portal", "registrationClientUri": "https://idp/1", "secretRef": {"name": "s1", "namespace": "default"}},
            "kubectl": {"clientId": "cid-kubectl", "registrationClientUri": "https://idp/2", "secretRef": {"name": "s2", "namespace": "default"}},
        },
        "conditions": [ready_status()],
    }});
    idps.patch_status(&org, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    // The creator's Invite, in the org's workspace.
    let workspace = workspace_of(&orgs, &org).await;
    let invites: Api<Invite> = Api::all(workspace.client());
    let invite = wait_for(&invites, &org, "to exist", |_| true).await;
    assert_eq!(invite.spec.email, creator);
    let info: AccountInfo = Api::all(workspace.client())
        .get(ACCOUNT_INFO_NAME)
        .await
        .unwrap();
    let oidc = info.spec.oidc.unwrap();
    assert_eq!(
        oidc.issuer_url,
        format!("https://portal.test/keycloak/realms/{org}")
    );
    assert_eq!(oidc.clients["kubectl"].client_id, "cid-kubectl");
    assert!(
        !is_ready(&accounts.get(&org).await.unwrap()),
        "released before its Invite was Ready"
    );
    let status = json!({"status": {"conditions": [ready_status()]}});
    invites
        .patch_status(&org, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    // Its authentication configuration, used by its WorkspaceTypes; then it is released.
    wait_for(&accounts, &org, "Ready", is_ready).await;
    let auth: WorkspaceAuthenticationConfiguration =
        Api::all(orgs.client()).get(&org).await.unwrap();
    let jwt = &auth.spec.jwt[0];
    assert_eq!(
        jwt["issuer"]["url"],
        format!("https://portal.test/keycloak/realms/{org}")
    );
    let mut audiences: Vec<String> =
        serde_json::from_value(jwt["issuer"]["audiences"].clone()).unwrap();
    audiences.sort();
    assert_eq!(audiences, ["cid-kubectl", "cid-portal"]);
    let types: Api<WorkspaceType> = Api::all(orgs.client());
    for name in [format!("{org}-org"), format!("{org}-account")] {
        let workspace_type = types.get(&name).await.unwrap();
        assert_eq!(
            workspace_type.spec.authentication_configurations,
            [AuthenticationConfigurationReference { name: org.clone() }],
            "{name}"
        );
    }
}
