//! The client against a real Keycloak: a realm created, updated and deleted, an OIDC client
//! registered, updated and deleted through Dynamic Client Registration, and a Keycloak that
//! does not answer told apart from one that refuses.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use harness::keycloak::{ADMIN, Keycloak};
use keycloak::{ClientRegistration, Error, KeycloakApi, Login, RealmSettings};

fn admin(server: &Keycloak) -> KeycloakApi {
    KeycloakApi::new(
        server.http().clone(),
        server.url(),
        Login::Password {
            username: ADMIN.into(),
            password: server.admin_password().into(),
        },
    )
}

fn realm(name: &str, registration_allowed: bool) -> RealmSettings {
    RealmSettings {
        name: name.into(),
        registration_allowed,
        access_token_lifespan: Duration::from_secs(3600),
        smtp: None,
    }
}

#[tokio::test]
async fn realms_and_registered_clients_come_and_go() {
    let server = Keycloak::shared().await;
    let keycloak = admin(server);

    // A realm is created, then updated by applying it again.
    assert!(!keycloak.realm_exists("acme").await.unwrap());
    keycloak.apply_realm(&realm("acme", false)).await.unwrap();
    assert!(keycloak.realm_exists("acme").await.unwrap());
    keycloak.apply_realm(&realm("acme", true)).await.unwrap();
    let seen = server.admin_get("realms/acme").await;
    assert_eq!(seen["registrationAllowed"], true);
    assert_eq!(seen["accessTokenLifespan"], 3600);
    assert_eq!(seen["loginWithEmailAllowed"], true);

    // A confidential client, registered through DCR.
    let mut client = ClientRegistration {
        name: "acme".into(),
        public: false,
        redirect_uris: vec!["https://acme.example.com/callback".into()],
        post_logout_redirect_uris: Vec::new(),
    };
    let registered = keycloak.register_client("acme", &client).await.unwrap();
    assert!(registered.client_secret.is_some());
    let listed = keycloak.clients("acme").await.unwrap();
    let ours: Vec<_> = listed
        .iter()
        .filter(|c| c.name.as_deref() == Some("acme"))
        .collect();
    assert_eq!(ours.len(), 1, "{listed:?}");
    assert_eq!(ours[0].client_id, registered.client_id);
    assert_eq!(ours[0].redirect_uris, client.redirect_uris);

    // Updated: the new redirect URIs hold, and the registration token is replaced.
    client.redirect_uris = vec!["https://acme.example.com/other".into()];
    let updated = keycloak.update_client(&registered, &client).await.unwrap();
    assert_eq!(updated.client_id, registered.client_id);
    assert_ne!(
        updated.registration_access_token,
        registered.registration_access_token
    );
    let listed = keycloak.clients("acme").await.unwrap();
    let now = listed
        .iter()
        .find(|c| c.client_id == registered.client_id)
        .unwrap();
    assert_eq!(now.redirect_uris, client.redirect_uris);

    // A public client has no secret.
    let public = ClientRegistration {
        name: "kubectl".into(),
        public: true,
        redirect_uris: vec!["http://localhost:8000".into()],
        post_logout_redirect_uris: Vec::new(),
    };
    let kubectl = keycloak.register_client("acme", &public).await.unwrap();
    assert_eq!(kubectl.client_secret, None);

    // Deleted through DCR with the current token; deleting again is fine.
    let (uri, token) = (
        &updated.registration_client_uri,
        &updated.registration_access_token,
    );
    keycloak.delete_client(uri, token).await.unwrap();
    let listed = keycloak.clients("acme").await.unwrap();
    assert!(
        listed.iter().all(|c| c.client_id != registered.client_id),
        "{listed:?}"
    );

    // The realm goes with its clients; deleting it again is fine.
    keycloak.delete_realm("acme").await.unwrap();
    assert!(!keycloak.realm_exists("acme").await.unwrap());
    keycloak.delete_realm("acme").await.unwrap();
}

#[tokio::test]
async fn an_unreachable_keycloak_and_a_refusal_are_told_apart() {
    let server = Keycloak::shared().await;

    // Nothing listens on this port.
    let port = harness::free_port();
    let nowhere = KeycloakApi::new(
        server.http().clone(),
        &format!("https://127.0.0.1:{port}"),
        Login::Password {
            username: ADMIN.into(),
            password: server.admin_password().into(),
        },
    );
    let error = nowhere.realm_exists("acme").await.unwrap_err();
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");

    // A wrong secret is refused, naming the token endpoint and Keycloak's answer.
    let refused = KeycloakApi::new(
        server.http().clone(),
        server.url(),
        Login::ClientCredentials {
            client_id: "security-operator".into(),
            secret: "wrong".into(),
        },
    );
    let error = refused.realm_exists("acme").await.unwrap_err();
    let Error::Refused { status, body, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(status.as_u16(), 401, "{error}");
    assert!(body.contains("invalid_client"), "{error}");
}
