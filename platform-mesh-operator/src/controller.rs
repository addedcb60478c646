//! The PlatformMesh controller: its context, its subroutines in order, and the watch that
//! wakes it when a Secret it reads (a CA) or writes (a kubeconfig) changes.
//!
//! | subroutine (condition) | what it does |
//! |---|---|
//! | [`KcpsetupSubroutine`](kcp_setup) | the kcp tree, phase by phase |
//! | [`ProvidersecretSubroutine`](provider_secrets) | a kubeconfig Secret per connection |
//! | [`AuthorizationwebhookSubroutine`](authorization_webhook) | kcp's kubeconfig for the rebac-authz-webhook |
//! | [`DeploymentSubroutine`](deployment) | a Flux HelmRelease per enabled component |
//! | [`WelcomeSubroutine`](welcome) | the welcome realm and `orgs-authentication` |

pub mod authorization_webhook;
pub mod deployment;
pub mod kcp_setup;
pub mod provider_secrets;
pub mod welcome;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crds::PlatformMesh;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kcp::runtime::{Cache, Context, ObjectKey};
use kit::controller::{LifecycleController, Setup};
use kube::api::{ApiResource, DynamicObject, ObjectMeta};
use kube::{Api, Client, ResourceExt};
use lifecycle::{Subroutine, SubroutineError};

use crate::flux::ChartSource;
use crate::kubeconfig::AdminSource;

/// The controller's name, in logs and metrics.
pub const PLATFORM_MESH_RECONCILER: &str = "PlatformMeshReconciler";

/// Labels naming the PlatformMesh an object in the hosting cluster (or a ServiceAccount and
/// its RBAC in kcp) belongs to, by which deletion finds it.
pub const OWNER_NAME_LABEL: &str = "core.platform-mesh.io/platform-mesh";
/// See [`OWNER_NAME_LABEL`].
pub const OWNER_NAMESPACE_LABEL: &str = "core.platform-mesh.io/platform-mesh-namespace";
/// Which subroutine wrote an object (`provider-kubeconfig`, …), so that each cleans up only
/// its own.
pub const PURPOSE_LABEL: &str = "core.platform-mesh.io/purpose";

/// How soon a wait for kcp (a workspace turning Ready, a binding bound) is looked at again:
/// kcp is not watched, and these waits take a second or two.
pub const KCP_WAIT_POLL: Duration = Duration::from_millis(250);

/// What every reconcile shares.
#[derive(Debug)]
pub struct Settings {
    /// kcp, with the admin credentials.
    pub kcp: kcp::ClientFactory,
    /// The address written into kubeconfigs.
    pub kcp_url: url::Url,
    /// The admin credentials and kcp's CA, copied into admin-mode kubeconfigs.
    pub admin: AdminSource,
    /// The field manager of every write.
    pub field_manager: String,
    /// `--kcp-drift-check-interval`.
    pub drift_check_interval: Duration,
    /// The account-operator's webhooks, unless `--no-account-operator-webhooks`.
    pub account_webhooks: Option<WebhookRegistration>,
    /// The security-operator's webhook, with `--security-operator-webhook-ca-secret`.
    pub security_webhook: Option<WebhookRegistration>,
    /// `--authorization-webhook-secret-name`.
    pub authorization_webhook_secret: String,
    /// `--authorization-webhook-secret-ca-name`.
    pub authorization_webhook_ca_secret: String,
    /// `--authorization-webhook-url`.
    pub authorization_webhook_url: Option<url::Url>,
    /// `--scoped-token-lifetime`.
    pub scoped_token_lifetime: Duration,
    /// How far each PlatformMesh's kcp setup got.
    pub setup_progress: kcp_setup::SetupProgress,
    /// Where the charts come from.
    pub charts: ChartSource,
    /// The welcome realm's flags.
    pub welcome: crate::welcome::WelcomeSettings,
}

/// An admission webhook server to register in kcp: the Secret holding its CA, and where kcp
/// reaches it.
#[derive(Debug, Clone)]
pub struct WebhookRegistration {
    /// The Secret, in the PlatformMesh's namespace, holding the CA under `ca.crt`.
    pub ca_secret: String,
    /// Its base URL; default `https://<service>.<namespace>.svc:9443`.
    pub url: Option<url::Url>,
    /// The Service its chart creates.
    pub service: &'static str,
}

impl WebhookRegistration {
    /// The base URL kcp calls, for a PlatformMesh in `namespace`.
    pub fn base_url(&self, namespace: &str) -> String {
        self.url.as_ref().map_or_else(
            || format!("https://{}.{namespace}.svc:9443", self.service),
            ToString::to_string,
        )
    }
}

