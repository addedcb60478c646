//! `KcpsetupSubroutine`: the kcp tree ([`crate::bootstrap`]), phase by phase. Each object is
//! read and written only when it differs; a phase whose objects are not ready yet is a wait
//! naming them. Once everything is ready the tree is compared again after
//! `--kcp-drift-check-interval`, so a deleted or edited object is put back.

use async_trait::async_trait;
use crds::PlatformMesh;
use kcp::ClusterPath;
use kcp::types::apis::ApiExport;
use kcp::types::tenancy::Workspace;
use kube::{Api, ResourceExt};
use lifecycle::{Outcome, Subroutine, SubroutineError, Wait};

use super::WebhookRegistration;
use super::{Ctx, KCP_WAIT_POLL};
use crate::apply::{ensure, is_ready};
use crate::bootstrap::{Inputs, WebhookAddress, created_workspaces, tree};

/// The finalizer; without `--delete-workspaces-on-delete` its cleanup does nothing (the tree
/// outlives the PlatformMesh).
pub const WORKSPACES_FINALIZER: &str = "core.platform-mesh.io/kcp-workspaces";

/// See the module documentation.
#[derive(Debug)]
pub struct KcpSetup {
    /// `--subroutines-kcp-setup-enabled`.
    pub enabled: bool,
    /// `--delete-workspaces-on-delete`.
    pub delete_workspaces: bool,
}

#[async_trait]
impl Subroutine<PlatformMesh, Ctx> for KcpSetup {
    fn name(&self) -> &str {
        "KcpsetupSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        // Held whatever the flag says: a finalizer no subroutine claims would never be
        // removed, had the flag changed between creation and deletion.
        vec![WORKSPACES_FINALIZER.to_owned()]
    }

    async fn process(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.enabled {
            return Ok(Outcome::skip(
                "setting up kcp is off (--subroutines-kcp-setup-enabled=false)",
            ));
        }
        let inputs = inputs(pm, ctx).await?;
        let phases =
            tree(&inputs).map_err(|e| SubroutineError::permanent("InvalidSpec", e.to_string()))?;
        let settings = &ctx.settings;
        // While the tree is being set up, phases found complete are not read again at every
        // poll; the drift check after it is complete reads them all.
        let key = progress_key(pm);
        let resume = settings.setup_progress.resume_from(&key);
        for (index, phase) in phases.iter().enumerate().skip(resume) {
            let mut waiting = Vec::new();
            for desired in &phase.objects {
                let ensured =
                    ensure(ctx.kcp(&desired.path)?, desired, &settings.field_manager).await?;
                if !is_ready(desired.readiness, &ensured.live) {
                    waiting.push(desired.describe());
                }
            }
            if !waiting.is_empty() {
                settings.setup_progress.waiting_at(key, index);
                return Err(Wait {
                    message: format!(
                        "setting up {}: waiting for {}",
                        phase.name,
                        waiting.join(", ")
                    ),
                    requeue_after: Some(KCP_WAIT_POLL),
                }
                .into());
            }
        }
        settings.setup_progress.complete(&key);
        Ok(Outcome::OkRequeue(settings.drift_check_interval))
    }

    async fn finalize(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.delete_workspaces {
            return Ok(Outcome::Ok);
        }
        let inputs = Inputs {
            tenancy_identity_hash: String::new(),
            extra_default_bindings: Vec::new(),
            extra_workspaces: pm
                .spec
                .kcp
                .as_ref()
                .map(|k| k.extra_workspaces.clone())
                .unwrap_or_default(),
            account_webhooks: None,
            security_webhook: None,
        };
        // One at a time, deepest first and the system workspace last: a workspace binding the
        // core export cannot finish deleting once the export's workspace is gone.
        for (parent, name) in created_workspaces(&inputs) {
            let api: Api<Workspace> = Api::all(ctx.kcp(&parent)?);
            let workspace = api.get_opt(&name).await.map_err(|e| {
                SubroutineError::kube(format!("reading workspace {parent}:{name}"), e)
            })?;
            let Some(workspace) = workspace else {
                continue;
            };
            if workspace.metadata.deletion_timestamp.is_none() {
                api.delete(&name, &Default::default()).await.map_err(|e| {
                    SubroutineError::kube(format!("deleting workspace {parent}:{name}"), e)
                })?;
            }
            return Err(Wait {
                message: format!("waiting for workspace {parent}:{name} to be deleted"),
                requeue_after: Some(KCP_WAIT_POLL),
            }
            .into());
        }
        Ok(Outcome::Ok)
    }
}

