//! Keycloak as the harness runs it: the distribution `cargo xtask deps` fetched and built,
//! started on free ports, over HTTPS only, with a certificate of a CA made for it. Its master
//! realm's administrator gets a token that the admin API takes; a wrong password is refused;
//! a client that does not trust the CA cannot connect. Prints the start-up time and memory.

#![allow(clippy::unwrap_used)]

use harness::keycloak::{ADMIN, Keycloak};
use serde_json::Value;

#[tokio::test]
async fn keycloak_serves_https_with_its_ca_and_issues_admin_tokens() {
    let keycloak = Keycloak::fresh().await;
    eprintln!(
        "Keycloak ready {:.1} s after spawn, {:.0} MiB resident",
        keycloak.startup.as_secs_f64(),
        keycloak.rss_mib().unwrap_or_default()
    );

    // Its discovery document names the issuer at the URL it was started with: the issuer
    // kcp's JWT authenticator will be given.
    let discovery: Value = keycloak
        .http()
        .get(format!(
            "{}/.well-known/openid-configuration",
            keycloak.issuer("master")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], keycloak.issuer("master"));

    // The administrator's token opens the admin API.
    let realm = keycloak.admin_get("realms/master").await;
    assert_eq!(realm["realm"], "master");

    // A wrong password is refused, as OAuth 2.0 says: 400 with `invalid_grant`.
    let refused = keycloak
        .password_token("master", "admin-cli", ADMIN, "not-the-password")
        .await
        .unwrap_err();
    let keycloak::Error::Refused { status, body, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(status.as_u16(), 400, "{refused}");
    assert!(body.contains("\"invalid_grant\""), "{refused}");

    // Only a client that trusts the CA gets through: the serving certificate is the test
    // CA's, not one the machine trusts.
    let untrusting = reqwest::Client::builder().build().unwrap();
    let error = untrusting
        .get(keycloak.issuer("master"))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}
