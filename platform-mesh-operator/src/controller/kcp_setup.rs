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

use super::{Ctx, KCP_WAIT_POLL};
use crate::apply::{ensure, is_ready};
use crate::bootstrap::{AccountWebhooks, Inputs, created_workspaces, tree};

/// The finalizer; without `--delete-workspaces-on-delete` its cleanup does nothing (the tree
/// outlives the PlatformMesh).
pub const WORKSPACES_FINALIZER: &str = "core.platform-mesh.io/kcp-workspaces";

/// See the module documentation.
#[derive(Debug)]
pub struct KcpSetup {
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
        let inputs = inputs(pm, ctx).await?;
        let phases =
            tree(&inputs).map_err(|e| SubroutineError::permanent("InvalidSpec", e.to_string()))?;
        let settings = &ctx.settings;
        for phase in &phases {
            let mut waiting = Vec::new();
            for desired in &phase.objects {
                let ensured = ensure(&settings.kcp, desired, &settings.field_manager).await?;
                if !is_ready(desired.readiness, &ensured.live) {
                    waiting.push(desired.describe());
                }
            }
            if !waiting.is_empty() {
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
        };
        let mut remaining = Vec::new();
        for (parent, name) in created_workspaces(&inputs) {
            let api: Api<Workspace> = Api::all(kcp_client(ctx, &parent)?);
            match api.get_opt(&name).await {
                Ok(None) => continue,
                Ok(Some(ws)) if ws.metadata.deletion_timestamp.is_some() => {}
                Ok(Some(_)) => {
                    api.delete(&name, &Default::default()).await.map_err(|e| {
                        SubroutineError::kube(format!("deleting workspace {parent}:{name}"), e)
                    })?;
                }
                Err(e) => {
                    return Err(SubroutineError::kube(
                        format!("reading workspace {parent}:{name}"),
                        e,
                    ));
                }
            }
            remaining.push(format!("{parent}:{name}"));
        }
        if remaining.is_empty() {
            Ok(Outcome::Ok)
        } else {
            Err(Wait {
                message: format!(
                    "waiting for workspaces to be deleted: {}",
                    remaining.join(", ")
                ),
                requeue_after: Some(KCP_WAIT_POLL),
            }
            .into())
        }
    }
}

fn kcp_client(ctx: &Ctx, path: &ClusterPath) -> Result<kube::Client, SubroutineError> {
    ctx.settings
        .kcp
        .for_path(path)
        .map_err(|e| SubroutineError::transient_from(format!("a client for {path}"), e))
}

/// Dereference: what the tree needs besides the spec, read from kcp and the hosting cluster.
async fn inputs(pm: &PlatformMesh, ctx: &Ctx) -> Result<Inputs, SubroutineError> {
    let settings = &ctx.settings;
    let tenancy = Api::<ApiExport>::all(kcp_client(ctx, &ClusterPath::root())?)
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
    let account_webhooks = match &settings.account_webhook_ca_secret {
        Some(secret) => Some(AccountWebhooks {
            base_url: settings.account_webhook_url.as_ref().map_or_else(
                || format!("https://account-operator-webhook.{namespace}.svc:9443"),
                ToString::to_string,
            ),
            ca_pem: ctx.secret_text(&namespace, secret, "ca.crt").await?,
        }),
        None => None,
    };
    let kcp = pm.spec.kcp.clone().unwrap_or_default();
    Ok(Inputs {
        tenancy_identity_hash: tenancy,
        extra_default_bindings: kcp.extra_default_api_bindings,
        extra_workspaces: kcp.extra_workspaces,
        account_webhooks,
    })
}
