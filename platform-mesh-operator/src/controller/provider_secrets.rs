//! `ProvidersecretSubroutine`: a kubeconfig Secret (key `kubeconfig`) in the hosting cluster
//! for every provider connection.
//!
//! * **Admin** connections copy this operator's kcp credentials; the server is the
//!   workspace (`/clusters/<path>`), a raw path, or the URL an APIExportEndpointSlice lists.
//! * **Scoped** connections get a ServiceAccount in the export's workspace with the RBAC the
//!   export's resources and claims call for ([`crate::kubeconfig::scoped_rules`]), and a
//!   token from a TokenRequest. The token is renewed when a third of its lifetime is left
//!   (upstream minted one on every reconcile and rewrote the Secret each time), and the
//!   reconcile is requeued for that moment.
//!
//! An endpoint slice without endpoints is a wait, never a silent success (upstream wrote
//! nothing and reported success). Secrets of connections removed from the spec are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use crds::PlatformMesh;
use crds::platform_mesh::{Exposure, ProviderConnection};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kcp::ClusterPath;
use kcp::types::apis::{ApiExport, ApiExportEndpointSlice};
use kube::api::{ApiResource, DeleteParams, ListParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Api, ResourceExt};
use lifecycle::{Outcome, Subroutine, SubroutineError, Wait};

use super::{Ctx, KubeconfigSecret, owner_labels, owner_selector};
use crate::apply::{ensure_value, typed_value};
use crate::kubeconfig::{
    Credentials, KubeconfigParts, Renewal, TOKEN_EXPIRES_ANNOTATION, TOKEN_ISSUED_ANNOTATION,
    format_time, parse_time, raw_path_server, render, renewal, scoped_rules, slice_server,
    workspace_server,
};

/// The finalizer: the Secrets, ServiceAccounts and RBAC this subroutine made go with the
/// PlatformMesh.
pub const FINALIZER: &str = "core.platform-mesh.io/provider-secrets";

/// The purpose label of what this subroutine writes.
const PURPOSE: &str = "provider-kubeconfig";

/// How soon an endpoint slice without endpoints is looked at again (kcp is not watched).
const EMPTY_SLICE_POLL: Duration = Duration::from_secs(5);

/// The connections written when the spec names none: one per component of this suite, as
/// upstream's defaults for them (the account- and security-operator as admin, the
/// authorization webhook scoped to the core export).
pub fn default_connections() -> Vec<ProviderConnection> {
    let system = format!("root:{}", crate::bootstrap::SYSTEM_WORKSPACE);
    let admin = |secret: &str| ProviderConnection {
        secret: secret.to_owned(),
        path: Some(system.clone()),
        admin_auth: Some(true),
        ..Default::default()
    };
    vec![
        admin("account-operator-kubeconfig"),
        admin("security-operator-kubeconfig"),
        ProviderConnection {
            secret: "rebac-authz-webhook-kubeconfig".to_owned(),
            path: Some(system.clone()),
            api_export_name: Some(crds::export::CORE_EXPORT.to_owned()),
            admin_auth: Some(false),
            ..Default::default()
        },
    ]
}

/// The connections of `pm`: `providerConnections` (or the defaults) plus
/// `extraProviderConnections`, as upstream.
pub fn connections(pm: &PlatformMesh) -> Vec<ProviderConnection> {
    let kcp = pm.spec.kcp.clone().unwrap_or_default();
    let mut all = if kcp.provider_connections.is_empty() {
        default_connections()
    } else {
        kcp.provider_connections
    };
    all.extend(kcp.extra_provider_connections);
    all
}

/// Where a connection's server points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/clusters/<path>`.
    Workspace(ClusterPath),
    /// A verbatim URL path.
    RawPath(String),
    /// The first URL the slice lists.
    Slice { path: ClusterPath, name: String },
}

/// How a connection authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Admin,
    /// A ServiceAccount; the export is named by `apiExportName` (in `path`) or by the slice.
    Scoped {
        export: Option<String>,
    },
}

/// A validated connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The Secret's name.
    pub secret: String,
    /// The Secret's namespace.
    pub namespace: String,
    pub target: Target,
    pub mode: Mode,
    /// Use the external address.
    pub external: bool,
}

