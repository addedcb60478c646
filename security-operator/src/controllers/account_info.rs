//! The AccountInfo controller: its finalizer holds an AccountInfo while the model generator's
//! finalizer is still on an APIBinding in the workspace, since removing that finalizer needs
//! the AccountInfo (to find the binding's organisation).

use std::sync::Arc;

use async_trait::async_trait;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use kcp::runtime::ObjectKey;
use kcp::types::apis::ApiBinding;
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use lifecycle::{Outcome, Subroutine, SubroutineError};

use super::model_generator::APIBINDING_FINALIZER;
use super::{Ctx, Settings, new_controller};

/// The controller's name, as upstream.
pub const ACCOUNT_INFO_RECONCILER: &str = "accountinfo";

/// The finalizer, as upstream.
pub const ACCOUNT_INFO_FINALIZER: &str = "security.platform-mesh.io/accountinfo-finalizer";

/// Builds the AccountInfo controller.
pub fn account_info_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<AccountInfo, Ctx> {
    new_controller(
        ACCOUNT_INFO_RECONCILER,
        setup,
        vec![Box::new(AccountInfoFinalizer)],
        settings,
    )
    // AccountInfo's conditions are the account-operator's.
    .without_conditions()
    // A binding's finalizer going may release its workspace's AccountInfo.
    .watches::<ApiBinding>(|_, key, _| {
        vec![ObjectKey::cluster_scoped(
            key.cluster.clone(),
            ACCOUNT_INFO_NAME,
        )]
    })
}

/// Holds the AccountInfo until no APIBinding of its workspace carries the model generator's
/// finalizer.
#[derive(Debug)]
struct AccountInfoFinalizer;

#[async_trait]
impl Subroutine<AccountInfo, Ctx> for AccountInfoFinalizer {
    fn name(&self) -> &str {
        "AccountInfoFinalizer"
    }

    fn finalizers(&self, _: &AccountInfo) -> Vec<String> {
        vec![ACCOUNT_INFO_FINALIZER.to_owned()]
    }

    async fn process(&self, _: &AccountInfo, _: &Ctx) -> Result<Outcome, SubroutineError> {
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, _: &AccountInfo, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let bindings = Api::<ApiBinding>::all(ctx.origin()?)
            .list(&ListParams::default())
            .await
            .map_err(|e| SubroutineError::kube("listing APIBindings", e))?;
        let held: Vec<String> = bindings
            .items
            .iter()
            .filter(|b| b.finalizers().iter().any(|f| f == APIBINDING_FINALIZER))
            .map(ResourceExt::name_any)
            .collect();
        if held.is_empty() {
            return Ok(Outcome::Ok);
        }
        Ok(Outcome::pending(format!(
            "waiting for the model generator to release APIBindings {}",
            held.join(", ")
        )))
    }
}
