//! `DeploymentSubroutine`: with `--subroutines-deployment-enabled`, a Flux HelmRepository
//! and a HelmRelease per enabled component of this suite, in the PlatformMesh's namespace,
//! values merged from `spec.values` over defaults that wire each chart to the kubeconfig
//! Secret written for it. A component switched off loses its HelmRelease. `spec.values` is
//! validated whether or not rendering is on: a malformed value is an error either way.

use std::collections::BTreeSet;

use async_trait::async_trait;
use crds::PlatformMesh;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use lifecycle::{Outcome, Subroutine, SubroutineError};
use serde_json::{Map, Value, json};

use super::{Ctx, owner_labels, owner_selector};
use crate::apply::ensure_value;
use crate::flux::{
    Component, components, helm_release_resource, helm_repository, helm_repository_resource,
    releases,
};

/// The finalizer: the HelmReleases go with the PlatformMesh.
pub const FINALIZER: &str = "core.platform-mesh.io/flux-releases";

const PURPOSE: &str = "flux";

/// The values every chart of this suite gets: the name of the kubeconfig Secret this
/// operator writes for it (see [`super::provider_secrets::default_connections`]), under the
/// value the chart takes it in, upstream's name for that chart.
pub fn default_values() -> Map<String, Value> {
    let mut defaults = Map::new();
    for component in crate::flux::COMPONENTS {
        let secret = format!("{component}-kubeconfig");
        let values = match *component {
            "rebac-authz-webhook" => json!({"kcp": {"kubeconfig": {"secret": secret}}}),
            _ => json!({"kubeconfigSecret": secret}),
        };
        defaults.insert((*component).to_owned(), values);
    }
    defaults
}

/// See the module documentation.
#[derive(Debug)]
pub struct Deployment {
    /// `--subroutines-deployment-enabled`.
    pub render: bool,
}

#[async_trait]
impl Subroutine<PlatformMesh, Ctx> for Deployment {
    fn name(&self) -> &str {
        "DeploymentSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        // Held whether or not rendering is on: HelmReleases rendered before the flag was
        // turned off are still deleted, and a finalizer no subroutine claims would stay.
        vec![FINALIZER.to_owned()]
    }

    async fn process(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let wanted = components(pm.spec.values.as_ref(), &default_values())
            .map_err(|e| SubroutineError::permanent("InvalidValues", e.to_string()))?;
        if !self.render {
            return Ok(Outcome::skip(
                "rendering HelmReleases is off (--subroutines-deployment-enabled=false)",
            ));
        }
        let namespace = pm.namespace().unwrap_or_default();
        let settings = &ctx.settings;
        // Listed first: a kind the cluster does not serve means Flux is missing, said plainly.
        let existing = labelled(pm, ctx, &helm_release_resource())
            .await?
            .ok_or_else(|| {
                SubroutineError::transient(
                    "the hosting cluster does not serve helmreleases.helm.toolkit.fluxcd.io: \
                     install Flux, or run with --subroutines-deployment-enabled=false",
                )
            })?;
        let labels = owner_labels(pm, PURPOSE);
        let repository = helm_repository(&namespace, &settings.charts, &labels);
        let mut objects = vec![(helm_repository_resource(), repository)];
        objects.extend(
            releases(&wanted, &namespace, &settings.charts, &labels)
                .into_iter()
                .map(|r| (helm_release_resource(), r)),
        );
        for (resource, object) in &objects {
            let api = Api::namespaced_with(ctx.host()?, &namespace, resource);
            let value = serde_json::to_value(object)
                .map_err(|e| SubroutineError::transient(format!("encoding: {e}")))?;
            let what = format!("{} {namespace}/{}", resource.kind, object.name_any());
            ensure_value(&api, &value, &what, &settings.field_manager).await?;
        }
        let keep = enabled(&wanted);
        let stale: Vec<String> = existing.into_iter().filter(|n| !keep.contains(n)).collect();
        delete(pm, ctx, &helm_release_resource(), &stale).await?;
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        for resource in [helm_release_resource(), helm_repository_resource()] {
            if let Some(names) = labelled(pm, ctx, &resource).await? {
                delete(pm, ctx, &resource, &names).await?;
            }
        }
        Ok(Outcome::Ok)
    }
}

fn enabled(components: &[Component]) -> BTreeSet<String> {
    components
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.name.clone())
        .collect()
}

/// The names of `pm`'s Flux objects of `resource`; `None` when the kind is not served.
async fn labelled(
    pm: &PlatformMesh,
    ctx: &Ctx,
    resource: &ApiResource,
) -> Result<Option<Vec<String>>, SubroutineError> {
    let namespace = pm.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.host()?, &namespace, resource);
    match api
        .list_metadata(&ListParams::default().labels(&owner_selector(pm, PURPOSE)))
        .await
    {
        Ok(list) => Ok(Some(list.into_iter().map(|o| o.name_any()).collect())),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(SubroutineError::kube(
            format!("listing {} in {namespace}", resource.plural),
            e,
        )),
    }
}

async fn delete(
    pm: &PlatformMesh,
    ctx: &Ctx,
    resource: &ApiResource,
    names: &[String],
) -> Result<(), SubroutineError> {
    let namespace = pm.namespace().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.host()?, &namespace, resource);
    for name in names {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => tracing::info!(kind = %resource.kind, %namespace, %name, "deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(SubroutineError::kube(
                    format!("deleting {} {namespace}/{name}", resource.kind),
                    e,
                ));
            }
        }
    }
    Ok(())
}