/// Validate: a connection that can never work is a permanent error naming the field.
pub fn plan(
    index: usize,
    connection: &ProviderConnection,
    namespace: &str,
    exposure: Option<&Exposure>,
) -> Result<Plan, String> {
    let field = |name: &str| {
        format!(
            "provider connection {index} ({:?}) {name}",
            connection.secret
        )
    };
    if !is_dns_subdomain(&connection.secret) {
        return Err(format!(
            "{}: must be a lowercase DNS subdomain (a Secret's name)",
            field("secret")
        ));
    }
    let path = connection
        .path
        .as_deref()
        .map(|p| {
            p.parse::<ClusterPath>()
                .map_err(|e| format!("{}: {e}", field("path")))
        })
        .transpose()?;
    let admin = connection.admin_auth.unwrap_or(false);
    let (target, mode) = if admin {
        let target = match (&connection.raw_path, &connection.endpoint_slice_name, path) {
            (Some(raw), _, _) => {
                if !raw.starts_with('/') {
                    return Err(format!("{}: must start with '/'", field("rawPath")));
                }
                Target::RawPath(raw.clone())
            }
            (None, Some(slice), Some(path)) => Target::Slice {
                path,
                name: slice.clone(),
            },
            (None, None, Some(path)) => Target::Workspace(path),
            (None, _, None) => {
                return Err(format!("{}: required unless rawPath is set", field("path")));
            }
        };
        (target, Mode::Admin)
    } else {
        if connection.raw_path.is_some() {
            return Err(format!(
                "{}: only for admin connections (adminAuth: true)",
                field("rawPath")
            ));
        }
        let path = path.ok_or_else(|| format!("{}: required in scoped mode", field("path")))?;
        match (&connection.endpoint_slice_name, &connection.api_export_name) {
            (Some(slice), None) => (
                Target::Slice {
                    path,
                    name: slice.clone(),
                },
                Mode::Scoped { export: None },
            ),
            (None, Some(export)) => (
                Target::Workspace(path),
                Mode::Scoped {
                    export: Some(export.clone()),
                },
            ),
            _ => {
                return Err(format!(
                    "{}: a scoped connection (adminAuth unset or false) needs exactly one of \
                     endpointSliceName and apiExportName",
                    field("endpointSliceName/apiExportName")
                ));
            }
        }
    };
    let external = connection.external.unwrap_or(false);
    if external && exposure.and_then(|e| e.base_domain.as_deref()).is_none() {
        return Err(format!(
            "{}: needs spec.exposure.baseDomain",
            field("external")
        ));
    }
    Ok(Plan {
        secret: connection.secret.clone(),
        namespace: connection
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        target,
        mode,
        external,
    })
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The ServiceAccount (and ClusterRole, ClusterRoleBinding) of a scoped connection.
pub fn service_account_name(secret: &str) -> String {
    format!("platform-mesh-provider-{secret}")
}

/// `https://kcp.api.<baseDomain>:<port>`, upstream's external kcp address.
fn external_base(exposure: Option<&Exposure>) -> Result<url::Url, SubroutineError> {
    let exposure = exposure.cloned().unwrap_or_default();
    let url = format!(
        "{}://kcp.api.{}:{}",
        exposure.protocol.as_deref().unwrap_or("https"),
        exposure.base_domain.as_deref().unwrap_or_default(),
        exposure.port.unwrap_or(8443)
    );
    url.parse().map_err(|e| {
        SubroutineError::permanent("InvalidSpec", format!("spec.exposure gives {url:?}: {e}"))
    })
}

/// See the module documentation.
#[derive(Debug)]
pub struct ProviderSecrets {
    /// `--subroutines-provider-secret-enabled`.
    pub enabled: bool,
}

#[async_trait]
impl Subroutine<PlatformMesh, Ctx> for ProviderSecrets {
    fn name(&self) -> &str {
        "ProvidersecretSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        vec![FINALIZER.to_owned()]
    }

    async fn process(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.enabled {
            return Ok(Outcome::skip(
                "writing provider kubeconfigs is off (--subroutines-provider-secret-enabled=false)",
            ));
        }
        let namespace = pm.namespace().unwrap_or_default();
        let exposure = pm.spec.exposure.as_ref();
        let plans = connections(pm)
            .iter()
            .enumerate()
            .map(|(i, c)| plan(i, c, &namespace, exposure))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SubroutineError::permanent("InvalidProviderConnection", e))?;
        let mut renew_in: Option<Duration> = None;
        for plan in &plans {
            if let Some(after) = write(pm, plan, ctx).await? {
                renew_in = Some(renew_in.map_or(after, |d| d.min(after)));
            }
        }
        remove_stale(pm, &plans, ctx).await?;
        Ok(renew_in.map_or(Outcome::Ok, Outcome::OkRequeue))
    }

    async fn finalize(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        remove_stale(pm, &[], ctx).await?;
        let namespace = pm.namespace().unwrap_or_default();
        for (i, connection) in connections(pm).iter().enumerate() {
            let Ok(plan) = plan(i, connection, &namespace, None) else {
                continue;
            };
            let (Mode::Scoped { .. }, Some(path)) = (&plan.mode, &connection.path) else {
                continue;
            };
            let Ok(path) = path.parse::<ClusterPath>() else {
                continue;
            };
            remove_service_account(ctx, &path, &plan.secret).await?;
        }
        Ok(Outcome::Ok)
    }
}

