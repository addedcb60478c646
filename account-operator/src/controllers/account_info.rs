//! The AccountInfo controller: its finalizer holds an AccountInfo while Accounts remain in its
//! workspace, so children can still read their parent's AccountInfo while they are torn down.

use std::sync::Arc;

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_FINALIZER, ACCOUNT_INFO_NAME, AccountInfo};
use kcp::runtime::ObjectKey;
use kit::controller::{LifecycleController, Setup};
use kube::api::Api;
use lifecycle::{Outcome, Subroutine, SubroutineError, Wait, async_trait};

use super::{Ctx, Settings};

/// The controller's name, as upstream.
pub const ACCOUNT_INFO_RECONCILER: &str = "AccountInfoReconciler";

/// Builds the AccountInfo controller.
pub fn account_info_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<AccountInfo, Ctx> {
    LifecycleController::new(
        ACCOUNT_INFO_RECONCILER,
        setup,
        vec![Box::new(FinalizeAccountInfoSubroutine)],
        move |runtime| Ctx {
            runtime,
            settings: settings.clone(),
        },
    )
    // An Account going away in a workspace may release that workspace's AccountInfo.
    .watches::<Account>(|_, key, _| {
        vec![ObjectKey::cluster_scoped(
            key.cluster.clone(),
            ACCOUNT_INFO_NAME,
        )]
    })
}

/// Holds `account.core.platform-mesh.io/info` until no Account remains in the workspace.
#[derive(Debug)]
struct FinalizeAccountInfoSubroutine;

#[async_trait]
impl Subroutine<AccountInfo, Ctx> for FinalizeAccountInfoSubroutine {
    fn name(&self) -> &str {
        "FinalizeAccountInfoSubroutine"
    }

    fn finalizers(&self, _: &AccountInfo) -> Vec<String> {
        vec![ACCOUNT_INFO_FINALIZER.to_owned()]
    }

    async fn process(&self, _: &AccountInfo, _: &Ctx) -> Result<Outcome, SubroutineError> {
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, _: &AccountInfo, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let accounts: Api<Account> = Api::all(ctx.origin()?);
        let remaining = accounts.list(&Default::default()).await?.items.len();
        if remaining > 0 {
            return Err(Wait::new(format!(
                "{remaining} Account(s) still exist in this workspace"
            ))
            .into());
        }
        Ok(Outcome::Ok)
    }
}
