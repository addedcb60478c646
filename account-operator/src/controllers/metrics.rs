//! The account-operator's own metrics, with the upstream names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeResult {
    pub r#type: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkspaceTypeOperation {
    pub operation: String,
    pub wst_kind: String,
}

const BUCKETS: [f64; 7] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// `account_operator_*` metrics.
#[derive(Clone, Debug)]
pub struct AccountMetrics {
    pub(crate) accounts_reconciled: Family<TypeResult, Counter>,
    pub(crate) workspace_ready_duration: Family<TypeLabel, Histogram>,
    pub(crate) workspacetype_operations: Family<WorkspaceTypeOperation, Counter>,
    pub(crate) org_provisioning_duration: Histogram,
}

impl AccountMetrics {
    /// Registers the families into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            accounts_reconciled: Family::default(),
            workspace_ready_duration: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            workspacetype_operations: Family::default(),
            org_provisioning_duration: Histogram::new(BUCKETS),
        };
        registry.register(
            "account_operator_accounts_reconciled",
            "Account reconciles by account type and result",
            metrics.accounts_reconciled.clone(),
        );
        registry.register(
            "account_operator_workspace_ready_duration_seconds",
            "Time from an Account's creation to its workspace being Ready",
            metrics.workspace_ready_duration.clone(),
        );
        registry.register(
            "account_operator_workspacetype_operations",
            "WorkspaceType writes by outcome (created, updated, unchanged) and kind (org, account)",
            metrics.workspacetype_operations.clone(),
        );
        registry.register(
            "account_operator_org_provisioning_duration_seconds",
            "Time from an org Account's creation to its AccountInfo being written",
            metrics.org_provisioning_duration.clone(),
        );
        metrics
    }

    pub(crate) fn reconciled(&self, account_type: &str, result: &str) {
        self.accounts_reconciled
            .get_or_create(&TypeResult {
                r#type: account_type.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }
}