/// Writes one connection's Secret if it differs; returns when its token must be renewed.
async fn write(
    pm: &PlatformMesh,
    plan: &Plan,
    ctx: &Ctx,
) -> Result<Option<Duration>, SubroutineError> {
    let settings = &ctx.settings;
    let base = if plan.external {
        external_base(pm.spec.exposure.as_ref())?
    } else {
        settings.kcp_url.clone()
    };
    let invalid = |e: crate::kubeconfig::KubeconfigError| {
        SubroutineError::permanent(
            "InvalidProviderConnection",
            format!("Secret {}: {e}", plan.secret),
        )
    };
    let (server, export) = match &plan.target {
        Target::Workspace(path) => (workspace_server(&base, path), None),
        Target::RawPath(raw) => (raw_path_server(&base, raw).map_err(invalid)?, None),
        Target::Slice { path, name } => {
            let (url, export) = slice_endpoint(ctx, path, name).await?;
            (slice_server(&base, &url).map_err(invalid)?, Some(export))
        }
    };
    let target = KubeconfigSecret {
        namespace: &plan.namespace,
        name: &plan.secret,
        purpose: PURPOSE,
    };
    let existing = ctx.secret_to_write(pm, &target).await?;
    let mut annotations = BTreeMap::new();
    let mut renew_in = None;
    let credentials = match &plan.mode {
        Mode::Admin => Credentials::Admin(Box::new(settings.admin.auth.clone())),
        Mode::Scoped { export: named } => {
            let (export_path, export_name) = match (named, export, &plan.target) {
                (Some(name), _, Target::Workspace(path)) => (path.clone(), name.clone()),
                (_, Some(export), _) => export,
                _ => {
                    return Err(SubroutineError::permanent(
                        "InvalidProviderConnection",
                        format!("Secret {}: no APIExport to scope to", plan.secret),
                    ));
                }
            };
            let rules = export_rules(ctx, &export_path, &export_name).await?;
            ensure_service_account(pm, ctx, &export_path, &plan.secret, rules).await?;
            let token = token(ctx, plan, &export_path, existing.as_ref()).await?;
            annotations.insert(
                TOKEN_ISSUED_ANNOTATION.to_owned(),
                format_time(token.issued),
            );
            annotations.insert(
                TOKEN_EXPIRES_ANNOTATION.to_owned(),
                format_time(token.expires),
            );
            renew_in = Some(
                match renewal(token.issued, token.expires, SystemTime::now()) {
                    Renewal::Now => Duration::from_secs(1),
                    Renewal::After(after) => after,
                },
            );
            Credentials::Token(token.value)
        }
    };
    let kubeconfig = render(&KubeconfigParts {
        server,
        ca_pem: settings.admin.ca_pem.clone(),
        credentials,
    })
    .map_err(invalid)?;
    ctx.write_kubeconfig(pm, &target, existing.as_ref(), kubeconfig, annotations)
        .await?;
    Ok(renew_in)
}

