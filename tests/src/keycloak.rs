//! A real Keycloak: the one of a test binary, or one of a test's own. It runs the distribution
//! `cargo xtask deps` fetched and built (shared, read-only) with everything it writes in a
//! state directory of its own: the H2 database and the transaction log. HTTPS only, on free
//! ports, with a certificate of a CA made for it, so that clients (kcp's JWT authenticator
//! among them) trust its issuer by that CA alone.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::pki;
use crate::process::{ServerProcess, free_port, memory_mib};

/// How long a start may take: about a minute on a busy machine with two cores.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(240);

/// Where the distribution is built to serve everything, the management port included (see
/// `xtask::KEYCLOAK`).
pub const RELATIVE_PATH: &str = "/keycloak";

/// The master realm's administrator the harness creates at the first start.
pub const ADMIN: &str = "admin";

/// A running Keycloak.
#[derive(Debug)]
pub struct Keycloak {
    process: ServerProcess,
    /// `https://localhost:<port>/keycloak`: the base of its realms and admin API, and its
    /// hostname.
    url: String,
    port: u16,
    management_port: u16,
    admin_password: String,
    /// The CA of its serving certificate, for clients that take a file.
    ca_file: std::path::PathBuf,
    service_accounts: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    /// Time from spawn until `/health/ready` answered 200.
    pub startup: Duration,
    _state: tempfile::TempDir,
}

static SHARED: OnceCell<Keycloak> = OnceCell::const_new();

