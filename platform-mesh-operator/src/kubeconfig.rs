//! The kubeconfigs the operator writes for its components, and the scoped RBAC derived from an
//! APIExport. Pure: no I/O, no clock, no network.
//!
//! Each provider connection gets a Secret whose `kubeconfig` key is rendered here, either with
//! the operator's own kcp credentials ([`Credentials::Admin`], taken from its admin kubeconfig by
//! [`admin_source`]) or with a ServiceAccount token ([`Credentials::Token`]) whose permissions are
//! [`scoped_rules`] and whose renewal is timed by [`renewal`].

use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::jiff::Timestamp;
use kcp::ClusterPath;
use kcp::types::apis::ApiExportSpec;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use url::{Position, Url};

/// Annotation on a token Secret: when the token was issued ([`format_time`]).
pub const TOKEN_ISSUED_ANNOTATION: &str = "platform-mesh.io/token-issued-at";
/// Annotation on a token Secret: when the token expires ([`format_time`]).
pub const TOKEN_EXPIRES_ANNOTATION: &str = "platform-mesh.io/token-expires-at";

const CLUSTER_NAME: &str = "default-cluster";
const USER_NAME: &str = "default-auth";
const CONTEXT_NAME: &str = "default-context";

const APIS_GROUP: &str = "apis.kcp.io";
const STATUS_VERBS: [&str; 3] = ["get", "update", "patch"];
const READ_VERBS: [&str; 3] = ["get", "list", "watch"];
/// Discovery and the kcp front doors a component's client walks before it reaches a resource.
const NON_RESOURCE_URLS: [&str; 7] = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/clusters/*",
    "/services",
    "/services/*",
];

/// Why a kubeconfig could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The context is absent or has no body; the name is empty when none was asked for and the
    /// kubeconfig sets no current-context.
    #[error("kubeconfig context {0:?} is missing or empty")]
    NoContext(String),
    /// The context's cluster is absent or has no body.
    #[error("kubeconfig cluster {0:?} is missing or empty")]
    NoCluster(String),
    /// The context's user is absent or has no body.
    #[error("kubeconfig user {0:?} is missing or empty")]
    NoUser(String),
    /// The credentials point outside the kubeconfig (a file or a command), which a component
    /// reading the kubeconfig from a Secret cannot follow.
    #[error(
        "kubeconfig field `{field}` refers to a file or command outside the kubeconfig; a \
         kubeconfig written into a Secret must carry its data inline"
    )]
    NotSelfContained {
        /// The kubeconfig key, e.g. `client-certificate` or `tokenFile`.
        field: &'static str,
    },
    /// The cluster's `certificate-authority-data` is not base64-encoded PEM.
    #[error("certificate-authority-data of kubeconfig cluster {cluster:?} is invalid: {reason}")]
    InvalidCaData {
        /// The cluster's name.
        cluster: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A raw server path that does not start with `/`.
    #[error("raw path {0:?} must start with '/'")]
    InvalidRawPath(String),
    /// An APIExportEndpointSlice endpoint URL that cannot be turned into a server.
    #[error("invalid APIExportEndpointSlice endpoint {url:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Serialising the kubeconfig failed.
    #[error("serialising the kubeconfig: {0}")]
    Yaml(String),
}

/// How a rendered kubeconfig authenticates.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A bearer token, e.g. a ServiceAccount token (scoped mode).
    Token(String),
    /// The operator's own kcp credentials (admin mode), copied as they are.
    Admin(Box<AuthInfo>),
}

/// Everything a rendered kubeconfig holds.
#[derive(Debug, Clone)]
pub struct KubeconfigParts {
    /// The server URL, e.g. from [`workspace_server`] or [`slice_server`].
    pub server: String,
    /// The CA bundle (PEM text) to trust for `server`; `None` uses the system roots.
    pub ca_pem: Option<String>,
    /// How the kubeconfig authenticates.
    pub credentials: Credentials,
}

/// Renders a self-contained kubeconfig YAML: cluster `default-cluster`, user `default-auth`,
/// context `default-context` (current).
///
/// TLS verification is never skipped. Admin credentials that reference files or an exec plugin
/// are rejected with [`KubeconfigError::NotSelfContained`]; a file path that inline data
/// overrides anyway is dropped.
pub fn render(parts: &KubeconfigParts) -> Result<String, KubeconfigError> {
    let auth = match &parts.credentials {
        Credentials::Token(token) => AuthInfo {
            token: Some(token.clone().into()),
            ..AuthInfo::default()
        },
        Credentials::Admin(auth) => self_contained(auth)?,
    };
    let ca_data = parts.ca_pem.as_deref().map(base64_encode).transpose()?;
    let config = Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: CLUSTER_NAME.to_owned(),
            cluster: Some(Cluster {
                server: Some(parts.server.clone()),
                certificate_authority_data: ca_data,
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: USER_NAME.to_owned(),
            auth_info: Some(auth),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: CONTEXT_NAME.to_owned(),
            context: Some(Context {
                cluster: CLUSTER_NAME.to_owned(),
                user: Some(USER_NAME.to_owned()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some(CONTEXT_NAME.to_owned()),
        ..Kubeconfig::default()
    };
    serde_saphyr::to_string(&config).map_err(|e| KubeconfigError::Yaml(e.to_string()))
}

/// The operator's own kcp credentials, to be copied into admin-mode kubeconfigs.
#[derive(Debug, Clone)]
pub struct AdminSource {
    /// The CA bundle (PEM text) of the context's cluster, if it sets one.
    pub ca_pem: Option<String>,
    /// The context's user, self-contained (see [`render`]).
    pub auth: AuthInfo,
}

/// Takes the CA and user of `context` (or the current context) from the operator's kcp admin
/// kubeconfig. The cluster's server is not taken: admin kubeconfigs get their server rewritten.
///
/// Fails early, rather than at [`render`], when the credentials are not self-contained.
pub fn admin_source(
    kubeconfig: &Kubeconfig,
    context: Option<&str>,
) -> Result<AdminSource, KubeconfigError> {
    let context_name = context
        .or(kubeconfig.current_context.as_deref())
        .unwrap_or_default();
    let ctx = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| KubeconfigError::NoContext(context_name.to_owned()))?;

    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| KubeconfigError::NoCluster(ctx.cluster.clone()))?;
    let user_name = ctx.user.as_deref().unwrap_or_default();
    let auth = kubeconfig
        .auth_infos
        .iter()
        .find(|u| u.name == user_name)
        .and_then(|u| u.auth_info.as_ref())
        .ok_or_else(|| KubeconfigError::NoUser(user_name.to_owned()))?;

    let ca_pem = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(decode_ca(&ctx.cluster, data)?),
        (None, Some(_)) => {
            return Err(KubeconfigError::NotSelfContained {
                field: "certificate-authority",
            });
        }
        (None, None) => None,
    };
    Ok(AdminSource {
        ca_pem,
        auth: self_contained(auth)?,
    })
}

/// The server of a workspace: `<scheme>://<host>[:<port>]/clusters/<path>`. Whatever path
/// `base` has (often `/clusters/root`) is replaced.
pub fn workspace_server(base: &Url, path: &ClusterPath) -> String {
    format!("{}{}", origin(base), path.request_path())
}

/// `base`'s scheme, host and port followed by `raw_path` (which must start with `/`), for
/// servers that are not a workspace, such as a virtual workspace.
pub fn raw_path_server(base: &Url, raw_path: &str) -> Result<String, KubeconfigError> {
    if !raw_path.starts_with('/') {
        return Err(KubeconfigError::InvalidRawPath(raw_path.to_owned()));
    }
    Ok(format!("{}{raw_path}", origin(base)))
}

/// The server for an APIExportEndpointSlice endpoint: the endpoint's path on `base`'s scheme,
/// host and port, because kcp advertises shard-internal hosts that components cannot reach.
pub fn slice_server(base: &Url, endpoint_url: &str) -> Result<String, KubeconfigError> {
    let invalid = |reason: String| KubeconfigError::InvalidEndpoint {
        url: endpoint_url.to_owned(),
        reason,
    };
    let endpoint = Url::parse(endpoint_url).map_err(|e| invalid(format!("not a URL: {e}")))?;
    if endpoint.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host".to_owned()));
    }
    let path = endpoint.path();
    if path.is_empty() || path == "/" {
        return Err(invalid("no path".to_owned()));
    }
    Ok(format!("{}{path}", origin(base)))
}

/// The RBAC a scoped component gets in the workspace of export `export_name`, as upstream
/// derives it: full access to the exported resources (and their status), the claimed verbs on
/// claimed resources, the export's content, reading endpoint slices and bindings, and discovery.
///
/// Deterministic and free of duplicate rules; claim verbs are sorted and a `*` subsumes the rest,
/// so claims differing only in verb order collapse too.
pub fn scoped_rules(export_name: &str, export: &ApiExportSpec) -> Vec<PolicyRule> {
    let mut rules = Vec::new();
    for resource in &export.resources {
        push_unique(
            &mut rules,
            resource_rule(&resource.group, &resource.name, &["*"]),
        );
        push_unique(
            &mut rules,
            resource_rule(
                &resource.group,
                &format!("{}/status", resource.name),
                &STATUS_VERBS,
            ),
        );
    }
    for claim in &export.permission_claims {
        let mut verbs: Vec<&str> = claim.verbs.iter().map(String::as_str).collect();
        verbs.sort_unstable();
        verbs.dedup();
        if verbs.is_empty() || verbs.contains(&"*") {
            verbs = vec!["*"];
        }
        push_unique(
            &mut rules,
            resource_rule(&claim.group, &claim.resource, &verbs),
        );
        // A controller that may write a resource also reports its status.
        if verbs.iter().any(|v| matches!(*v, "*" | "update" | "patch")) {
            push_unique(
                &mut rules,
                resource_rule(
                    &claim.group,
                    &format!("{}/status", claim.resource),
                    &STATUS_VERBS,
                ),
            );
        }
    }
    push_unique(
        &mut rules,
        PolicyRule {
            resource_names: Some(vec![export_name.to_owned()]),
            ..resource_rule(APIS_GROUP, "apiexports/content", &["*"])
        },
    );
    push_unique(
        &mut rules,
        PolicyRule {
            api_groups: Some(vec![APIS_GROUP.to_owned()]),
            resources: Some(vec![
                "apiexportendpointslices".to_owned(),
                "apibindings".to_owned(),
            ]),
            verbs: strings(&READ_VERBS),
            ..PolicyRule::default()
        },
    );
    push_unique(
        &mut rules,
        PolicyRule {
            non_resource_urls: Some(strings(&NON_RESOURCE_URLS)),
            verbs: strings(&["get"]),
            ..PolicyRule::default()
        },
    );
    rules
}

/// When to renew a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Renew now.
    Now,
    /// Check again after this long.
    After(Duration),
}

/// When to renew a token issued at `issued` that expires at `expires`: once less than a third
/// of its lifetime is left. A token with no lifetime (`expires <= issued`) is renewed now.
///
/// If `now` is before `issued` (the clock went back), the wait is capped at two thirds of the
/// lifetime, so a clock jump never postpones renewal past what a fresh token would wait.
pub fn renewal(issued: SystemTime, expires: SystemTime, now: SystemTime) -> Renewal {
    let lifetime = match expires.duration_since(issued) {
        Ok(lifetime) if !lifetime.is_zero() => lifetime,
        _ => return Renewal::Now,
    };
    let remaining_at_renewal = lifetime / 3;
    let Some(renew_at) = expires.checked_sub(remaining_at_renewal) else {
        return Renewal::Now;
    };
    match renew_at.duration_since(now) {
        Ok(wait) if !wait.is_zero() => Renewal::After(wait.min(lifetime - remaining_at_renewal)),
        _ => Renewal::Now,
    }
}

/// Formats `time` as RFC 3339 in UTC with seconds precision, e.g. `2026-11-27T21:00:00Z`,
/// for [`TOKEN_ISSUED_ANNOTATION`] and [`TOKEN_EXPIRES_ANNOTATION`]. Sub-seconds are dropped;
/// times outside years 0000–9999 are clamped to that range.
pub fn format_time(time: SystemTime) -> String {
    // Floor to whole seconds on both sides of the epoch.
    let seconds = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            let partial = i64::from(before.subsec_nanos() > 0);
            whole.saturating_add(partial).saturating_neg()
        }
    };
    let timestamp = Timestamp::from_second(seconds).unwrap_or(if seconds < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    timestamp.to_string()
}

/// Parses an RFC 3339 timestamp as [`format_time`] writes it (other offsets and fractional
/// seconds are accepted too); `None` when it is not one.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    text.parse::<Timestamp>().ok().map(SystemTime::from)
}

/// The `scheme://host[:port]` of `base`, without user info, path, query or fragment.
fn origin(base: &Url) -> String {
    format!(
        "{}://{}",
        base.scheme(),
        &base[Position::BeforeHost..Position::BeforePath]
    )
}

/// A copy of `auth` that needs nothing outside the kubeconfig: file paths that inline data
/// overrides are dropped; file paths and exec plugins that would be used are an error.
fn self_contained(auth: &AuthInfo) -> Result<AuthInfo, KubeconfigError> {
    let mut auth = auth.clone();
    if auth.token.is_some() {
        auth.token_file = None;
    } else if auth.token_file.is_some() {
        return Err(KubeconfigError::NotSelfContained { field: "tokenFile" });
    }
    if auth.client_certificate_data.is_some() {
        auth.client_certificate = None;
    } else if auth.client_certificate.is_some() {
        return Err(KubeconfigError::NotSelfContained {
            field: "client-certificate",
        });
    }
    if auth.client_key_data.is_some() {
        auth.client_key = None;
    } else if auth.client_key.is_some() {
        return Err(KubeconfigError::NotSelfContained {
            field: "client-key",
        });
    }
    // The plugin's command exists where the operator runs, not in the component's pod.
    if auth.exec.is_some() {
        return Err(KubeconfigError::NotSelfContained { field: "exec" });
    }
    Ok(auth)
}

/// Decodes `certificate-authority-data` to PEM text.
fn decode_ca(cluster: &str, data: &str) -> Result<String, KubeconfigError> {
    let invalid = |reason: String| KubeconfigError::InvalidCaData {
        cluster: cluster.to_owned(),
        reason,
    };
    let ByteString(bytes) = serde_json::from_value(serde_json::Value::String(data.to_owned()))
        .map_err(|e| invalid(format!("not base64: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("not PEM text".to_owned()))?;
    match pem::parse_many(&text) {
        Ok(blocks) if !blocks.is_empty() => Ok(text),
        Ok(_) => Err(invalid("no PEM block".to_owned())),
        Err(e) => Err(invalid(format!("not PEM: {e}"))),
    }
}

/// Standard base64, through k8s-openapi's `ByteString` (which kube's kubeconfig data fields
/// use too) rather than a hand-written encoder.
fn base64_encode(text: &str) -> Result<String, KubeconfigError> {
    match serde_json::to_value(ByteString(text.as_bytes().to_vec())) {
        Ok(serde_json::Value::String(encoded)) => Ok(encoded),
        Ok(other) => Err(KubeconfigError::Yaml(format!(
            "base64-encoding the CA gave {other}, not a string"
        ))),
        Err(e) => Err(KubeconfigError::Yaml(format!(
            "base64-encoding the CA: {e}"
        ))),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn resource_rule(group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

fn push_unique(rules: &mut Vec<PolicyRule>, rule: PolicyRule) {
    if !rules.contains(&rule) {
        rules.push(rule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcp::types::apis::{PermissionClaim, ResourceSchema, ResourceSchemaStorage};
    use kube::config::ExecConfig;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";

    fn secret_field(auth: &AuthInfo, field: &str) -> Option<String> {
        // secrecy is not a dependency; kube's serializer exposes the secret fields.
        serde_json::to_value(auth).unwrap()[field]
            .as_str()
            .map(str::to_owned)
    }

    fn only_cluster(config: &Kubeconfig) -> &Cluster {
        assert_eq!(config.clusters.len(), 1);
        assert_eq!(config.clusters[0].name, CLUSTER_NAME);
        config.clusters[0].cluster.as_ref().unwrap()
    }

    fn only_user(config: &Kubeconfig) -> &AuthInfo {
        assert_eq!(config.auth_infos.len(), 1);
        assert_eq!(config.auth_infos[0].name, USER_NAME);
        config.auth_infos[0].auth_info.as_ref().unwrap()
    }

    #[test]
    fn render_token_round_trips() {
        let yaml = render(&KubeconfigParts {
            server: "https://kcp.example:6443/clusters/root:orgs".into(),
            ca_pem: Some(PEM.into()),
            credentials: Credentials::Token("s3cr3t-token".into()),
        })
        .unwrap();
        assert!(yaml.contains("s3cr3t-token"), "{yaml}");
        assert!(!yaml.contains("insecure-skip-tls-verify"), "{yaml}");

        let config = Kubeconfig::from_yaml(&yaml).unwrap();
        let cluster = only_cluster(&config);
        assert_eq!(
            cluster.server.as_deref(),
            Some("https://kcp.example:6443/clusters/root:orgs")
        );
        assert_eq!(
            decode_ca("c", cluster.certificate_authority_data.as_deref().unwrap()).unwrap(),
            PEM
        );
        assert_eq!(cluster.insecure_skip_tls_verify, None);
        assert_eq!(
            secret_field(only_user(&config), "token").as_deref(),
            Some("s3cr3t-token")
        );
        assert_eq!(config.current_context.as_deref(), Some(CONTEXT_NAME));
        assert_eq!(config.contexts.len(), 1);
        let ctx = config.contexts[0].context.as_ref().unwrap();
        assert_eq!(config.contexts[0].name, CONTEXT_NAME);
        assert_eq!(ctx.cluster, CLUSTER_NAME);
        assert_eq!(ctx.user.as_deref(), Some(USER_NAME));
    }

    #[test]
    fn render_round_trips_realistic_sizes() {
        // Long scalars may be emitted folded; they must still read back byte for byte.
        let body =
            "TUlJQmtUQ0IrL2hoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGhoaGho\n".repeat(30);
        let pem = format!("-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n");
        let token = format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig_-",
            "eyJzdWIiOiJzeXN0ZW0i".repeat(50)
        );
        let yaml = render(&KubeconfigParts {
            server: "https://kcp:6443/services/apiexport/2abc/core.platform-mesh.io".into(),
            ca_pem: Some(pem.clone()),
            credentials: Credentials::Token(token.clone()),
        })
        .unwrap();
        let config = Kubeconfig::from_yaml(&yaml).unwrap();
        let cluster = only_cluster(&config);
        assert_eq!(
            decode_ca("c", cluster.certificate_authority_data.as_deref().unwrap()).unwrap(),
            pem
        );
        assert_eq!(secret_field(only_user(&config), "token"), Some(token));
    }

    #[test]
    fn render_without_ca_sets_no_ca() {
        let yaml = render(&KubeconfigParts {
            server: "https://kcp".into(),
            ca_pem: None,
            credentials: Credentials::Token("t".into()),
        })
        .unwrap();
        let config = Kubeconfig::from_yaml(&yaml).unwrap();
        let cluster = only_cluster(&config);
        assert_eq!(cluster.certificate_authority_data, None);
        assert_eq!(cluster.certificate_authority, None);
    }

    #[test]
    fn render_admin_client_cert_round_trips() {
        let auth = AuthInfo {
            client_certificate_data: Some("Y2VydA==".into()),
            client_key_data: Some("a2V5".to_owned().into()),
            // Overridden by the inline data, so dropped rather than rejected.
            client_key: Some("/etc/kcp/admin.key".into()),
            ..AuthInfo::default()
        };
        let yaml = render(&KubeconfigParts {
            server: "https://kcp:6443/clusters/root".into(),
            ca_pem: Some(PEM.into()),
            credentials: Credentials::Admin(Box::new(auth)),
        })
        .unwrap();
        assert!(!yaml.contains("/etc/kcp/admin.key"), "{yaml}");

        let config = Kubeconfig::from_yaml(&yaml).unwrap();
        let user = only_user(&config);
        assert_eq!(user.client_certificate_data.as_deref(), Some("Y2VydA=="));
        assert_eq!(
            secret_field(user, "client-key-data").as_deref(),
            Some("a2V5")
        );
        assert_eq!(user.client_key, None);
        assert!(user.token.is_none());
    }

    #[test]
    fn render_rejects_file_references() {
        let cases = [
            (
                AuthInfo {
                    token_file: Some("/var/run/token".into()),
                    ..AuthInfo::default()
                },
                "tokenFile",
            ),
            (
                AuthInfo {
                    client_certificate: Some("/etc/kcp/admin.crt".into()),
                    client_key_data: Some("a2V5".to_owned().into()),
                    ..AuthInfo::default()
                },
                "client-certificate",
            ),
            (
                AuthInfo {
                    client_certificate_data: Some("Y2VydA==".into()),
                    client_key: Some("/etc/kcp/admin.key".into()),
                    ..AuthInfo::default()
                },
                "client-key",
            ),
            (
                AuthInfo {
                    exec: Some(ExecConfig {
                        command: Some("kubectl-oidc_login".into()),
                        ..ExecConfig::default()
                    }),
                    ..AuthInfo::default()
                },
                "exec",
            ),
        ];
        for (auth, expected) in cases {
            let err = render(&KubeconfigParts {
                server: "https://kcp".into(),
                ca_pem: None,
                credentials: Credentials::Admin(Box::new(auth)),
            })
            .unwrap_err();
            assert!(
                matches!(err, KubeconfigError::NotSelfContained { field } if field == expected),
                "{expected}: {err}"
            );
        }
    }

    fn admin_kubeconfig(cluster_extra: &str) -> Kubeconfig {
        let ca = base64_encode(PEM).unwrap();
        Kubeconfig::from_yaml(&format!(
            r#"
apiVersion: v1
kind: Config
clusters:
- name: base
  cluster:
    server: https://kcp:6443/clusters/root
    certificate-authority-data: {ca}
- name: other
  cluster:
    server: https://other:6443
{cluster_extra}
users:
- name: kcp-admin
  user:
    token: admin-token
- name: other-user
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
contexts:
- name: base
  context:
    cluster: base
    user: kcp-admin
- name: other
  context:
    cluster: other
    user: other-user
- name: no-cluster
  context:
    cluster: gone
    user: kcp-admin
- name: no-user
  context:
    cluster: base
    user: gone
current-context: base
"#
        ))
        .unwrap()
    }

    #[test]
    fn admin_source_takes_current_context() {
        let source = admin_source(&admin_kubeconfig(""), None).unwrap();
        assert_eq!(source.ca_pem.as_deref(), Some(PEM));
        assert_eq!(
            secret_field(&source.auth, "token").as_deref(),
            Some("admin-token")
        );
    }

    #[test]
    fn admin_source_takes_named_context() {
        let source = admin_source(&admin_kubeconfig(""), Some("other")).unwrap();
        assert_eq!(source.ca_pem, None);
        assert_eq!(
            source.auth.client_certificate_data.as_deref(),
            Some("Y2VydA==")
        );
        assert_eq!(
            secret_field(&source.auth, "client-key-data").as_deref(),
            Some("a2V5")
        );
    }

    #[test]
    fn admin_source_names_what_is_missing() {
        let config = admin_kubeconfig("");
        assert!(matches!(
            admin_source(&config, Some("gone")),
            Err(KubeconfigError::NoContext(name)) if name == "gone"
        ));
        assert!(matches!(
            admin_source(&config, Some("no-cluster")),
            Err(KubeconfigError::NoCluster(name)) if name == "gone"
        ));
        assert!(matches!(
            admin_source(&config, Some("no-user")),
            Err(KubeconfigError::NoUser(name)) if name == "gone"
        ));
        let unset = Kubeconfig {
            current_context: None,
            ..config
        };
        assert!(matches!(
            admin_source(&unset, None),
            Err(KubeconfigError::NoContext(name)) if name.is_empty()
        ));
    }

    #[test]
    fn admin_source_rejects_ca_file_and_bad_ca_data() {
        let with_file = admin_kubeconfig(
            "- name: file\n  cluster:\n    server: https://kcp\n    certificate-authority: /etc/kcp/ca.crt",
        );
        let mut config = with_file.clone();
        config.contexts[0].context.as_mut().unwrap().cluster = "file".into();
        assert!(matches!(
            admin_source(&config, None),
            Err(KubeconfigError::NotSelfContained {
                field: "certificate-authority"
            })
        ));

        for (data, reason) in [("%%%", "not base64"), ("aGVsbG8=", "no PEM block")] {
            let mut config = with_file.clone();
            config.clusters[0]
                .cluster
                .as_mut()
                .unwrap()
                .certificate_authority_data = Some(data.into());
            let err = admin_source(&config, None).unwrap_err();
            assert!(
                matches!(&err, KubeconfigError::InvalidCaData { cluster, reason: r }
                    if cluster == "base" && r.starts_with(reason)),
                "{err}"
            );
        }
    }

    #[test]
    fn admin_source_rejects_token_file() {
        let mut config = admin_kubeconfig("");
        config.auth_infos[0].auth_info = Some(AuthInfo {
            token_file: Some("/var/run/token".into()),
            ..AuthInfo::default()
        });
        assert!(matches!(
            admin_source(&config, None),
            Err(KubeconfigError::NotSelfContained { field: "tokenFile" })
        ));
    }

    #[test]
    fn workspace_server_replaces_the_base_path() {
        let path: ClusterPath = "root:orgs:acme".parse().unwrap();
        for base in [
            "https://kcp.example:6443/clusters/root",
            "https://kcp.example:6443",
            "https://user:pw@kcp.example:6443/clusters/root?x=1#f",
        ] {
            assert_eq!(
                workspace_server(&Url::parse(base).unwrap(), &path),
                "https://kcp.example:6443/clusters/root:orgs:acme",
                "{base}"
            );
        }
        // The default port is implied, as url normalises it away.
        assert_eq!(
            workspace_server(
                &Url::parse("https://kcp:443/x").unwrap(),
                &ClusterPath::root()
            ),
            "https://kcp/clusters/root"
        );
        assert_eq!(
            workspace_server(
                &Url::parse("https://[::1]:6443/").unwrap(),
                &ClusterPath::root()
            ),
            "https://[::1]:6443/clusters/root"
        );
    }

    #[test]
    fn raw_path_server_appends_to_the_origin() {
        let base = Url::parse("https://kcp:6443/clusters/root").unwrap();
        assert_eq!(
            raw_path_server(&base, "/services/initializingworkspaces/root:acc").unwrap(),
            "https://kcp:6443/services/initializingworkspaces/root:acc"
        );
        assert!(matches!(
            raw_path_server(&base, "services/x"),
            Err(KubeconfigError::InvalidRawPath(p)) if p == "services/x"
        ));
        assert!(matches!(
            raw_path_server(&base, ""),
            Err(KubeconfigError::InvalidRawPath(_))
        ));
    }

    #[test]
    fn slice_server_moves_the_endpoint_onto_base() {
        let base = Url::parse("https://kcp.example:8443/clusters/root").unwrap();
        assert_eq!(
            slice_server(
                &base,
                "https://10.0.0.1:6443/services/apiexport/2abc/core.platform-mesh.io"
            )
            .unwrap(),
            "https://kcp.example:8443/services/apiexport/2abc/core.platform-mesh.io"
        );
        for (url, reason) in [
            ("not a url", "not a URL"),
            ("/services/apiexport/x", "not a URL"),
            ("unix:/services/apiexport/x", "no host"),
            ("https://10.0.0.1:6443", "no path"),
            ("https://10.0.0.1:6443/", "no path"),
        ] {
            let err = slice_server(&base, url).unwrap_err();
            assert!(
                matches!(&err, KubeconfigError::InvalidEndpoint { url: u, reason: r }
                    if u == url && r.starts_with(reason)),
                "{url}: {err}"
            );
        }
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            ..PolicyRule::default()
        }
    }

    fn claim(group: &str, resource: &str, verbs: &[&str]) -> PermissionClaim {
        PermissionClaim {
            group: group.into(),
            resource: resource.into(),
            verbs: strings(verbs),
            ..PermissionClaim::default()
        }
    }

    #[test]
    fn scoped_rules_follow_upstream() {
        let resource = |name: &str| ResourceSchema {
            name: name.into(),
            group: "core.platform-mesh.io".into(),
            schema: format!("v1.{name}.core.platform-mesh.io"),
            storage: ResourceSchemaStorage::crd(),
        };
        let export = ApiExportSpec {
            resources: vec![resource("accounts"), resource("accountinfos")],
            permission_claims: vec![
                claim("", "secrets", &[]),
                claim("", "configmaps", &["list", "get"]),
                claim("tenancy.kcp.io", "workspaces", &["*"]),
                claim("", "configmaps", &["get", "list"]),
                claim("", "secrets", &["*"]),
            ],
            ..ApiExportSpec::default()
        };
        let status = ["get", "update", "patch"];
        let expected = vec![
            rule(&["core.platform-mesh.io"], &["accounts"], &["*"]),
            rule(&["core.platform-mesh.io"], &["accounts/status"], &status),
            rule(&["core.platform-mesh.io"], &["accountinfos"], &["*"]),
            rule(
                &["core.platform-mesh.io"],
                &["accountinfos/status"],
                &status,
            ),
            rule(&[""], &["secrets"], &["*"]),
            rule(&[""], &["secrets/status"], &status),
            rule(&[""], &["configmaps"], &["get", "list"]),
            rule(&["tenancy.kcp.io"], &["workspaces"], &["*"]),
            rule(&["tenancy.kcp.io"], &["workspaces/status"], &status),
            PolicyRule {
                resource_names: Some(vec!["core.platform-mesh.io".into()]),
                ..rule(&["apis.kcp.io"], &["apiexports/content"], &["*"])
            },
            rule(
                &["apis.kcp.io"],
                &["apiexportendpointslices", "apibindings"],
                &["get", "list", "watch"],
            ),
            PolicyRule {
                non_resource_urls: Some(strings(&[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/clusters/*",
                    "/services",
                    "/services/*",
                ])),
                verbs: strings(&["get"]),
                ..PolicyRule::default()
            },
        ];
        let rules = scoped_rules("core.platform-mesh.io", &export);
        assert_eq!(rules, expected);
        assert_eq!(scoped_rules("core.platform-mesh.io", &export), rules);
    }

    #[test]
    fn scoped_rules_for_an_empty_export() {
        let rules = scoped_rules("x", &ApiExportSpec::default());
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].resource_names, Some(vec!["x".to_owned()]));
    }

    #[test]
    fn scoped_rules_status_only_for_writing_claims() {
        let export = ApiExportSpec {
            permission_claims: vec![
                claim("", "events", &["create"]),
                claim("", "pods", &["patch"]),
                claim("", "nodes", &["update", "*"]),
            ],
            ..ApiExportSpec::default()
        };
        let rules = scoped_rules("e", &export);
        let status = ["get", "update", "patch"];
        assert_eq!(
            &rules[..5],
            &[
                rule(&[""], &["events"], &["create"]),
                rule(&[""], &["pods"], &["patch"]),
                rule(&[""], &["pods/status"], &status),
                rule(&[""], &["nodes"], &["*"]),
                rule(&[""], &["nodes/status"], &status),
            ]
        );
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn renewal_at_two_thirds_of_the_lifetime() {
        let (issued, expires) = (at(1_000), at(1_000 + 3_600));
        assert_eq!(
            renewal(issued, expires, at(1_000)),
            Renewal::After(Duration::from_secs(2_400))
        );
        assert_eq!(
            renewal(issued, expires, at(2_000)),
            Renewal::After(Duration::from_secs(1_400))
        );
        assert_eq!(
            renewal(issued, expires, at(3_399)),
            Renewal::After(Duration::from_secs(1))
        );
        assert_eq!(renewal(issued, expires, at(3_400)), Renewal::Now);
        assert_eq!(renewal(issued, expires, at(4_000)), Renewal::Now);
        assert_eq!(renewal(issued, expires, at(5_000)), Renewal::Now);
    }

    #[test]
    fn renewal_of_invalid_tokens_is_now() {
        assert_eq!(renewal(at(1_000), at(1_000), at(500)), Renewal::Now);
        assert_eq!(renewal(at(1_000), at(900), at(500)), Renewal::Now);
    }

    #[test]
    fn renewal_caps_the_wait_when_the_clock_went_back() {
        assert_eq!(
            renewal(at(10_000), at(13_000), at(1_000)),
            Renewal::After(Duration::from_secs(2_000))
        );
    }

    #[test]
    fn times_format_and_parse() {
        let time = at(1_795_813_200);
        assert_eq!(format_time(time), "2026-11-27T21:00:00Z");
        assert_eq!(
            format_time(time + Duration::from_millis(999)),
            "2026-11-27T21:00:00Z"
        );
        assert_eq!(format_time(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_time(SystemTime::UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(parse_time("2026-11-27T21:00:00Z"), Some(time));
        assert_eq!(parse_time("2026-11-27T22:00:00+01:00"), Some(time));
        assert_eq!(parse_time(&format_time(time)), Some(time));
        for bad in ["", "yesterday", "2026-11-27", "2026-11-27T21:00:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