/// The first endpoint a slice lists, and the export it serves; a wait while it lists none.
async fn slice_endpoint(
    ctx: &Ctx,
    path: &ClusterPath,
    name: &str,
) -> Result<(String, (ClusterPath, String)), SubroutineError> {
    let slice = Api::<ApiExportEndpointSlice>::all(ctx.kcp(path)?)
        .get_opt(name)
        .await
        .map_err(|e| {
            SubroutineError::kube(format!("reading APIExportEndpointSlice {path}/{name}"), e)
        })?
        .ok_or_else(|| {
            SubroutineError::transient(format!(
                "APIExportEndpointSlice {path}/{name} does not exist"
            ))
        })?;
    let url = slice
        .endpoint_urls()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| Wait {
            message: format!(
                "APIExportEndpointSlice {path}/{name} lists no endpoints yet (no workspace binds \
             its export, or kcp has not published them)"
            ),
            requeue_after: Some(EMPTY_SLICE_POLL),
        })?;
    let export_path = slice
        .spec
        .export
        .path
        .parse::<ClusterPath>()
        .unwrap_or_else(|_| path.clone());
    Ok((url, (export_path, slice.spec.export.name.clone())))
}

/// The RBAC a scoped component gets from the export, plus kcp's `access` to the workspace.
async fn export_rules(
    ctx: &Ctx,
    path: &ClusterPath,
    name: &str,
) -> Result<Vec<PolicyRule>, SubroutineError> {
    let export = Api::<ApiExport>::all(ctx.kcp(path)?)
        .get_opt(name)
        .await
        .map_err(|e| SubroutineError::kube(format!("reading APIExport {path}/{name}"), e))?
        .ok_or_else(|| {
            SubroutineError::transient(format!("APIExport {path}/{name} does not exist"))
        })?;
    let mut rules = scoped_rules(name, &export.spec);
    rules.push(PolicyRule {
        non_resource_urls: Some(vec!["/".to_owned()]),
        verbs: vec!["access".to_owned()],
        ..Default::default()
    });
    Ok(rules)
}

/// The ServiceAccount `platform-mesh-provider-<secret>` in namespace `default` of `path`,
/// with a ClusterRole of `rules` bound to it.
async fn ensure_service_account(
    pm: &PlatformMesh,
    ctx: &Ctx,
    path: &ClusterPath,
    secret: &str,
    rules: Vec<PolicyRule>,
) -> Result<(), SubroutineError> {
    let client = ctx.kcp(path)?;
    let name = service_account_name(secret);
    let manager = &ctx.settings.field_manager;
    let meta = |namespace: Option<&str>| ObjectMeta {
        name: Some(name.clone()),
        namespace: namespace.map(str::to_owned),
        labels: Some(owner_labels(pm, PURPOSE)),
        ..Default::default()
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let missing = namespaces
        .get_opt("default")
        .await
        .map_err(|e| SubroutineError::kube(format!("reading namespace default in {path}"), e))?
        .is_none();
    if missing {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some("default".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(SubroutineError::kube(
                    format!("creating namespace default in {path}"),
                    e,
                ));
            }
        }
    }
    let account = ServiceAccount {
        metadata: meta(Some("default")),
        ..Default::default()
    };
    ensure_value(
        &Api::namespaced_with(
            client.clone(),
            "default",
            &ApiResource::erase::<ServiceAccount>(&()),
        ),
        &typed_value(&account)?,
        &format!("ServiceAccount {path}/default/{name}"),
        manager,
    )
    .await?;
    let role = ClusterRole {
        metadata: meta(None),
        rules: Some(rules),
        aggregation_rule: None,
    };
    ensure_value(
        &Api::all_with(client.clone(), &ApiResource::erase::<ClusterRole>(&())),
        &typed_value(&role)?,
        &format!("ClusterRole {path}/{name}"),
        manager,
    )
    .await?;
    let binding = ClusterRoleBinding {
        metadata: meta(None),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: name.clone(),
            namespace: Some("default".to_owned()),
            api_group: None,
        }]),
    };
    ensure_value(
        &Api::all_with(client, &ApiResource::erase::<ClusterRoleBinding>(&())),
        &typed_value(&binding)?,
        &format!("ClusterRoleBinding {path}/{name}"),
        manager,
    )
    .await?;
    Ok(())
}

/// A scoped connection's token, and when it was issued and expires.
struct Token {
    value: String,
    issued: SystemTime,
    expires: SystemTime,
}