impl Keycloak {
    /// The Keycloak of this test binary, started on first use. Panics, with the command that
    /// builds it, when the distribution has not been built.
    pub async fn shared() -> &'static Keycloak {
        SHARED.get_or_init(Self::start).await
    }

    /// A Keycloak of its own, stopped (its state removed) when dropped.
    pub async fn fresh() -> Keycloak {
        Self::start().await
    }

    async fn start() -> Keycloak {
        let home = xtask::KEYCLOAK.home().unwrap_or_else(|e| panic!("{e}"));
        let state = tempfile::Builder::new()
            .prefix("pm-keycloak-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating Keycloak's state directory: {e}"));
        let dir = state.path();
        let ca = pki::ca("platform-mesh-rs test Keycloak CA");
        let tls = pki::serving(dir, "tls", "keycloak", &ca);
        let ca_file = pki::write(dir, "ca.crt", &ca.pem());
        let (port, management_port) = (free_port(), free_port());
        // `localhost`, not 127.0.0.1: an org's portal is `https://<org>.<domain>`, and Keycloak
        // refuses redirects to a host below an IP address (`acme.127.0.0.1` is no host name).
        let url = format!("https://localhost:{port}{RELATIVE_PATH}");
        let admin_password = format!("pw-{}", crate::unique_suffix());
        let args = [
            "start".to_owned(),
            "--optimized".to_owned(),
            "--http-enabled=false".to_owned(),
            format!("--https-port={port}"),
            format!("--https-certificate-file={}", tls.cert.display()),
            format!("--https-certificate-key-file={}", tls.key.display()),
            format!("--http-management-port={management_port}"),
            format!("--hostname={url}"),
            // One node: no cluster discovery, which would look for other Keycloaks on the
            // network (and find the other test binaries').
            "--cache=local".to_owned(),
            // The database and the transaction log in the state directory, not in the
            // shared installation.
            format!(
                "--db-url=jdbc:h2:file:{}/h2/keycloakdb;NON_KEYWORDS=VALUE;DB_CLOSE_ON_EXIT=FALSE",
                dir.display()
            ),
            format!(
                "-Dquarkus.transaction-manager.object-store.directory={}/transaction-logs",
                dir.display()
            ),
            format!("--bootstrap-admin-username={ADMIN}"),
            format!("--bootstrap-admin-password={admin_password}"),
        ];
        let process = ServerProcess::start("keycloak", &home.join("bin/kc.sh"), &args, dir, true)
            .unwrap_or_else(|e| panic!("starting Keycloak from {}: {e}", home.display()));
        kcp::client::install_crypto_provider();
        let certificate = reqwest::Certificate::from_pem(ca.pem().as_bytes())
            .unwrap_or_else(|e| panic!("the Keycloak CA: {e}"));
        // No idle connections kept: the shared Keycloak outlives the test (and the runtime)
        // that started it, and a pooled connection dies with the runtime that opened it.
        let http = reqwest::Client::builder()
            .tls_certs_only([certificate])
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_else(|e| panic!("an HTTP client for Keycloak: {e}"));
        let keycloak = Keycloak {
            process,
            url,
            port,
            management_port,
            admin_password,
            ca_file,
            service_accounts: tokio::sync::Mutex::new(()),
            http,
            startup: Duration::ZERO,
            _state: state,
        };
        let startup = keycloak.until_ready().await;
        Keycloak {
            startup,
            ..keycloak
        }
    }

    /// Waits until `/health/ready` on the management port answers 200 (Keycloak opens its
    /// ports before it has finished starting); returns the time since spawn.
    async fn until_ready(&self) -> Duration {
        let health = format!(
            "https://127.0.0.1:{}{RELATIVE_PATH}/health/ready",
            self.management_port
        );
        loop {
            if self.process.exited() {
                panic!(
                    "{}",
                    self.process.failed_to_start(STARTUP_TIMEOUT, "it exited")
                );
            }
            let answer = self.http.get(&health).send().await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                return self.process.started().elapsed();
            }
            assert!(
                self.process.started().elapsed() < STARTUP_TIMEOUT,
                "{}",
                self.process
                    .failed_to_start(STARTUP_TIMEOUT, "/health/ready never answered 200")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `https://localhost:<port>/keycloak`, the base of every realm's and the admin API's
    /// URLs.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The issuer of realm `realm`'s tokens.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.url)
    }

    /// The master realm's administrator's password (the user is [`ADMIN`]).
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// An HTTP client that trusts Keycloak's CA.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A fresh access token of the master realm's administrator (they last a minute).
    pub async fn admin_token(&self) -> String {
        self.password_token("master", "admin-cli", ADMIN, &self.admin_password)
            .await
            .unwrap_or_else(|e| panic!("the admin token: {e}"))
            .access_token
    }

    /// A token for user `username` of `realm` through client `client_id` (the password
    /// grant), or Keycloak's refusal.
    pub async fn password_token(
        &self,
        realm: &str,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<keycloak::Token, keycloak::Error> {
        let issuer = self.issuer(realm);
        keycloak::password_grant(&self.http, &issuer, client_id, username, password).await
    }

    /// `GET /admin/<path>` as the administrator: what the admin API shows.
    pub async fn admin_get(&self, path: &str) -> Value {
        let url = format!("{}/admin/{path}", self.url);
        let response = self
            .http
            .get(&url)
            .bearer_auth(self.admin_token().await)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
    }

    /// `localhost:<port>`: the host and port of every URL it serves, the portal domain of the
    /// orgs whose issuers it is.
    pub fn domain(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// Where its HTTPS port listens, for a [`crate::TcpProxy`] in front of it (its
    /// certificate names localhost, so it stays valid behind one).
    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The file holding the CA of its serving certificate.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// The secret of a master-realm client whose service account is an administrator, made
    /// as upstream's init container makes the security-operator's: what an operator logs in
    /// with (the client credentials grant). Made on first call, read on later ones.
    pub async fn service_account(&self, client_id: &str) -> String {
        // Tests of one binary ask at the same time; one makes the client.
        let _one_at_a_time = self.service_accounts.lock().await;
        let found = self
            .admin_get(&format!("realms/master/clients?clientId={client_id}"))
            .await;
        let id = match found.as_array().and_then(|a| a.first()) {
            Some(client) => client["id"].as_str().unwrap_or_default().to_owned(),
            None => {
                let client = serde_json::json!({
                    "clientId": client_id,
                    "enabled": true,
                    "publicClient": false,
                    "serviceAccountsEnabled": true,
                    "standardFlowEnabled": false,
                    "directAccessGrantsEnabled": false,
                });
                self.admin_send(reqwest::Method::POST, "realms/master/clients", &client)
                    .await;
                let made = self
                    .admin_get(&format!("realms/master/clients?clientId={client_id}"))
                    .await;
                let id = made[0]["id"].as_str().unwrap_or_default().to_owned();
                let user = self
                    .admin_get(&format!("realms/master/clients/{id}/service-account-user"))
                    .await;
                let admin = self.admin_get("realms/master/roles/admin").await;
                let mappings = format!(
                    "realms/master/users/{}/role-mappings/realm",
                    user["id"].as_str().unwrap_or_default()
                );
                self.admin_send(
                    reqwest::Method::POST,
                    &mappings,
                    &serde_json::json!([admin]),
                )
                .await;
                id
            }
        };
        let secret = self
            .admin_get(&format!("realms/master/clients/{id}/client-secret"))
            .await;
        secret["value"]
            .as_str()
            .unwrap_or_else(|| panic!("client {client_id} has no secret: {secret}"))
            .to_owned()
    }

    /// Whether Keycloak has realm `name`.
    pub async fn has_realm(&self, name: &str) -> bool {
        let realms = self.admin_get("realms").await;
        realms
            .as_array()
            .is_some_and(|all| all.iter().any(|r| r["realm"] == name))
    }

    /// A write to `/admin/<path>` as the administrator, which must succeed.
    pub async fn admin_send(&self, method: reqwest::Method, path: &str, body: &Value) {
        let url = format!("{}/admin/{path}", self.url);
        let response = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(self.admin_token().await)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status}: {text}");
    }

    /// The JVM's process id: `kc.sh` runs it as its child.
    pub fn jvm_pid(&self) -> Option<u32> {
        let script = self.process.pid()?;
        let children =
            std::fs::read_to_string(format!("/proc/{script}/task/{script}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// The resident memory of the JVM, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        memory_mib(self.jvm_pid()?, "VmRSS:")
    }
}

/// A person's browser on Keycloak's pages: it keeps cookies, fills in the forms a person
/// would (login, new password), follows "proceed" links, and stops at a redirect to the
/// application, as `kubectl`'s OIDC login receives it on localhost.
#[derive(Debug)]
pub struct Browser {
    http: reqwest::Client,
}

/// The tokens an OIDC login ends with.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LoginTokens {
    pub access_token: String,
    /// What `kubectl`'s OIDC plugin sends to the API server: its audience is the client.
    pub id_token: String,
}

/// Where a walk through the pages ended.
#[derive(Debug)]
enum Walked {
    /// A page with nothing left to fill in or follow.
    Page(String),
    /// A redirect to the application.
    Redirect(String),
}

impl Keycloak {
    /// A fresh browser (no cookies) that trusts this Keycloak.
    pub fn browser(&self) -> Browser {
        let certificate = reqwest::Certificate::from_pem_bundle(
            &std::fs::read(&self.ca_file).unwrap_or_else(|e| panic!("reading the CA: {e}")),
        )
        .unwrap_or_else(|e| panic!("the Keycloak CA: {e}"));
        let http = reqwest::Client::builder()
            .tls_certs_only(certificate)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_else(|e| panic!("a browser: {e}"));
        Browser { http }
    }
}

impl Browser {
    /// Opens an invitation's link and does what its pages ask: a new password
    /// (`new_password`); returns the text of the last page.
    pub async fn accept_invitation(&self, link: &str, new_password: &str) -> String {
        match self.walk(link, ("", ""), new_password, None).await {
            Walked::Page(page) => page,
            Walked::Redirect(to) => to,
        }
    }

    /// Logs in to `issuer` through public client `client_id` with the authorization code flow,
    /// as `kubectl`'s OIDC plugin does with a browser, and trades the code for tokens.
    pub async fn login(
        &self,
        issuer: &str,
        client_id: &str,
        redirect_uri: &str,
        username: &str,
        password: &str,
    ) -> Result<LoginTokens, String> {
        self.login_setting_password(
            issuer,
            client_id,
            redirect_uri,
            (username, password),
            password,
        )
        .await
    }

    /// [`Browser::login`] with `login` (user name, password), choosing `new_password` when
    /// Keycloak asks for one (a temporary password, a required action).
    pub async fn login_setting_password(
        &self,
        issuer: &str,
        client_id: &str,
        redirect_uri: &str,
        login: (&str, &str),
        new_password: &str,
    ) -> Result<LoginTokens, String> {
        let mut start = reqwest::Url::parse(&format!("{issuer}/protocol/openid-connect/auth"))
            .map_err(|e| e.to_string())?;
        start
            .query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid email")
            .append_pair("state", "harness");
        let walked = self
            .walk(start.as_str(), login, new_password, Some(redirect_uri))
            .await;
        let Walked::Redirect(to) = walked else {
            return Err(format!(
                "the login did not come back to {redirect_uri}: {walked:?}"
            ));
        };
        let back = reqwest::Url::parse(&to).map_err(|e| format!("{to}: {e}"))?;
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| format!("no code in {to}"))?;
        let url = format!("{issuer}/protocol/openid-connect/token");
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
        ];
        let response = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("POST {url}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }

    /// Goes from `url` through Keycloak's pages until a page asks nothing more or a redirect
    /// leads to `stop_at`.
    async fn walk(
        &self,
        url: &str,
        login: (&str, &str),
        new_password: &str,
        stop_at: Option<&str>,
    ) -> Walked {
        let mut request = self.http.get(url);
        let mut typed_password = false;
        for _ in 0..12 {
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("the browser: {e}"));
            let at = response.url().clone();
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let next = at
                    .join(&location)
                    .unwrap_or_else(|e| panic!("redirect to {location}: {e}"));
                if stop_at.is_some_and(|stop| next.as_str().starts_with(stop)) {
                    return Walked::Redirect(next.to_string());
                }
                request = self.http.get(next);
                continue;
            }
            let page = response.text().await.unwrap_or_default();
            let next = if let Some((action, mut fields)) = form(&page) {
                // The login form again after the password was typed: Keycloak refused it, and
                // typing it again would not help.
                if fields.iter().any(|(name, _)| name == "password") {
                    if typed_password {
                        return Walked::Page(page);
                    }
                    typed_password = true;
                }
                // What a person types: the login, a new password, a name when the profile
                // asks for one (Keycloak's default profile wants first and last names).
                for (name, value) in &mut fields {
                    match name.as_str() {
                        "username" if !login.0.is_empty() => *value = login.0.to_owned(),
                        "password" => *value = login.1.to_owned(),
                        "password-new" | "password-confirm" => *value = new_password.to_owned(),
                        "firstName" if value.is_empty() => *value = "Invited".to_owned(),
                        "lastName" if value.is_empty() => *value = "User".to_owned(),
                        _ => {}
                    }
                }
                self.http.post(at.join(&action).unwrap_or(at)).form(&fields)
            } else if let Some(proceed) = proceed_link(&page) {
                self.http.get(at.join(&proceed).unwrap_or(at))
            } else {
                return Walked::Page(page);
            };
            request = next;
        }
        panic!("the browser went through 12 pages from {url} without an end")
    }
}

