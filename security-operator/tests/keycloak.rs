//! IdentityProviderConfigurations against a real Keycloak: the realm and its OIDC clients
//! registered through Dynamic Client Registration, their Secrets in `root:orgs`, a changed
//! client updated and an unchanged one left alone, a removed client unregistered, the realm
//! deleted with the object; and the bad cases: a client without redirect URIs refused at
//! admission, an Invite without a valid address refused at admission, `master` and a denied
//! realm refused with a condition, Keycloak unreachable for 30 s reported and then caught up
//! with; the admission webhook refusing `master`, a denied name and a realm Keycloak already
//! has; and an invited user's default password (`--set-default-password`) replaced at the
//! first login.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use crds::identity_provider::webhook::VALIDATE_PATH;
use crds::identity_provider::{
    ClientType, IdentityProviderClient, IdentityProviderConfiguration,
    IdentityProviderConfigurationSpec, SecretReference,
};
use crds::invite::{Invite, InviteSpec};
use harness::keycloak::Keycloak;
use harness::{ServerProcess, TcpProxy, TestWorkspace, unique_suffix, wait_for, wait_gone};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kit::controller::DEBUG_LABEL;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use security_operator::controllers::{
    CLIENT_NAME_LABEL, CLIENT_SECRET_KEY, DEFAULT_PASSWORD, IDP_NAME_LABEL, REGISTRATION_TOKEN_KEY,
    required_actions,
};
use serde_json::{Value, json};
use support::{Platform, base};

/// The realm name every operator of this binary refuses.
const DENIED: &str = "forbidden-realm";

/// A security-operator logging in to `keycloak_url` (Keycloak itself or a proxy to it) as
/// the service account the harness made. It reconciles only objects labelled `name` (see
/// [`labelled`]), so that the tests' operators, which run side by side, keep to their own.
async fn operator(
    platform: &Platform,
    keycloak: &Keycloak,
    url: &str,
    name: &str,
) -> ServerProcess {
    let secret = keycloak.service_account("security-operator").await;
    platform
        .start_operator_with(
            name,
            &[
                &format!("--debug-label-value={name}"),
                &format!("--keycloak-base-url={url}"),
                &format!("--keycloak-client-secret={secret}"),
                &format!("--keycloak-ca-file={}", keycloak.ca_file().display()),
                "--idp-access-token-lifespan=3600",
                &format!("--idp-realm-deny-list=other,{DENIED}"),
                // No org is created here: the initializer's steps have nothing to do.
                "--http-client-timeout-seconds=5",
            ],
        )
        .await
}

/// A configuration for the operator named `operator`.
fn labelled(
    name: &str,
    spec: IdentityProviderConfigurationSpec,
    operator: &str,
) -> IdentityProviderConfiguration {
    let mut idp = IdentityProviderConfiguration::new(name, spec);
    idp.metadata.labels = Some([(DEBUG_LABEL.to_owned(), operator.to_owned())].into());
    idp
}

fn client(name: &str, client_type: ClientType, redirect: &str) -> IdentityProviderClient {
    IdentityProviderClient {
        client_type,
        client_name: name.into(),
        redirect_uris: vec![redirect.into()],
        post_logout_redirect_uris: None,
        secret_ref: SecretReference {
            name: format!("client-{name}-{}", unique_suffix()),
            namespace: "default".into(),
        },
    }
}

fn condition<'a>(idp: &'a IdentityProviderConfiguration, type_: &str) -> Option<&'a Condition> {
    idp.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

fn is_ready(idp: &IdentityProviderConfiguration) -> bool {
    condition(idp, "Ready").is_some_and(|c| c.status == "True")
        && idp.status.as_ref().and_then(|s| s.observed_generation) == idp.metadata.generation
}

async fn secret_data(orgs: &TestWorkspace, name: &str) -> Option<(Secret, BTreeSet<String>)> {
    let secret = Api::<Secret>::namespaced(orgs.client(), "default")
        .get_opt(name)
        .await
        .unwrap()?;
    let keys = secret
        .data
        .as_ref()
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default();
    Some((secret, keys))
}

