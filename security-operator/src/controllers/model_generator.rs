//! The model generator: every APIBinding to a provider's export yields, per bound resource,
//! an AuthorizationModel in the provider's workspace that extends the binding organisation's
//! store (one per resource and organisation). The models go when the organisation's last
//! binding of that export does.

use std::sync::Arc;

use async_trait::async_trait;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::authorization_model::{AuthorizationModel, AuthorizationModelSpec, StoreRef};
use crds::export::{CORE_EXPORT, SYSTEM_EXPORT};
use fga::platform_mesh::{ResourceModule, ResourceScope};
use kcp::runtime::ObjectKey;
use kcp::types::apis::{ApiBinding, ApiExport, ApiResourceSchema, ExportBindingReference};
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use lifecycle::{Outcome, Subroutine, SubroutineError};

use super::workspace::delete_ignoring_missing;
use super::{Ctx, MANAGER, Settings, new_controller};

/// The controller's name, as upstream.
pub const MODEL_GENERATOR_RECONCILER: &str = "apibinding";

/// The finalizer on APIBindings to provider exports, as upstream.
pub const APIBINDING_FINALIZER: &str = "core.platform-mesh.io/apibinding-finalizer";

/// Builds the model generator.
pub fn model_generator_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<ApiBinding, Ctx> {
    new_controller(
        MODEL_GENERATOR_RECONCILER,
        setup,
        vec![Box::new(ModelGeneration)],
        settings,
    )
    // An APIBinding's status is kcp's.
    .without_conditions()
    // A binding waits for its workspace's AccountInfo.
    .watches::<AccountInfo>(|_, key, bindings| {
        bindings
            .in_cluster(&key.cluster)
            .into_iter()
            .map(|(key, _)| key)
            .collect::<Vec<ObjectKey>>()
    })
}

/// Whether the export is a provider's: not Platform Mesh's own, not kcp's.
pub(super) fn is_provider_export(name: &str) -> bool {
    name != CORE_EXPORT && name != SYSTEM_EXPORT && !name.ends_with("kcp.io")
}

/// The AuthorizationModel's name for a resource and organisation: the parts joined with `-`,
/// lower-cased, `.` made `-`, leading and trailing `-` trimmed (upstream's `toK8sName`).
pub(super) fn model_name(group: &str, plural: &str, org: &str) -> String {
    format!("{group}-{plural}-{org}")
        .to_lowercase()
        .replace('.', "-")
        .trim_matches('-')
        .to_owned()
}

/// The AuthorizationModel of one bound resource for an organisation.
pub(super) fn generated_model(
    schema: &ApiResourceSchema,
    org: &str,
    store_cluster: &str,
) -> Result<AuthorizationModel, SubroutineError> {
    let spec = &schema.spec;
    let plural = spec.names.plural.as_str();
    let singular = spec
        .names
        .singular
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| spec.names.kind.to_lowercase());
    let scope = if spec.scope == "Namespaced" {
        ResourceScope::Namespaced
    } else {
        ResourceScope::Cluster
    };
    let module = ResourceModule::new(&spec.group, plural, singular, scope).build();
    let text = module.to_dsl().map_err(|e| {
        SubroutineError::permanent(
            "InvalidSchema",
            format!(
                "APIResourceSchema {} makes no module: {e}",
                schema.name_any()
            ),
        )
    })?;
    let mut model = AuthorizationModel::new(
        &model_name(&spec.group, plural, org),
        AuthorizationModelSpec {
            store_ref: StoreRef {
                name: org.to_owned(),
                cluster: store_cluster.to_owned(),
                path: None,
            },
            model: text,
            tuples: None,
        },
    );
    model.metadata.managed_fields = None;
    Ok(model)
}

/// The binding's export, when it is a provider's.
fn provider_export(binding: &ApiBinding) -> Option<&ExportBindingReference> {
    binding
        .spec
        .reference
        .export
        .as_ref()
        .filter(|e| is_provider_export(&e.name))
}

async fn account_info(
    settings: &Settings,
    cluster: &str,
) -> Result<Option<AccountInfo>, SubroutineError> {
    Api::<AccountInfo>::all(settings.cluster(cluster)?)
        .get_opt(ACCOUNT_INFO_NAME)
        .await
        .map_err(|e| SubroutineError::kube(format!("reading the AccountInfo of {cluster}"), e))
}

