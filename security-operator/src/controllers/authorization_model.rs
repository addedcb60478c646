//! The AuthorizationModel controller: reports whether the module is part of its Store's model
//! (the Store composes; this shows the Store's verdict on the module's own object, where
//! upstream had no conditions at all) and keeps its tuples written in that store.
//!
//! An AuthorizationModel in a tenant's workspace (below `root:orgs`) has no effect, so a user
//! cannot give themselves access by writing one (upstream #47).

use std::sync::Arc;

use async_trait::async_trait;
use crds::Store;
use crds::authorization_model::AuthorizationModel;
use kcp::runtime::ObjectKey;
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use lifecycle::{Outcome, Subroutine, SubroutineError};

use super::store::references;
use super::tuples::{TupleHolder, TupleSubroutine};
use super::{Ctx, Settings, new_controller};

/// The controller's name, as upstream.
pub const AUTHORIZATION_MODEL_RECONCILER: &str = "authorizationmodel";

/// Builds the AuthorizationModel controller.
pub fn authorization_model_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<AuthorizationModel, Ctx> {
    new_controller(
        AUTHORIZATION_MODEL_RECONCILER,
        setup,
        vec![Box::new(ModuleSubroutine), Box::new(TupleSubroutine)],
        settings,
    )
    // The Store's verdict on the module, and its store id, live in the Store's status.
    .watches::<Store>(|store, _, models| {
        let name = store.name_any();
        models
            .keys()
            .into_iter()
            .filter(|key| {
                models
                    .get(key)
                    .is_some_and(|model| model.spec.store_ref.name == name)
            })
            .collect::<Vec<ObjectKey>>()
    })
}

#[async_trait]
impl TupleHolder for AuthorizationModel {
    fn desired(&self) -> Vec<crds::Tuple> {
        self.spec.tuples.clone().unwrap_or_default()
    }

    fn managed(&self) -> Vec<crds::Tuple> {
        self.status
            .as_ref()
            .map(|s| s.managed_tuples.clone())
            .unwrap_or_default()
    }

    async fn store_id(&self, ctx: &Ctx) -> Result<Option<String>, SubroutineError> {
        let store = ctx.settings.org_store(&self.spec.store_ref.name).await?;
        Ok(store
            .and_then(|s| s.status)
            .and_then(|s| s.store_id)
            .filter(|id| !id.is_empty()))
    }
}

/// Whether the module is part of its Store's model (condition `ModuleSubroutine`).
#[derive(Debug)]
struct ModuleSubroutine;

#[async_trait]
impl Subroutine<AuthorizationModel, Ctx> for ModuleSubroutine {
    fn name(&self) -> &str {
        "ModuleSubroutine"
    }

    async fn process(
        &self,
        model: &AuthorizationModel,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let settings = &ctx.settings;
        let path = settings.path_of(ctx.cluster()).await?;
        if settings.is_tenant_path(&path) {
            return Err(SubroutineError::permanent(
                "InTenantWorkspace",
                format!(
                    "AuthorizationModels in workspaces below {} are ignored: this one (in {path}) \
                     is not part of any store's model and its tuples are not written",
                    settings.orgs_path
                ),
            ));
        }
        let orgs_cluster = settings.orgs_cluster().await?;
        let reference = &model.spec.store_ref;
        if !references(
            model,
            &reference.name,
            settings.orgs_path.as_str(),
            &orgs_cluster,
        ) {
            return Err(SubroutineError::permanent(
                "InvalidStoreRef",
                format!(
                    "spec.storeRef.cluster {:?} is not {} (cluster {orgs_cluster}), where every \
                     organisation's Store lives",
                    reference.cluster, settings.orgs_path
                ),
            ));
        }
        let Some(store) = settings.org_store(&reference.name).await? else {
            return Err(SubroutineError::permanent(
                "StoreNotFound",
                format!(
                    "there is no Store {:?} in {}; the module takes effect once it exists",
                    reference.name, settings.orgs_path
                ),
            ));
        };
        let status = store.status.unwrap_or_default();
        let name = model.name_any();
        if let Some(rejected) = status
            .rejected_modules
            .iter()
            .find(|r| r.cluster == ctx.cluster() && r.name == name)
        {
            return Err(SubroutineError::permanent(
                "ModuleRejected",
                format!(
                    "left out of Store {:?}'s model (the rest of the model is in force): {}",
                    reference.name, rejected.message
                ),
            ));
        }
        if status.authorization_model_id.is_none() {
            return Ok(Outcome::pending(format!(
                "waiting for Store {:?} to write its model",
                reference.name
            )));
        }
        Ok(Outcome::Ok)
    }
}
