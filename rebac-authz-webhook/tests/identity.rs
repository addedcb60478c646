//! Identity end to end, with every part real: kcp (asking this webhook), OpenFGA, Keycloak, an
//! SMTP sink, the account-operator and the security-operator with a Keycloak configured.
//!
//! An org is created as a user would; its creator is invited by e-mail, follows the link and
//! sets a password, logs in through the org's `kubectl` client as the OIDC plugin does, and
//! with that token lists Accounts in the org's account workspace (kcp authenticates her with
//! the org's WorkspaceAuthenticationConfiguration, this webhook authorizes her through
//! OpenFGA). Another org's workspace does not accept her token (401). Deleting the org deletes
//! its realm, client Secrets and authentication configuration, and her token stops working.
//!
//! Its own test binary: the security-operator's flags (the Keycloak, the mail server) are the
//! platform's.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::identity_provider::IdentityProviderConfiguration;
use harness::keycloak::Keycloak;
use harness::smtp::SmtpSink;
use harness::{AuthorizingKcp, delete_account, eventually, ready_account, unique_suffix};
use k8s_openapi::api::core::v1::Secret;
use kcp::types::tenancy::WorkspaceAuthenticationConfiguration;
use kube::api::{Api, ListParams};
use support::serve_platform;

/// Where the org's `kubectl` client sends a login back to (the OIDC plugin's default).
const KUBECTL_REDIRECT: &str = "http://localhost:8000";

/// The HTTP status of listing Accounts in `path` with bearer token `token`.
async fn list_accounts_with(token: &str, path: &kcp::ClusterPath) -> u16 {
    let factory = AuthorizingKcp::shared()
        .await
        .with_token("oidc-user", token)
        .await;
    let accounts: Api<Account> = Api::all(factory.for_path(path).unwrap());
    match accounts.list(&ListParams::default()).await {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("listing Accounts in {path}: {e}"),
    }
}

#[tokio::test]
async fn an_invited_creator_logs_in_with_the_orgs_realm_and_works_in_that_org_only() {
    let keycloak = Keycloak::shared().await;
    let smtp = SmtpSink::start().await;
    let secret = keycloak.service_account("security-operator").await;
    let ca = keycloak.ca_file().display().to_string();
    // The portal's domain is Keycloak's address: every org's issuer is
    // https://<domain>/keycloak/realms/<org>, which is where Keycloak serves it.
    let security_flags = vec![
        format!("--keycloak-base-url={}", keycloak.url()),
        format!("--keycloak-client-secret={secret}"),
        format!("--keycloak-ca-file={ca}"),
        format!("--idp-issuer-ca-file={ca}"),
        format!("--base-domain={}", keycloak.domain()),
        "--idp-smtp-server=127.0.0.1".to_owned(),
        format!("--idp-smtp-port={}", smtp.port()),
        "--idp-from-address=platform@example.com".to_owned(),
    ];
    let (orgs, _, _webhook) = serve_platform(&security_flags).await;

    let suffix = unique_suffix();
    let org = format!("acme-{suffix}");
    let alice = format!("alice-{suffix}@example.com");
    let created = Instant::now();
    let (_, acme) = ready_account(&orgs, &org, "org", &alice).await;
    let org_ready = created.elapsed();
    let (_, team) = ready_account(&acme, "team", "account", &alice).await;

    // The invitation: an e-mail to alice with a link into her org's realm.
    let mail = smtp.wait_for(&alice, Duration::from_secs(60)).await;
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains(&format!("/realms/{org}/login-actions/action-token")))
        .unwrap_or_else(|| panic!("no action link in the invitation: {}", mail.body()));
    let page = keycloak
        .browser()
        .accept_invitation(&link, "alice's new password")
        .await;
    assert!(page.contains("account has been updated"), "{page}");

    // Her login, through the org's kubectl client.
    let info: AccountInfo = Api::all(acme.client())
        .get(ACCOUNT_INFO_NAME)
        .await
        .unwrap();
    let oidc = info.spec.oidc.unwrap();
    assert_eq!(oidc.issuer_url, keycloak.issuer(&org));
    let kubectl_client = &oidc.clients["kubectl"].client_id;
    let tokens = keycloak
        .browser()
        .login(
            &oidc.issuer_url,
            kubectl_client,
            KUBECTL_REDIRECT,
            &alice,
            "alice's new password",
        )
        .await
        .unwrap();

    // kubectl in her org's account workspace: authenticated by the org's realm, authorized by
    // OpenFGA (she created the org). kcp builds a WorkspaceType's authenticator on first use
    // and retries a failed build after 10 s.
    let status = eventually("alice's token to be accepted in her org", || async {
        let status = list_accounts_with(&tokens.id_token, &team.path).await;
        (status == 200).then_some(status)
    })
    .await;
    assert_eq!(status, 200);
    let first_kubectl = created.elapsed();
    println!(
        "org {org}: Ready {:.1} s after its creation, alice's first working kubectl {:.1} s after it",
        org_ready.as_secs_f64(),
        first_kubectl.as_secs_f64()
    );
    // Another org's workspace does not know her issuer.
    let (_, beta) = ready_account(&orgs, &format!("beta-{suffix}"), "org", "bob@example.com").await;
    let (_, beta_team) = ready_account(&beta, "team", "account", "bob@example.com").await;
    assert_eq!(
        list_accounts_with(&tokens.id_token, &beta_team.path).await,
        401
    );
    let userinfo = format!("{}/protocol/openid-connect/userinfo", oidc.issuer_url);
    let asked = |url: String| {
        let token = tokens.access_token.clone();
        async move {
            keycloak
                .http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(asked(userinfo.clone()).await, 200);

    // The org goes: its realm, client Secrets and authentication configuration with it, and
    // her token no longer works anywhere.
    let idp: IdentityProviderConfiguration = Api::all(orgs.client()).get(&org).await.unwrap();
    let secrets: Vec<String> = idp
        .status
        .unwrap()
        .managed_clients
        .values()
        .map(|m| m.secret_ref.name.clone())
        .collect();
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    delete_account(&orgs, &org).await;
    assert!(
        !keycloak.has_realm(&org).await,
        "realm {org} is still there"
    );
    let left: Api<Secret> = Api::namespaced(orgs.client(), "default");
    for name in &secrets {
        assert!(left.get_opt(name).await.unwrap().is_none(), "Secret {name}");
    }
    let configs: Api<WorkspaceAuthenticationConfiguration> = Api::all(orgs.client());
    assert!(configs.get_opt(&org).await.unwrap().is_none());
    assert_eq!(
        list_accounts_with(&tokens.id_token, &beta_team.path).await,
        401
    );
    let answer = asked(userinfo).await;
    assert!(answer == 401 || answer == 404, "userinfo answered {answer}");
}
