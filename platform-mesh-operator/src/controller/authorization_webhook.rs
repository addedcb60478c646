//! `AuthorizationwebhookSubroutine`: the kubeconfig with which kcp's authorizer calls the
//! rebac-authz-webhook (`--authorization-webhook-config-file`), as a Secret in the
//! PlatformMesh's namespace: the webhook's URL and the CA of its serving certificate, read
//! from the certificate's Secret. The Secret watch brings a rotated CA in; the kubeconfig is
//! rewritten only when it changed.
//!
//! kcp v0.32 reads the file once, at start: after a rotation kcp must be restarted to use the
//! new CA (upstream deleted kcp's pods itself; that is left to whoever runs kcp).

use std::collections::BTreeMap;

use async_trait::async_trait;
use crds::PlatformMesh;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::DeleteParams;
use lifecycle::{Outcome, Subroutine, SubroutineError};

use super::{Ctx, KubeconfigSecret, owner_labels};
use crate::kubeconfig::{Credentials, KubeconfigParts, render};

/// The finalizer: the Secret goes with the PlatformMesh.
pub const FINALIZER: &str = "core.platform-mesh.io/authorization-webhook";

const PURPOSE: &str = "authorization-webhook-kubeconfig";

/// See the module documentation.
#[derive(Debug)]
pub struct AuthorizationWebhook {
    /// `--subroutines-authorization-webhook-enabled`.
    pub enabled: bool,
}

/// The webhook's URL: `--authorization-webhook-url`, else the Service the chart creates in
/// the PlatformMesh's namespace.
pub fn webhook_url(flag: Option<&url::Url>, namespace: &str) -> String {
    flag.map_or_else(
        || format!("https://rebac-authz-webhook.{namespace}.svc:9443/authz"),
        ToString::to_string,
    )
}

#[async_trait]
impl Subroutine<PlatformMesh, Ctx> for AuthorizationWebhook {
    fn name(&self) -> &str {
        "AuthorizationwebhookSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        vec![FINALIZER.to_owned()]
    }

    async fn process(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.enabled {
            return Ok(Outcome::skip(
                "writing the authorization webhook's kubeconfig is off \
                 (--subroutines-authorization-webhook-enabled=false)",
            ));
        }
        let settings = &ctx.settings;
        let namespace = pm.namespace().unwrap_or_default();
        let target = KubeconfigSecret {
            namespace: &namespace,
            name: &settings.authorization_webhook_secret,
            purpose: PURPOSE,
        };
        let existing = ctx.secret_to_write(pm, &target).await?;
        let ca = ctx
            .secret_text(
                &namespace,
                &settings.authorization_webhook_ca_secret,
                "ca.crt",
            )
            .await?;
        let kubeconfig = render(&KubeconfigParts {
            server: webhook_url(settings.authorization_webhook_url.as_ref(), &namespace),
            ca_pem: Some(ca),
            // kcp authenticates to the webhook by TLS only.
            credentials: Credentials::Admin(Box::default()),
        })
        .map_err(|e| SubroutineError::permanent("InvalidWebhookCa", e.to_string()))?;
        ctx.write_kubeconfig(pm, &target, existing.as_ref(), kubeconfig, BTreeMap::new())
            .await?;
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let namespace = pm.namespace().unwrap_or_default();
        let name = &ctx.settings.authorization_webhook_secret;
        let secrets = kube::Api::<Secret>::namespaced(ctx.host()?, &namespace);
        match secrets.get_opt(name).await {
            // Only the Secret this PlatformMesh wrote: one of the same name made by someone
            // else stays.
            Ok(Some(secret))
                if owner_labels(pm, PURPOSE)
                    .iter()
                    .all(|(k, v)| secret.labels().get(k) == Some(v)) =>
            {
                match secrets.delete(name, &DeleteParams::default()).await {
                    Ok(_) => Ok(Outcome::Ok),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(Outcome::Ok),
                    Err(e) => Err(SubroutineError::kube(
                        format!("deleting Secret {namespace}/{name}"),
                        e,
                    )),
                }
            }
            Ok(_) => Ok(Outcome::Ok),
            Err(e) => Err(SubroutineError::kube(
                format!("reading Secret {namespace}/{name}"),
                e,
            )),
        }
    }
}