/// The page's form that posts, as its action and its inputs' names and values (unchecked
/// boxes left out, as a browser leaves them out).
fn form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    page.split("<form").skip(1).find_map(|form| {
        let form = form.split("</form>").next()?;
        let head = form.split('>').next()?;
        if !head.contains("method=\"post\"") {
            return None;
        }
        let action = attribute(head, "action")?;
        let fields = form
            .split("<input")
            .skip(1)
            .filter_map(|input| {
                let tag = input.split('>').next()?;
                let checkbox = tag.contains("type=\"checkbox\"") || tag.contains("type=\"radio\"");
                if checkbox && !tag.contains("checked") {
                    return None;
                }
                Some((
                    attribute(tag, "name")?,
                    attribute(tag, "value").unwrap_or_default(),
                ))
            })
            .collect();
        Some((action, fields))
    })
}

/// The link of a Keycloak info page's "proceed" (or "back to application") anchor.
fn proceed_link(page: &str) -> Option<String> {
    page.split("<a ").skip(1).find_map(|anchor| {
        let text = anchor.split("</a>").next()?;
        (text.contains("proceed") || text.contains("Click here"))
            .then(|| attribute(&format!(" {text}"), "href"))
            .flatten()
    })
}

/// An HTML attribute's value (`name="…"`), entities undone.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].replace("&amp;", "&"))
}