/// The token in the connection's Secret (`existing`) while it is not due for renewal, else a
/// new one.
async fn token(
    ctx: &Ctx,
    plan: &Plan,
    path: &ClusterPath,
    existing: Option<&Secret>,
) -> Result<Token, SubroutineError> {
    if let Some(current) = existing.and_then(current_token)
        && matches!(
            renewal(current.issued, current.expires, SystemTime::now()),
            Renewal::After(_)
        )
    {
        return Ok(current);
    }
    let name = service_account_name(&plan.secret);
    let lifetime = ctx.settings.scoped_token_lifetime;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
            bound_object_ref: None,
        }),
        ..Default::default()
    };
    let issued = SystemTime::now();
    let answer = Api::<ServiceAccount>::namespaced(ctx.kcp(path)?, "default")
        .create_token_request(&name, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            SubroutineError::kube(format!("requesting a token for {path}/default/{name}"), e)
        })?;
    let no_token =
        || SubroutineError::transient(format!("kcp returned no token for {path}/default/{name}"));
    let status = answer.status.ok_or_else(no_token)?;
    let (Some(value), Some(expires)) = (status.token, status.expiration_timestamp) else {
        return Err(no_token());
    };
    tracing::info!(secret = %plan.secret, "issued a token");
    Ok(Token {
        value,
        issued,
        // kcp may shorten the lifetime; its answer is what counts.
        expires: SystemTime::from(expires.0),
    })
}

/// The token `secret` holds, with its annotations; `None` when there is none.
fn current_token(secret: &Secret) -> Option<Token> {
    let annotation = |key: &str| secret.annotations().get(key).and_then(|t| parse_time(t));
    let (Some(issued), Some(expires)) = (
        annotation(TOKEN_ISSUED_ANNOTATION),
        annotation(TOKEN_EXPIRES_ANNOTATION),
    ) else {
        return None;
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .and_then(|k| std::str::from_utf8(&k.0).ok())
        .and_then(|text| kube::config::Kubeconfig::from_yaml(text).ok())
        .and_then(|k| k.auth_infos.into_iter().next())
        .and_then(|a| a.auth_info)
        // kube keeps the token as a secret string; its serialization is the way to read it.
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|a| a["token"].as_str().map(str::to_owned));
    value.map(|value| Token {
        value,
        issued,
        expires,
    })
}

/// Deletes the Secrets labelled as `pm`'s whose connection is not in `keep`.
async fn remove_stale(pm: &PlatformMesh, keep: &[Plan], ctx: &Ctx) -> Result<(), SubroutineError> {
    let wanted: BTreeSet<(String, String)> = keep
        .iter()
        .map(|p| (p.namespace.clone(), p.secret.clone()))
        .collect();
    let all: Api<Secret> = Api::all(ctx.host()?);
    let owned = all
        .list_metadata(&ListParams::default().labels(&owner_selector(pm, PURPOSE)))
        .await
        .map_err(|e| SubroutineError::kube("listing the Secrets this PlatformMesh wrote", e))?;
    for secret in owned {
        let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        if wanted.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        match Api::<Secret>::namespaced(ctx.host()?, &namespace)
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => {
                tracing::info!(%namespace, %name, "deleted a kubeconfig Secret no connection names")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(SubroutineError::kube(
                    format!("deleting Secret {namespace}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

async fn remove_service_account(
    ctx: &Ctx,
    path: &ClusterPath,
    secret: &str,
) -> Result<(), SubroutineError> {
    let client = ctx.kcp(path)?;
    let name = service_account_name(secret);
    let ignore_missing = |result: Result<(), kube::Error>, what: &str| match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(SubroutineError::kube(
            format!("deleting {what} {path}/{name}"),
            e,
        )),
    };
    let dp = DeleteParams::default();
    ignore_missing(
        Api::<ClusterRoleBinding>::all(client.clone())
            .delete(&name, &dp)
            .await
            .map(drop),
        "ClusterRoleBinding",
    )?;
    ignore_missing(
        Api::<ClusterRole>::all(client.clone())
            .delete(&name, &dp)
            .await
            .map(drop),
        "ClusterRole",
    )?;
    ignore_missing(
        Api::<ServiceAccount>::namespaced(client, "default")
            .delete(&name, &dp)
            .await
            .map(drop),
        "ServiceAccount",
    )
}

#[cfg(test)]
mod tests;
