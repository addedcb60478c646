//! A kcp that asks an authorization webhook, with users it knows by static tokens: their
//! requests go through kcp's real authorizer chain (RBAC first, then the webhook), as a
//! user's `kubectl` does.
//!
//! kcp v0.32 takes the webhook as a kubeconfig (`--authorization-webhook-config-file`); it has
//! no AuthorizationConfiguration, so no match conditions, a fixed 30 s timeout and a failure
//! policy of NoOpinion. The caches here are 1 s so that a revoked grant shows quickly.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use kcp::ClientFactory;
use tokio::sync::OnceCell;

use crate::kcp::Kcp;
use crate::process::free_port;

/// The users kcp knows (token `<name>-token`); none has any RBAC anywhere.
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// The webhook's serving certificate's file names in [`AuthorizingKcp::cert_dir`].
const CERT_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key";

/// A kcp whose authorizer asks a webhook at [`AuthorizingKcp::webhook_address`], once per test
/// binary.
#[derive(Debug)]
pub struct AuthorizingKcp {
    /// The kcp.
    pub kcp: Kcp,
    webhook: SocketAddr,
    ca_pem: String,
}

static SHARED: OnceCell<AuthorizingKcp> = OnceCell::const_new();

impl AuthorizingKcp {
    /// The kcp of this test binary, started on first use.
    pub async fn shared() -> &'static AuthorizingKcp {
        SHARED.get_or_init(Self::start).await
    }

    /// A kcp of its own asking the webhook, stopped (its state removed) when dropped.
    pub async fn fresh() -> AuthorizingKcp {
        Self::start().await
    }

    async fn start() -> AuthorizingKcp {
        let webhook = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .unwrap_or_else(|e| panic!("a certificate for the webhook: {e}"));
        let ca_pem = cert.cert.pem();
        let kcp = Kcp::start_with(|state| {
            let certs = state.join("webhook-certs");
            write(&certs.join(CERT_FILE), &ca_pem);
            write(&certs.join(KEY_FILE), &cert.signing_key.serialize_pem());
            let tokens: String = USERS
                .iter()
                .map(|user| format!("{user}-token,{user},{user}-uid\n"))
                .collect();
            write(&state.join("tokens.csv"), &tokens);
            let kubeconfig = serde_json::json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{ "name": "webhook", "cluster": {
                    "server": format!("https://{webhook}/authz"),
                    "certificate-authority": certs.join(CERT_FILE),
                }}],
                "users": [{ "name": "kcp", "user": {} }],
                "contexts": [{ "name": "webhook", "context": { "cluster": "webhook", "user": "kcp" } }],
                "current-context": "webhook",
            });
            let webhook_kubeconfig = state.join("authorization-webhook.kubeconfig");
            write(&webhook_kubeconfig, &kubeconfig.to_string());
            vec![
                format!("--token-auth-file={}", state.join("tokens.csv").display()),
                format!(
                    "--authorization-webhook-config-file={}",
                    webhook_kubeconfig.display()
                ),
                "--authorization-webhook-version=v1".to_owned(),
                "--authorization-webhook-cache-authorized-ttl=1s".to_owned(),
                "--authorization-webhook-cache-unauthorized-ttl=1s".to_owned(),
            ]
        })
        .await;
        AuthorizingKcp {
            kcp,
            webhook,
            ca_pem,
        }
    }

    /// Where kcp expects the webhook: serve `/authz` here, with [`Self::cert_dir`].
    pub fn webhook_address(&self) -> SocketAddr {
        self.webhook
    }

    /// The webhook's serving certificate and key (`tls.crt`, `tls.key`).
    pub fn cert_dir(&self) -> PathBuf {
        self.kcp.state_dir().join("webhook-certs")
    }

    /// The webhook certificate's PEM (self-signed: its own CA).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Clients as `user` (one of [`USERS`]), authenticated by its token.
    pub async fn as_user(&self, user: &str) -> ClientFactory {
        self.with_token(user, &format!("{user}-token")).await
    }

    /// Clients authenticated by `token` (a service account's); `name` names the kubeconfig.
    pub async fn with_token(&self, name: &str, token: &str) -> ClientFactory {
        let admin = kube::config::Kubeconfig::read_from(self.kcp.kubeconfig())
            .unwrap_or_else(|e| panic!("reading kcp's kubeconfig: {e}"));
        let cluster = admin
            .clusters
            .iter()
            .find(|c| c.name == "root")
            .and_then(|c| c.cluster.clone())
            .unwrap_or_else(|| panic!("kcp's kubeconfig has no cluster root"));
        let kubeconfig = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": "kcp", "cluster": {
                "server": cluster.server,
                "certificate-authority-data": cluster.certificate_authority_data,
            }}],
            "users": [{ "name": name, "user": { "token": token } }],
            "contexts": [{ "name": name, "context": { "cluster": "kcp", "user": name } }],
            "current-context": name,
        });
        let path = self.kcp.state_dir().join(format!("{name}.kubeconfig"));
        write(&path, &kubeconfig.to_string());
        ClientFactory::from_kubeconfig(&path, None)
            .await
            .unwrap_or_else(|e| panic!("clients as {name}: {e}"))
    }
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
