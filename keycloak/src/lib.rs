//! Keycloak's admin REST API and OpenID Connect Dynamic Client Registration (DCR), as Platform
//! Mesh uses them: one realm per organisation, named after it, and the OIDC clients its users
//! log in through.
//!
//! [`KeycloakApi`] logs in to the master realm (a service account's client credentials, as
//! upstream's operator does, or a user's password), keeps the admin token until shortly before
//! it expires, and tells an unreachable Keycloak ([`Error::Unreachable`]) from one that refused
//! a request ([`Error::Refused`]), so that callers can report either in a condition and retry.
//! Nothing is discovered at construction: a Keycloak that is down when the operator starts is
//! reported when it is first needed, never a process that fails to start.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A token is renewed when less than this is left of it.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// What went wrong talking to Keycloak.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connection refused, TLS failure, timeout.
    #[error("Keycloak at {url} did not answer: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than the one expected.
    #[error("{method} {url}: {status}: {body}")]
    Refused {
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    /// An answer that does not read as expected.
    #[error("{method} {url}: unexpected answer: {message}")]
    Unreadable {
        method: Method,
        url: String,
        message: String,
    },
}

impl Error {
    /// Whether Keycloak answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// A result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// How [`KeycloakApi`] logs in to the master realm.
#[derive(Debug, Clone)]
pub enum Login {
    /// A confidential client's service account (the client credentials grant).
    ClientCredentials { client_id: String, secret: String },
    /// A user of the master realm, through the `admin-cli` client (the password grant).
    Password { username: String, password: String },
}

/// A realm as the operator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmSettings {
    pub name: String,
    /// Whether users may register themselves.
    pub registration_allowed: bool,
    /// The access tokens' lifespan; also the SSO session's idle timeout.
    pub access_token_lifespan: Duration,
    /// The mail server the realm sends from (invitations), if any.
    pub smtp: Option<Smtp>,
}

/// A realm's mail server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub ssl: bool,
    pub starttls: bool,
    /// User and password, when the server wants a login.
    pub auth: Option<(String, String)>,
}

/// An OIDC client to register (or to update a registration to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The client's name, unique within its realm in Platform Mesh.
    pub name: String,
    /// A public client does not authenticate (token endpoint auth method `none`); a
    /// confidential one uses its secret (`client_secret_basic`).
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

/// A client as DCR answered for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredClient {
    pub client_id: String,
    /// Absent for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The token that manages this registration; DCR replaces it at every update.
    pub registration_access_token: String,
    /// Where the registration is read, updated and deleted.
    pub registration_client_uri: String,
}

/// A client as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSummary {
    /// Keycloak's own id of the client.
    pub id: String,
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub public_client: bool,
    /// Keycloak keeps some OIDC metadata here, the post-logout redirect URIs among them.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// The attribute holding a client's post-logout redirect URIs, `##`-separated.
const POST_LOGOUT_ATTRIBUTE: &str = "post.logout.redirect.uris";