fn value(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// The clients of `realm` Keycloak lists, by name (Keycloak's own clients have none).
async fn named_clients(keycloak: &Keycloak, realm: &str) -> Vec<Value> {
    let clients = keycloak.admin_get(&format!("realms/{realm}/clients")).await;
    clients
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n == "portal" || n == "kubectl")
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_configuration_keeps_its_realm_and_clients_and_takes_them_when_deleted() {
    let platform = base().await;
    let keycloak = Keycloak::shared().await;
    let name = "security-operator-idp";
    let _operator = operator(platform, keycloak, keycloak.url(), name).await;
    let orgs = platform.orgs().await;
    let idps: Api<IdentityProviderConfiguration> = Api::all(orgs.client());
    let realm = format!("idp-{}", unique_suffix());
    let portal = client(
        "portal",
        ClientType::Confidential,
        "https://portal.example/*",
    );
    let kubectl = client("kubectl", ClientType::Public, "http://localhost:8000");
    let idp = labelled(
        &realm,
        IdentityProviderConfigurationSpec {
            registration_allowed: Some(true),
            clients: vec![portal.clone(), kubectl.clone()],
        },
        name,
    );
    idps.create(&PostParams::default(), &idp).await.unwrap();
    let ready = wait_for(&idps, &realm, "Ready", is_ready).await;

    // The realm, with the operator's settings.
    let seen = keycloak.admin_get(&format!("realms/{realm}")).await;
    assert_eq!(seen["registrationAllowed"], true);
    assert_eq!(seen["accessTokenLifespan"], 3600);
    assert_eq!(seen["registrationEmailAsUsername"], true);

    // Both clients registered, each once, as the status says.
    let managed = ready.status.clone().unwrap().managed_clients;
    assert_eq!(
        managed.keys().collect::<Vec<_>>(),
        ["kubectl", "portal"],
        "{managed:?}"
    );
    let registered = named_clients(keycloak, &realm).await;
    assert_eq!(registered.len(), 2, "{registered:#?}");
    for entry in &registered {
        let name = entry["name"].as_str().unwrap();
        assert_eq!(entry["clientId"], managed[name].client_id.as_str());
        assert_eq!(entry["publicClient"], name == "kubectl", "{entry}");
        assert_eq!(managed[name].secret_ref.namespace, "default");
        assert!(
            managed[name]
                .registration_client_uri
                .starts_with(&keycloak.issuer(&realm)),
            "{:?}",
            managed[name]
        );
    }

    // The Secrets: the confidential client's secret as Keycloak has it, a registration token
    // each, the labels saying whose they are.
    let portal_id = registered.iter().find(|c| c["name"] == "portal").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (portal_secret, keys) = secret_data(&orgs, &portal.secret_ref.name).await.unwrap();
    assert_eq!(
        keys,
        BTreeSet::from([
            CLIENT_SECRET_KEY.to_owned(),
            REGISTRATION_TOKEN_KEY.to_owned()
        ])
    );
    let in_keycloak = keycloak
        .admin_get(&format!("realms/{realm}/clients/{portal_id}/client-secret"))
        .await;
    assert_eq!(
        value(&portal_secret, CLIENT_SECRET_KEY),
        in_keycloak["value"]
    );
    let labels = portal_secret.metadata.labels.clone().unwrap();
    assert_eq!(labels[IDP_NAME_LABEL], realm);
    assert_eq!(labels[CLIENT_NAME_LABEL], "portal");
    let (kubectl_secret, keys) = secret_data(&orgs, &kubectl.secret_ref.name).await.unwrap();
    assert_eq!(keys, BTreeSet::from([REGISTRATION_TOKEN_KEY.to_owned()]));

    // A changed client is updated (a new registration token); the unchanged one is left
    // alone (its token stays).
    let patch = json!({"spec": {"clients": [
        {"clientType": "confidential", "clientName": "portal",
         "redirectUris": ["https://portal.example/callback", "https://portal.example/*"],
         "postLogoutRedirectUris": ["https://portal.example/logout"],
         "secretRef": portal.secret_ref},
        kubectl,
    ]}});
    idps.patch(&realm, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let portal_key = format!("realms/{realm}/clients/{portal_id}");
    harness::eventually("the portal client to have two redirect URIs", || async {
        let seen = keycloak.admin_get(&portal_key).await;
        seen["redirectUris"]
            .as_array()
            .is_some_and(|u| u.len() == 2)
            .then_some(())
    })
    .await;
    wait_for(&idps, &realm, "Ready again", is_ready).await;
    let (updated, _) = secret_data(&orgs, &portal.secret_ref.name).await.unwrap();
    assert_ne!(
        value(&updated, REGISTRATION_TOKEN_KEY),
        value(&portal_secret, REGISTRATION_TOKEN_KEY),
        "an update replaces the registration token"
    );
    assert_eq!(
        value(&updated, CLIENT_SECRET_KEY),
        value(&portal_secret, CLIENT_SECRET_KEY),
        "the client keeps its secret"
    );
    let (unchanged, _) = secret_data(&orgs, &kubectl.secret_ref.name).await.unwrap();
    assert_eq!(
        value(&unchanged, REGISTRATION_TOKEN_KEY),
        value(&kubectl_secret, REGISTRATION_TOKEN_KEY),
        "an unchanged client is not updated"
    );
    let seen = keycloak.admin_get(&portal_key).await;
    assert_eq!(
        seen["attributes"]["post.logout.redirect.uris"],
        "https://portal.example/logout"
    );

    // A client that left the spec is unregistered and its Secret deleted.
    let patch = json!({"spec": {"clients": [
        {"clientType": "confidential", "clientName": "portal",
         "redirectUris": ["https://portal.example/callback", "https://portal.example/*"],
         "postLogoutRedirectUris": ["https://portal.example/logout"],
         "secretRef": portal.secret_ref},
    ]}});
    idps.patch(&realm, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let one = wait_for(&idps, &realm, "to manage one client", |i| {
        is_ready(i) && i.status.as_ref().unwrap().managed_clients.len() == 1
    })
    .await;
    assert!(one.status.unwrap().managed_clients.contains_key("portal"));
    let left = named_clients(keycloak, &realm).await;
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0]["name"], "portal");
    assert!(secret_data(&orgs, &kubectl.secret_ref.name).await.is_none());

    // Deleted: the Secrets and the realm go with it.
    idps.delete(&realm, &DeleteParams::default()).await.unwrap();
    wait_gone(&idps, &realm).await;
    assert!(secret_data(&orgs, &portal.secret_ref.name).await.is_none());
    assert!(
        !keycloak.has_realm(&realm).await,
        "realm {realm} is still there"
    );
}

#[tokio::test]
async fn bad_configurations_are_refused_or_explained_and_an_outage_is_caught_up_with() {
    let platform = base().await;
    let keycloak = Keycloak::shared().await;
    let proxy = TcpProxy::to(keycloak.address()).await;
    let behind_proxy = keycloak.url().replace(
        &keycloak.domain(),
        &format!("localhost:{}", proxy.address.port()),
    );
    let name = "security-operator-idp-bad";
    let _operator = operator(platform, keycloak, &behind_proxy, name).await;
    let orgs = platform.orgs().await;
    let idps: Api<IdentityProviderConfiguration> = Api::all(orgs.client());
    let post = PostParams::default();
    let suffix = unique_suffix();

    // A client that can never complete a login: refused by the API server.
    let mut no_redirects = client("portal", ClientType::Confidential, "x");
    no_redirects.redirect_uris.clear();
    let refused = idps
        .create(
            &post,
            &labelled(
                &format!("noredirect-{suffix}"),
                IdentityProviderConfigurationSpec {
                    registration_allowed: None,
                    clients: vec![no_redirects],
                },
                name,
            ),
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("redirectUris"), "{refused}");

    // An Invite whose address is no address: refused by the API server (the cases upstream's
    // integration test names), a good one taken.
    let invites: Api<Invite> = Api::all(orgs.client());
    for bad in [
        "a@b..com",
        "user@@x.com",
        "a b@example.com",
        "@example.com",
        "",
    ] {
        let invite = Invite::new(
            &format!("bad-{}", unique_suffix()),
            InviteSpec { email: bad.into() },
        );
        let refused = invites.create(&post, &invite).await.unwrap_err();
        assert!(
            refused.to_string().contains("spec.email"),
            "{bad:?}: {refused}"
        );
    }
    let good = Invite::new(
        &format!("good-{suffix}"),
        InviteSpec {
            email: "first.last+tag@sub.example.com".into(),
        },
    );
    invites.create(&post, &good).await.unwrap();

    // Keycloak's own realm and a denied one: a condition that says why, nothing in Keycloak.
    let empty = IdentityProviderConfigurationSpec::default();
    for realm in ["master", DENIED] {
        idps.create(&post, &labelled(realm, empty.clone(), name))
            .await
            .unwrap();
        let refused = wait_for(&idps, realm, "refused", |i| {
            condition(i, "IdentityProviderConfiguration")
                .is_some_and(|c| c.status == "False" && c.reason == "RealmNotAllowed")
        })
        .await;
        let message = &condition(&refused, "IdentityProviderConfiguration")
            .unwrap()
            .message;
        let expected = if realm == "master" {
            "administration realm"
        } else {
            "deny list"
        };
        assert!(message.contains(expected), "{message}");
        idps.delete(realm, &DeleteParams::default()).await.unwrap();
        wait_gone(&idps, realm).await;
    }
    assert!(
        keycloak.has_realm("master").await,
        "deleting a configuration named master leaves Keycloak's realm alone"
    );
    assert!(!keycloak.has_realm(DENIED).await, "realm {DENIED} was made");

    // Keycloak unreachable for 30 s: the configuration says so, then becomes Ready.
    proxy.set_cut(true);
    let realm = format!("outage-{suffix}");
    let spec = IdentityProviderConfigurationSpec {
        registration_allowed: None,
        clients: vec![client(
            "portal",
            ClientType::Confidential,
            "https://p.example/*",
        )],
    };
    idps.create(&post, &labelled(&realm, spec, name))
        .await
        .unwrap();
    let waiting = wait_for(&idps, &realm, "to report Keycloak unreachable", |i| {
        condition(i, "IdentityProviderConfiguration")
            .is_some_and(|c| c.message.contains("did not answer"))
    })
    .await;
    let message = &condition(&waiting, "IdentityProviderConfiguration")
        .unwrap()
        .message;
    assert!(message.contains(&behind_proxy), "{message}");
    assert!(!is_ready(&waiting));
    tokio::time::sleep(Duration::from_secs(30)).await;
    proxy.set_cut(false);
    let ready = wait_for(&idps, &realm, "Ready after the outage", is_ready).await;
    assert_eq!(ready.status.unwrap().managed_clients.len(), 1);
    idps.delete(&realm, &DeleteParams::default()).await.unwrap();
    wait_gone(&idps, &realm).await;
}

/// A CREATE that kcp sent through the webhook, as a dry run (kcp calls webhooks for those, and
/// nothing is made): Ok, or the refusal's message.
async fn dry_run_create(
    idps: &Api<IdentityProviderConfiguration>,
    name: &str,
    operator: &str,
) -> Result<(), String> {
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let idp = labelled(name, IdentityProviderConfigurationSpec::default(), operator);
    match idps.create(&dry_run, &idp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(e) => panic!("creating {name}: {e}"),
    }
}

#[tokio::test]
async fn the_webhook_refuses_names_that_can_never_be_an_orgs_realm() {
    let platform = base().await;
    let keycloak = Keycloak::shared().await;
    let name = "security-operator-idp-webhook";
    let certs = tempfile::tempdir().unwrap();
    let ca = harness::serving_cert(certs.path()).unwrap();
    let port = harness::free_port();
    let _operator = platform
        .start_operator_with(
            name,
            &[
                &format!("--debug-label-value={name}"),
                &format!("--keycloak-base-url={}", keycloak.url()),
                &format!(
                    "--keycloak-client-secret={}",
                    keycloak.service_account("security-operator").await
                ),
                &format!("--keycloak-ca-file={}", keycloak.ca_file().display()),
                &format!("--idp-realm-deny-list={DENIED}"),
                "--webhooks-enabled",
                &format!("--webhooks-port={port}"),
                &format!("--webhooks-cert-dir={}", certs.path().display()),
            ],
        )
        .await;
    // Registered next to the system export, as upstream's platform set-up does; only for this
    // test's objects, since the other tests create names the webhook refuses on purpose.
    let system: kcp::ClusterPath = harness::SYSTEM_PATH.parse().unwrap();
    let admin = harness::Kcp::shared().await.admin().await;
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "identityproviderconfigurations.core.platform-mesh.io",
            "admissionReviewVersions": ["v1"],
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}{VALIDATE_PATH}"),
                "caBundle": k8s_openapi::ByteString(ca.into_bytes()),
            },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "objectSelector": {"matchLabels": {DEBUG_LABEL: name}},
            "rules": [{
                "apiGroups": ["core.platform-mesh.io"],
                "apiVersions": ["v1alpha1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["identityproviderconfigurations"],
            }],
        }],
    });
    let configurations: Api<ValidatingWebhookConfiguration> =
        Api::all(admin.for_path(&system).unwrap());
    configurations
        .create(
            &PostParams::default(),
            &serde_json::from_value(configuration).unwrap(),
        )
        .await
        .unwrap();

    let orgs = platform.orgs().await;
    let idps: Api<IdentityProviderConfiguration> = Api::all(orgs.client());
    // kcp calls a new configuration's webhook a moment after it is created.
    let master = harness::eventually("the webhook to refuse master", || async {
        dry_run_create(&idps, "master", name).await.err()
    })
    .await;
    assert!(master.contains("administration realm"), "{master}");
    let denied = dry_run_create(&idps, DENIED, name).await.unwrap_err();
    assert!(denied.contains("deny list"), "{denied}");

    // A realm Keycloak has already: refused, so that no configuration takes it over.
    let taken = format!("taken-{}", unique_suffix());
    keycloak
        .admin_send(
            reqwest::Method::POST,
            "realms",
            &json!({"realm": taken, "enabled": true}),
        )
        .await;
    let refused = dry_run_create(&idps, &taken, name).await.unwrap_err();
    assert!(refused.contains("already has a realm"), "{refused}");

    // A new name passes; so does an UPDATE of an existing configuration.
    let fresh = format!("fresh-{}", unique_suffix());
    dry_run_create(&idps, &fresh, name).await.unwrap();
    idps.create(
        &PostParams::default(),
        &labelled(&fresh, IdentityProviderConfigurationSpec::default(), name),
    )
    .await
    .unwrap();
    wait_for(&idps, &fresh, "Ready", is_ready).await;
    let patch = json!({"spec": {"registrationAllowed": true}});
    idps.patch(&fresh, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    idps.delete(&fresh, &DeleteParams::default()).await.unwrap();
    wait_gone(&idps, &fresh).await;
    configurations
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

/// `--set-default-password`, as Keycloak takes it: the user the Invite controller makes with it
/// logs in once with the default password, is made to choose their own there and then, and
/// the default one no longer works.
#[tokio::test]
async fn a_default_password_works_once_and_is_replaced_at_the_first_login() {
    let server = Keycloak::shared().await;
    let keycloak = keycloak::KeycloakApi::new(
        server.http().clone(),
        server.url(),
        keycloak::Login::Password {
            username: harness::keycloak::ADMIN.into(),
            password: server.admin_password().into(),
        },
    );
    let realm = format!("default-password-{}", unique_suffix());
    keycloak
        .apply_realm(&keycloak::RealmSettings {
            name: realm.clone(),
            registration_allowed: false,
            access_token_lifespan: Duration::from_secs(3600),
            smtp: None,
        })
        .await
        .unwrap();
    let redirect = "http://localhost:8000";
    let kubectl = keycloak
        .register_client(
            &realm,
            &keycloak::ClientRegistration {
                name: "kubectl".into(),
                public: true,
                redirect_uris: vec![redirect.into()],
                post_logout_redirect_uris: Vec::new(),
            },
        )
        .await
        .unwrap();
    let email = "tina@example.com";
    // What the Invite controller sends with --set-default-password.
    keycloak
        .create_user(
            &realm,
            email,
            required_actions(true),
            Some(DEFAULT_PASSWORD),
        )
        .await
        .unwrap();
    let issuer = format!("{}/realms/{realm}", server.url());
    let login = |password: &'static str, new_password: &'static str| {
        let (issuer, client) = (issuer.clone(), kubectl.client_id.clone());
        async move {
            server
                .browser()
                .login_setting_password(&issuer, &client, redirect, (email, password), new_password)
                .await
        }
    };

    // The first login, with the default password, asks for a new one and ends with tokens.
    let own = "tina-chose-this";
    let tokens = login(DEFAULT_PASSWORD, own).await.unwrap();
    assert!(!tokens.id_token.is_empty());
    let user = keycloak
        .user_by_email(&realm, email)
        .await
        .unwrap()
        .unwrap();
    assert!(user.required_actions.is_empty(), "{user:?}");
    // From then on only her own password opens the realm.
    let refused = login(DEFAULT_PASSWORD, "never-asked").await.unwrap_err();
    assert!(refused.contains("did not come back"), "{refused}");
    login(own, "never-asked").await.unwrap();

    keycloak.delete_realm(&realm).await.unwrap();
}
