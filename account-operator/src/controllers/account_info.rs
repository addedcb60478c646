//! The AccountInfo controller: its finalizer holds an AccountInfo while Accounts remain in its
//! workspace, so children can still read their parent's AccountInfo while they are torn down.

use std::sync::Arc;

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_FINALIZER, ACCOUNT_INFO_NAME, AccountInfo};
use kcp::ClientFactory;
use kcp::runtime::{Context, Controller, ControllerConfig, EndpointSource, ObjectKey};
use kube::api::Api;
use lifecycle::{Lifecycle, Outcome, Subroutine, SubroutineError, async_trait};

use super::{Ctx, Settings, reconcile_with};

/// The AccountInfo controller.
pub struct AccountInfoController {
    controller: Controller<AccountInfo>,
    lifecycle: Arc<Lifecycle<AccountInfo, Ctx>>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for AccountInfoController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountInfoController")
            .finish_non_exhaustive()
    }
}

/// Builds the AccountInfo controller.
pub fn account_info_controller(
    factory: ClientFactory,
    source: EndpointSource,
    config: ControllerConfig,
    runtime_metrics: Option<kcp::runtime::RuntimeMetrics>,
    lifecycle_metrics: Option<lifecycle::Metrics>,
    settings: Arc<Settings>,
) -> AccountInfoController {
    let mut lifecycle: Lifecycle<AccountInfo, Ctx> = Lifecycle::new(
        "AccountInfoReconciler",
        vec![Box::new(FinalizeAccountInfoSubroutine)],
    );
    if let Some(metrics) = lifecycle_metrics {
        lifecycle = lifecycle.with_metrics(metrics);
    }
    // An Account going away in a workspace may release that workspace's AccountInfo.
    let controller = Controller::new(
        "AccountInfoReconciler",
        factory,
        source,
        config,
        runtime_metrics,
    )
    .watches::<Account>(|_, key, _| {
        vec![ObjectKey::cluster_scoped(
            key.cluster.clone(),
            ACCOUNT_INFO_NAME,
        )]
    });
    AccountInfoController {
        controller,
        lifecycle: Arc::new(lifecycle),
        settings,
    }
}

impl AccountInfoController {
    /// Whether every watch has synced.
    pub fn readiness(&self) -> kcp::runtime::Readiness {
        self.controller.readiness()
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let Self {
            controller,
            lifecycle,
            settings,
        } = self;
        let reconcile = move |info: Arc<AccountInfo>, runtime: Context| {
            let lifecycle = lifecycle.clone();
            let settings = settings.clone();
            async move { reconcile_with(&lifecycle, info, Ctx { runtime, settings }).await }
        };
        controller.run(reconcile, stop).await;
    }
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
            return Ok(Outcome::pending(format!(
                "{remaining} Account(s) still exist in this workspace"
            )));
        }
        Ok(Outcome::Ok)
    }
}