/// The provider's export and its workspace.
async fn export_of(
    settings: &Settings,
    binding: &ApiBinding,
    export: &ExportBindingReference,
) -> Result<(String, ApiExport), SubroutineError> {
    let Some(provider) = binding
        .status
        .as_ref()
        .and_then(|s| s.api_export_cluster_name.clone())
    else {
        return Err(lifecycle::Wait::new("waiting for kcp to resolve the bound export").into());
    };
    let api = Api::<ApiExport>::all(settings.cluster(&provider)?);
    let found = api.get(&export.name).await.map_err(|e| {
        SubroutineError::kube(
            format!("reading APIExport {} in {provider}", export.name),
            e,
        )
    })?;
    Ok((provider, found))
}

/// Generates the models (no condition: an APIBinding's status is kcp's).
#[derive(Debug)]
struct ModelGeneration;

#[async_trait]
impl Subroutine<ApiBinding, Ctx> for ModelGeneration {
    fn name(&self) -> &str {
        "ModelGeneration"
    }

    fn finalizers(&self, binding: &ApiBinding) -> Vec<String> {
        let name = binding.name_any();
        if provider_export(binding).is_none()
            || name.contains("platform-mesh.io")
            || name.contains("kcp.io")
        {
            return Vec::new();
        }
        vec![APIBINDING_FINALIZER.to_owned()]
    }

    async fn process(&self, binding: &ApiBinding, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let Some(export) = provider_export(binding) else {
            return Ok(Outcome::skip("not a provider's export"));
        };
        let settings = &ctx.settings;
        let Some(info) = account_info(settings, ctx.cluster()).await? else {
            return Ok(Outcome::pending("waiting for the workspace's AccountInfo"));
        };
        let org = &info.spec.organization;
        let (provider, api_export) = export_of(settings, binding, export).await?;
        let provider_client = settings.cluster(&provider)?;
        let schemas = Api::<ApiResourceSchema>::all(provider_client.clone());
        let models = Api::<AuthorizationModel>::all(provider_client);
        for resource in &api_export.spec.resources {
            let schema = schemas.get(&resource.schema).await.map_err(|e| {
                SubroutineError::kube(format!("reading APIResourceSchema {}", resource.schema), e)
            })?;
            let model = generated_model(&schema, &org.name, &org.origin_cluster_id)?;
            let name = model.name_any();
            models
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&model),
                )
                .await
                .map_err(|e| {
                    SubroutineError::kube(
                        format!("applying AuthorizationModel {name} in {provider}"),
                        e,
                    )
                })?;
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, binding: &ApiBinding, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let Some(export) = provider_export(binding) else {
            return Ok(Outcome::Ok);
        };
        let settings = &ctx.settings;
        let Some(info) = account_info(settings, ctx.cluster()).await? else {
            return Ok(Outcome::skip("no AccountInfo: the organization is unknown"));
        };
        let org = &info.spec.organization;
        // Another binding of the same export in the same organization keeps the models. The
        // controller's own watch holds every binding, with what a shard that is down last
        // showed, where listing every shard would wait for that shard.
        let bindings = ctx.runtime.cached_everywhere::<ApiBinding>();
        for (key, other) in bindings.unwrap_or_default() {
            let cluster = key.cluster.as_str();
            let same = cluster == ctx.cluster() && other.name_any() == binding.name_any();
            if same || other.spec.reference.export.as_ref() != Some(export) {
                continue;
            }
            let other_org = account_info(settings, cluster)
                .await?
                .map(|i| i.spec.organization.generated_cluster_id);
            if other_org.as_deref() == Some(org.generated_cluster_id.as_str()) {
                return Ok(Outcome::Ok);
            }
        }
        let (provider, api_export) = export_of(settings, binding, export).await?;
        let models = Api::<AuthorizationModel>::all(settings.cluster(&provider)?);
        for resource in &api_export.spec.resources {
            let name = model_name(&resource.group, &resource.name, &org.name);
            delete_ignoring_missing(&models, &name).await.map_err(|e| {
                SubroutineError::kube(format!("deleting AuthorizationModel {name}"), e)
            })?;
        }
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_provider_exports_get_models() {
        assert!(!is_provider_export(CORE_EXPORT));
        assert!(!is_provider_export(SYSTEM_EXPORT));
        assert!(!is_provider_export("tenancy.kcp.io"));
        assert!(is_provider_export("orchestrate.platform-mesh.io"));
    }

    #[test]
    fn names_follow_upstream() {
        assert_eq!(
            model_name("orchestrate.platform-mesh.io", "httpbins", "acme"),
            "orchestrate-platform-mesh-io-httpbins-acme"
        );
        assert_eq!(model_name("", "widgets", "Acme"), "widgets-acme");
    }
}