impl ClientSummary {
    /// Whether the client is registered as `wanted` says (name, type and redirect URIs, the
    /// order of the URIs aside), so that an unchanged client is left alone: every DCR update
    /// replaces the registration token.
    pub fn matches(&self, wanted: &ClientRegistration) -> bool {
        fn sorted(uris: &[String]) -> Vec<&str> {
            let mut uris: Vec<&str> = uris.iter().map(String::as_str).collect();
            uris.sort_unstable();
            uris
        }
        let post_logout: Vec<String> = self
            .attributes
            .get(POST_LOGOUT_ATTRIBUTE)
            .map(|joined| {
                joined
                    .split("##")
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        self.name.as_deref() == Some(wanted.name.as_str())
            && self.public_client == wanted.public
            && sorted(&self.redirect_uris) == sorted(&wanted.redirect_uris)
            && sorted(&post_logout) == sorted(&wanted.post_logout_redirect_uris)
    }
}

/// A user as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Keycloak's own id of the user.
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    /// What the user must still do at their next login (`UPDATE_PASSWORD`, `VERIFY_EMAIL`).
    #[serde(default)]
    pub required_actions: Vec<String>,
}

/// Keycloak's admin and registration APIs at one base URL.
#[derive(Debug)]
pub struct KeycloakApi {
    http: reqwest::Client,
    base: String,
    login: Login,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

/// An access token from a token endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct Token {
    pub access_token: String,
    /// Seconds from issue until it expires.
    pub expires_in: u64,
}

/// A token for user `username` of the realm at `issuer`, through client `client_id`: the
/// password grant, as a command-line login does.
pub async fn password_grant(
    http: &reqwest::Client,
    issuer: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<Token> {
    let form = [
        ("grant_type", "password"),
        ("client_id", client_id),
        ("username", username),
        ("password", password),
    ];
    token(http, issuer, &form).await
}

/// The token endpoint of the realm at `issuer`, asked with `form` (a grant).
async fn token(http: &reqwest::Client, issuer: &str, form: &[(&str, &str)]) -> Result<Token> {
    let url = format!("{issuer}/protocol/openid-connect/token");
    let response =
        http.post(&url)
            .form(form)
            .send()
            .await
            .map_err(|source| Error::Unreachable {
                url: url.clone(),
                source,
            })?;
    let answer = read(Method::POST, &url, response).await?;
    serde_json::from_value(answer).map_err(|e| Error::Unreadable {
        method: Method::POST,
        url,
        message: e.to_string(),
    })
}

#[derive(Serialize)]
struct DcrRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    client_name: &'a str,
    redirect_uris: &'a [String],
    post_logout_redirect_uris: &'a [String],
    grant_types: [&'static str; 2],
    token_endpoint_auth_method: &'static str,
}

impl KeycloakApi {
    /// Keycloak at `base_url` (`https://host[:port]`, with a path prefix if it has one),
    /// through `http` (which carries the TLS trust and timeouts), logging in as `login`.
    pub fn new(http: reqwest::Client, base_url: &str, login: Login) -> Self {
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            login,
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The issuer of `realm`'s tokens.
    pub fn issuer(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    /// Whether realm `name` exists.
    pub async fn realm_exists(&self, name: &str) -> Result<bool> {
        match self
            .admin(Method::GET, &format!("realms/{name}"), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the realm, or updates it to `settings` when it exists.
    pub async fn apply_realm(&self, settings: &RealmSettings) -> Result<()> {
        let representation = realm_representation(settings);
        match self
            .admin(Method::POST, "realms", Some(&representation))
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::Refused { status, .. }) if status == StatusCode::CONFLICT => {
                let path = format!("realms/{}", settings.name);
                self.admin(Method::PUT, &path, Some(&representation))
                    .await
                    .map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes realm `name`, with its users and clients; one that is gone already is fine.
    pub async fn delete_realm(&self, name: &str) -> Result<()> {
        ignore_not_found(
            self.admin(Method::DELETE, &format!("realms/{name}"), None)
                .await,
        )
    }

    /// The clients of `realm`.
    pub async fn clients(&self, realm: &str) -> Result<Vec<ClientSummary>> {
        let path = format!("realms/{realm}/clients");
        let url = self.admin_url(&path);
        let answer = self.admin(Method::GET, &path, None).await?;
        serde_json::from_value(answer).map_err(|e| Error::Unreadable {
            method: Method::GET,
            url,
            message: e.to_string(),
        })
    }

    /// Registers a new client in `realm` through DCR, authorized by a one-time initial access
    /// token the admin API issues for it.
    pub async fn register_client(
        &self,
        realm: &str,
        client: &ClientRegistration,
    ) -> Result<RegisteredClient> {
        let initial = self
            .admin(
                Method::POST,
                &format!("realms/{realm}/clients-initial-access"),
                Some(&json!({"count": 1, "expiration": 60})),
            )
            .await?;
        let url = format!(
            "{}/clients-registrations/openid-connect",
            self.issuer(realm)
        );
        let token = initial["token"]
            .as_str()
            .ok_or_else(|| Error::Unreadable {
                method: Method::POST,
                url: self.admin_url(&format!("realms/{realm}/clients-initial-access")),
                message: format!("no token in {initial}"),
            })?
            .to_owned();
        self.registration(Method::POST, &url, &token, &dcr_request(client, None))
            .await
    }

    /// Updates a registration to `client`; DCR answers with a new registration access token,
    /// which replaces `registered`'s.
    pub async fn update_client(
        &self,
        registered: &RegisteredClient,
        client: &ClientRegistration,
    ) -> Result<RegisteredClient> {
        let body = dcr_request(client, Some(&registered.client_id));
        self.registration(
            Method::PUT,
            &registered.registration_client_uri,
            &registered.registration_access_token,
            &body,
        )
        .await
    }

    /// Where the registration of client `client_id` of `realm` is managed.
    pub fn registration_client_uri(&self, realm: &str, client_id: &str) -> String {
        format!(
            "{}/clients-registrations/openid-connect/{client_id}",
            self.issuer(realm)
        )
    }

    /// A new registration access token for the client whose Keycloak id is `id`, issued
    /// through the admin API: the way back to a registration whose token was lost.
    pub async fn new_registration_token(&self, realm: &str, id: &str) -> Result<String> {
        let path = format!("realms/{realm}/clients/{id}/registration-access-token");
        let answer = self.admin(Method::POST, &path, Some(&json!({}))).await?;
        answer["registrationAccessToken"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Unreadable {
                method: Method::POST,
                url: self.admin_url(&path),
                message: format!("no registrationAccessToken in {answer}"),
            })
    }

    /// The user of `realm` whose e-mail address is `email`, if there is one.
    pub async fn user_by_email(&self, realm: &str, email: &str) -> Result<Option<User>> {
        let path = format!("realms/{realm}/users");
        let query = [("email", email), ("exact", "true")];
        let answer = self
            .admin_with_query(Method::GET, &path, &query, None)
            .await?;
        let users: Vec<User> = serde_json::from_value(answer).map_err(|e| Error::Unreadable {
            method: Method::GET,
            url: self.admin_url(&path),
            message: e.to_string(),
        })?;
        Ok(users.into_iter().find(|u| {
            u.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        }))
    }

    /// Creates an enabled user in `realm` whose user name is its e-mail address, who must do
    /// `required_actions` at the first login; with `temporary_password`, the user can log in
    /// with it once (to a page that asks for a new one).
    pub async fn create_user(
        &self,
        realm: &str,
        email: &str,
        required_actions: &[&str],
        temporary_password: Option<&str>,
    ) -> Result<()> {
        let mut user = json!({
            "username": email,
            "email": email,
            "enabled": true,
            "requiredActions": required_actions,
        });
        if let Some(password) = temporary_password {
            user["credentials"] =
                json!([{"type": "password", "value": password, "temporary": true}]);
        }
        self.admin(Method::POST, &format!("realms/{realm}/users"), Some(&user))
            .await
            .map(drop)
    }

    /// Sends user `id` of `realm` the e-mail that asks them to do `actions`, its link leading
    /// through client `client_id` to `redirect_uri` afterwards. Needs the realm's SMTP server.
    pub async fn send_actions_email(
        &self,
        realm: &str,
        id: &str,
        actions: &[&str],
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<()> {
        let path = format!("realms/{realm}/users/{id}/execute-actions-email");
        let query = [("client_id", client_id), ("redirect_uri", redirect_uri)];
        self.admin_with_query(Method::PUT, &path, &query, Some(&json!(actions)))
            .await
            .map(drop)
    }

    /// Deletes a registration; one that is gone already is fine.
    pub async fn delete_client(&self, registration_client_uri: &str, token: &str) -> Result<()> {
        let result = self
            .send(Method::DELETE, registration_client_uri, token, &[], None)
            .await;
        ignore_not_found(result)
    }

    async fn registration(
        &self,
        method: Method,
        url: &str,
        token: &str,
        body: &Value,
    ) -> Result<RegisteredClient> {
        let answer = self
            .send(method.clone(), url, token, &[], Some(body))
            .await?;
        serde_json::from_value(answer).map_err(|e| Error::Unreadable {
            method,
            url: url.to_owned(),
            message: e.to_string(),
        })
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}/admin/{path}", self.base)
    }

    /// A request to the admin API with the admin token.
    async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.admin_with_query(method, path, &[], body).await
    }

    /// [`KeycloakApi::admin`] with query parameters.
    async fn admin_with_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let token = self.admin_token().await?;
        self.send(method, &self.admin_url(path), &token, query, body)
            .await
    }

    /// Sends a request with a bearer token; the JSON answer (`null` for none).
    async fn send(
        &self,
        method: Method,
        url: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut request = self.http.request(method.clone(), url).bearer_auth(token);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| Error::Unreachable {
            url: url.to_owned(),
            source,
        })?;
        read(method, url, response).await
    }

    /// The admin token, renewed when it is about to expire.
    async fn admin_token(&self) -> Result<String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() + TOKEN_MARGIN < *until
        {
            return Ok(token.clone());
        }
        let master = self.issuer("master");
        let asked = Instant::now();
        let answer = match &self.login {
            Login::ClientCredentials { client_id, secret } => {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.as_str()),
                ];
                token(&self.http, &master, &form).await?
            }
            Login::Password { username, password } => {
                password_grant(&self.http, &master, "admin-cli", username, password).await?
            }
        };
        let until = asked + Duration::from_secs(answer.expires_in);
        *cached = Some((answer.access_token.clone(), until));
        Ok(answer.access_token)
    }
}

/// The answer's JSON (`null` when it has no body), or [`Error::Refused`] for a status other
/// than 2xx.
async fn read(method: Method, url: &str, response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let text = response.text().await.map_err(|source| Error::Unreachable {
        url: url.to_owned(),
        source,
    })?;
    if !status.is_success() {
        return Err(Error::Refused {
            method,
            url: url.to_owned(),
            status,
            body: text,
        });
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| Error::Unreadable {
        method,
        url: url.to_owned(),
        message: format!("{e}: {text}"),
    })
}

fn ignore_not_found(result: Result<Value>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The realm representation upstream writes: login with the e-mail address, which is also the
/// user name, and one lifespan for tokens and idle sessions.
fn realm_representation(settings: &RealmSettings) -> Value {
    let lifespan = settings.access_token_lifespan.as_secs();
    let mut realm = json!({
        "realm": settings.name,
        "displayName": settings.name,
        "enabled": true,
        "loginWithEmailAllowed": true,
        "registrationEmailAsUsername": true,
        "registrationAllowed": settings.registration_allowed,
        "accessTokenLifespan": lifespan,
        "ssoSessionIdleTimeout": lifespan,
    });
    if let Some(smtp) = &settings.smtp {
        let mut server = json!({
            "host": smtp.host,
            "port": smtp.port.to_string(),
            "from": smtp.from,
            "ssl": smtp.ssl.to_string(),
            "starttls": smtp.starttls.to_string(),
            "auth": smtp.auth.is_some().to_string(),
        });
        if let Some((user, password)) = &smtp.auth {
            server["user"] = json!(user);
            server["password"] = json!(password);
        }
        realm["smtpServer"] = server;
    }
    realm
}

/// The DCR metadata of `client`: the authorization code flow with refresh tokens; `client_id`
/// only in an update, which must repeat it.
fn dcr_request(client: &ClientRegistration, client_id: Option<&str>) -> Value {
    let request = DcrRequest {
        client_id,
        client_name: &client.name,
        redirect_uris: &client.redirect_uris,
        post_logout_redirect_uris: &client.post_logout_redirect_uris,
        grant_types: ["authorization_code", "refresh_token"],
        token_endpoint_auth_method: if client.public {
            "none"
        } else {
            "client_secret_basic"
        },
    };
    serde_json::to_value(request).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realm_with_smtp_carries_its_server_as_strings() {
        let realm = realm_representation(&RealmSettings {
            name: "acme".into(),
            registration_allowed: false,
            access_token_lifespan: Duration::from_secs(28_800),
            smtp: Some(Smtp {
                host: "mail.example.com".into(),
                port: 587,
                from: "noreply@example.com".into(),
                ssl: false,
                starttls: true,
                auth: Some(("mailer".into(), "secret".into())),
            }),
        });
        assert_eq!(realm["realm"], "acme");
        assert_eq!(realm["accessTokenLifespan"], 28_800);
        assert_eq!(realm["ssoSessionIdleTimeout"], 28_800);
        assert_eq!(
            realm["smtpServer"],
            json!({"host": "mail.example.com", "port": "587", "from": "noreply@example.com",
                "ssl": "false", "starttls": "true", "auth": "true", "user": "mailer",
                "password": "secret"})
        );
    }

    #[test]
    fn a_public_client_does_not_authenticate_and_an_update_repeats_the_id() {
        let client = ClientRegistration {
            name: "kubectl".into(),
            public: true,
            redirect_uris: vec!["http://localhost:8000".into()],
            post_logout_redirect_uris: Vec::new(),
        };
        let new = dcr_request(&client, None);
        assert_eq!(new["token_endpoint_auth_method"], "none");
        assert!(new.get("client_id").is_none(), "{new}");
        let update = dcr_request(&client, Some("abc"));
        assert_eq!(update["client_id"], "abc");
    }
}