/// What the `--subroutines-*-enabled` flags switch off: a step switched off reports Skipped
/// and still cleans up on deletion.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub kcp_setup: bool,
    pub provider_secrets: bool,
    pub authorization_webhook: bool,
    /// Whether HelmReleases are rendered. The subroutine is always in the chain: it
    /// validates `spec.values` even when rendering is off.
    pub deployment: bool,
    /// `--delete-workspaces-on-delete`.
    pub delete_workspaces: bool,
    /// `--subroutines-welcome-enabled`.
    pub welcome: bool,
}

/// One reconcile's context.
#[derive(Debug)]
pub struct Ctx {
    /// The runtime's context: the hosting cluster's client.
    pub runtime: Context,
    pub settings: Arc<Settings>,
}

impl Ctx {
    /// A client for the hosting cluster.
    pub fn host(&self) -> Result<Client, SubroutineError> {
        self.runtime
            .client()
            .map_err(|e| SubroutineError::transient_from("a client for the hosting cluster", e))
    }

    /// A client for kcp workspace `path`, with the admin credentials.
    pub fn kcp(&self, path: &kcp::ClusterPath) -> Result<Client, SubroutineError> {
        self.settings
            .kcp
            .for_path(path)
            .map_err(|e| SubroutineError::transient_from(format!("a client for {path}"), e))
    }

    /// An `Api` for Secrets in `namespace` of the hosting cluster, as dynamic objects (for
    /// [`crate::apply::apply_unless_same`]).
    pub fn secrets(&self, namespace: &str) -> Result<Api<DynamicObject>, SubroutineError> {
        Ok(Api::namespaced_with(
            self.host()?,
            namespace,
            &ApiResource::erase::<Secret>(&()),
        ))
    }

    /// `key` of Secret `name` in `namespace` of the hosting cluster, as text; a wait naming
    /// the Secret while it or the key is missing.
    pub async fn secret_text(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Result<String, SubroutineError> {
        let secret = Api::<Secret>::namespaced(self.host()?, namespace)
            .get_opt(name)
            .await
            .map_err(|e| SubroutineError::kube(format!("reading Secret {namespace}/{name}"), e))?;
        let missing = || lifecycle::Wait {
            message: format!("waiting for Secret {namespace}/{name} with key {key}"),
            // The Secret watch brings the object back when it appears.
            requeue_after: None,
        };
        let bytes = secret
            .and_then(|s| s.data)
            .and_then(|mut d| d.remove(key))
            .ok_or_else(missing)?;
        String::from_utf8(bytes.0).map_err(|_| {
            SubroutineError::permanent(
                "InvalidSecret",
                format!("Secret {namespace}/{name} key {key} is not UTF-8 text"),
            )
        })
    }
}

/// A kubeconfig Secret one of the subroutines writes.
#[derive(Debug)]
pub struct KubeconfigSecret<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Which subroutine writes it (see [`PURPOSE_LABEL`]).
    pub purpose: &'a str,
}

impl KubeconfigSecret<'_> {
    fn describe(&self) -> String {
        format!("Secret {}/{}", self.namespace, self.name)
    }
}

impl Ctx {
    /// The Secret as it is before `pm` writes it: `None` when missing, an `OwnedByAnother`
    /// error when another PlatformMesh wrote it.
    pub async fn secret_to_write(
        &self,
        pm: &PlatformMesh,
        secret: &KubeconfigSecret<'_>,
    ) -> Result<Option<Secret>, SubroutineError> {
        let what = secret.describe();
        let existing = Api::<Secret>::namespaced(self.host()?, secret.namespace)
            .get_opt(secret.name)
            .await
            .map_err(|e| SubroutineError::kube(format!("reading {what}"), e))?;
        check_owner(
            pm,
            existing.as_ref().and_then(|s| s.metadata.labels.as_ref()),
            &what,
        )?;
        Ok(existing)
    }

    /// Writes `kubeconfig` (and `annotations`) into the Secret, labelled as `pm`'s, when it
    /// differs from `existing` (what [`Ctx::secret_to_write`] read).
    pub async fn write_kubeconfig(
        &self,
        pm: &PlatformMesh,
        secret: &KubeconfigSecret<'_>,
        existing: Option<&Secret>,
        kubeconfig: String,
        annotations: BTreeMap<String, String>,
    ) -> Result<(), SubroutineError> {
        let object = Secret {
            metadata: ObjectMeta {
                name: Some(secret.name.to_owned()),
                namespace: Some(secret.namespace.to_owned()),
                labels: Some(owner_labels(pm, secret.purpose)),
                annotations: (!annotations.is_empty()).then_some(annotations),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "kubeconfig".to_owned(),
                ByteString(kubeconfig.into_bytes()),
            )])),
            type_: Some("Opaque".to_owned()),
            ..Default::default()
        };
        let live = existing.map(crate::apply::typed_value).transpose()?;
        crate::apply::apply_unless_same(
            &self.secrets(secret.namespace)?,
            &crate::apply::typed_value(&object)?,
            live,
            &secret.describe(),
            &self.settings.field_manager,
        )
        .await?;
        Ok(())
    }
}