/// A PlatformMesh's progress key: a new generation (a changed spec) starts from the first
/// phase.
fn progress_key(pm: &PlatformMesh) -> (String, i64) {
    (
        pm.metadata.uid.clone().unwrap_or_default(),
        pm.metadata.generation.unwrap_or_default(),
    )
}

/// How far each PlatformMesh's setup got: the phase it waits in. Forgotten once the tree is
/// complete.
#[derive(Debug, Default)]
pub struct SetupProgress(std::sync::Mutex<std::collections::HashMap<(String, i64), usize>>);

impl SetupProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, i64), usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first phase to look at: the one it waited in, or the first.
    pub fn resume_from(&self, key: &(String, i64)) -> usize {
        self.lock().get(key).copied().unwrap_or(0)
    }

    /// It waits in phase `index`.
    pub fn waiting_at(&self, key: (String, i64), index: usize) {
        // Only the current generation is kept.
        let mut progress = self.lock();
        progress.retain(|(uid, _), _| *uid != key.0);
        progress.insert(key, index);
    }

    /// The tree is complete.
    pub fn complete(&self, key: &(String, i64)) {
        self.lock().retain(|(uid, _), _| *uid != key.0);
    }
}

/// Dereference: what the tree needs besides the spec, read from kcp and the hosting cluster.
async fn inputs(pm: &PlatformMesh, ctx: &Ctx) -> Result<Inputs, SubroutineError> {
    let settings = &ctx.settings;
    let tenancy = Api::<ApiExport>::all(ctx.kcp(&ClusterPath::root())?)
        .get_opt("tenancy.kcp.io")
        .await
        .map_err(|e| SubroutineError::kube("reading root's tenancy.kcp.io APIExport", e))?
        .and_then(|e| e.status)
        .and_then(|s| s.identity_hash)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Wait {
            message: "waiting for root's tenancy.kcp.io APIExport to have an identity hash"
                .to_owned(),
            requeue_after: Some(KCP_WAIT_POLL),
        })?;
    let namespace = pm.namespace().unwrap_or_default();
    let account_webhooks = address(ctx, &namespace, settings.account_webhooks.as_ref()).await?;
    let security_webhook = address(ctx, &namespace, settings.security_webhook.as_ref()).await?;
    let kcp = pm.spec.kcp.clone().unwrap_or_default();
    Ok(Inputs {
        tenancy_identity_hash: tenancy,
        extra_default_bindings: kcp.extra_default_api_bindings,
        extra_workspaces: kcp.extra_workspaces,
        account_webhooks,
        security_webhook,
    })
}

/// Where kcp reaches a webhook server to register, with the CA read from its Secret; a wait
/// naming the Secret while it is missing.
async fn address(
    ctx: &Ctx,
    namespace: &str,
    registration: Option<&WebhookRegistration>,
) -> Result<Option<WebhookAddress>, SubroutineError> {
    let Some(registration) = registration else {
        return Ok(None);
    };
    Ok(Some(WebhookAddress {
        base_url: registration.base_url(namespace),
        ca_pem: ctx
            .secret_text(namespace, &registration.ca_secret, "ca.crt")
            .await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_resumes_where_it_waited_until_the_spec_changes_or_it_completes() {
        let progress = SetupProgress::default();
        let first = ("uid".to_owned(), 1);
        assert_eq!(progress.resume_from(&first), 0);
        progress.waiting_at(first.clone(), 3);
        assert_eq!(progress.resume_from(&first), 3);
        // A new generation starts over, and the old one is forgotten.
        let second = ("uid".to_owned(), 2);
        assert_eq!(progress.resume_from(&second), 0);
        progress.waiting_at(second.clone(), 1);
        assert_eq!(progress.resume_from(&first), 0);
        // Other PlatformMeshes are their own.
        progress.waiting_at(("other".to_owned(), 1), 5);
        progress.complete(&second);
        assert_eq!(progress.resume_from(&second), 0);
        assert_eq!(progress.resume_from(&("other".to_owned(), 1)), 5);
    }
}