/// The labels naming `pm` as the owner, and the writer's `purpose`.
pub fn owner_labels(pm: &PlatformMesh, purpose: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PURPOSE_LABEL.to_owned(), purpose.to_owned()),
        (OWNER_NAME_LABEL.to_owned(), pm.name_any()),
        (
            OWNER_NAMESPACE_LABEL.to_owned(),
            pm.namespace().unwrap_or_default(),
        ),
        (
            crate::bootstrap::MANAGED_BY_LABEL.to_owned(),
            crate::bootstrap::MANAGED_BY.to_owned(),
        ),
    ])
}

/// A permanent error when an object about to be written (`labels`, if it exists) was written
/// for another PlatformMesh: two of them writing one Secret would overwrite each other
/// forever. An object without owner labels (made by hand, or by upstream's operator) is
/// taken over.
fn check_owner(
    pm: &PlatformMesh,
    labels: Option<&BTreeMap<String, String>>,
    what: &str,
) -> Result<(), SubroutineError> {
    let Some(labels) = labels else {
        return Ok(());
    };
    let (Some(name), Some(namespace)) = (
        labels.get(OWNER_NAME_LABEL),
        labels.get(OWNER_NAMESPACE_LABEL),
    ) else {
        return Ok(());
    };
    if *name == pm.name_any() && Some(namespace.as_str()) == pm.namespace().as_deref() {
        return Ok(());
    }
    Err(SubroutineError::permanent(
        "OwnedByAnother",
        format!("{what} belongs to PlatformMesh {namespace}/{name}; give this one another name"),
    ))
}

/// The label selector of [`owner_labels`].
pub fn owner_selector(pm: &PlatformMesh, purpose: &str) -> String {
    format!(
        "{OWNER_NAME_LABEL}={},{OWNER_NAMESPACE_LABEL}={},{PURPOSE_LABEL}={purpose}",
        pm.name_any(),
        pm.namespace().unwrap_or_default()
    )
}

/// The PlatformMesh controller on the hosting cluster.
pub fn platform_mesh_controller(
    setup: &Setup,
    settings: Arc<Settings>,
    steps: Steps,
) -> LifecycleController<PlatformMesh, Ctx> {
    // Every step is in the chain whatever the flags: a disabled one reports Skipped and still
    // cleans up on deletion, so a finalizer it added before it was disabled is released (the
    // engine never releases a finalizer no subroutine claims).
    let subroutines: Vec<Box<dyn Subroutine<PlatformMesh, Ctx>>> = vec![
        Box::new(kcp_setup::KcpSetup {
            enabled: steps.kcp_setup,
            delete_workspaces: steps.delete_workspaces,
        }),
        Box::new(provider_secrets::ProviderSecrets {
            enabled: steps.provider_secrets,
        }),
        Box::new(authorization_webhook::AuthorizationWebhook {
            enabled: steps.authorization_webhook,
        }),
        Box::new(deployment::Deployment {
            render: steps.deployment,
        }),
        Box::new(welcome::Welcome {
            enabled: steps.welcome,
            delete_workspaces: steps.delete_workspaces,
        }),
    ];
    LifecycleController::new(
        PLATFORM_MESH_RECONCILER,
        setup,
        subroutines,
        move |runtime| Ctx {
            runtime,
            settings: settings.clone(),
        },
    )
    // A Secret this operator reads (a CA) or wrote (a kubeconfig someone deleted) wakes the
    // PlatformMeshes of its namespace, and the one its labels name.
    .watches::<Secret>(secret_wakes)
}

fn secret_wakes(secret: &Secret, key: &ObjectKey, cache: &Cache<PlatformMesh>) -> Vec<ObjectKey> {
    let labels = secret.labels();
    let mut keys: Vec<ObjectKey> = cache
        .in_cluster(&key.cluster)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k.namespace == key.namespace
                || (labels.get(OWNER_NAME_LABEL) == Some(&k.name)
                    && labels.get(OWNER_NAMESPACE_LABEL) == k.namespace.as_ref())
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
