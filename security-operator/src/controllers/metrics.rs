//! The security-operator's own metrics, with upstream's names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerResult {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationResult {
    operation: String,
    result: String,
}

/// `security_operator_*` metrics.
#[derive(Clone, Debug)]
pub struct SecurityMetrics {
    reconciles: Family<ControllerResult, Counter>,
    fga_operations: Family<OperationResult, Counter>,
}

/// An OpenFGA tuple operation, as upstream labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FgaOperation {
    /// Tuples written.
    Apply,
    /// Tuples deleted.
    Delete,
    /// Tuples or stores read.
    List,
}

impl SecurityMetrics {
    /// Registers the families into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            fga_operations: Family::default(),
        };
        registry.register(
            "security_operator_reconcile",
            "Reconciles by controller and result (success, requeue, error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "security_operator_fga_operations",
            "OpenFGA tuple operations (apply, delete, list) by result (success, error)",
            metrics.fga_operations.clone(),
        );
        metrics
    }

    /// Counts one reconcile of `controller`.
    pub fn reconciled(&self, controller: &str, result: &str) {
        self.reconciles
            .get_or_create(&ControllerResult {
                controller: controller.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one OpenFGA operation and passes its result on.
    pub fn fga<T, E>(&self, operation: FgaOperation, result: Result<T, E>) -> Result<T, E> {
        let operation = match operation {
            FgaOperation::Apply => "apply",
            FgaOperation::Delete => "delete",
            FgaOperation::List => "list",
        };
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.fga_operations
            .get_or_create(&OperationResult {
                operation: operation.to_owned(),
                result: outcome.to_owned(),
            })
            .inc();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exposed_under_upstreams_names() {
        let mut registry = Registry::default();
        let metrics = SecurityMetrics::register(&mut registry);
        metrics.reconciled("store", "success");
        let failed: Result<(), ()> = metrics.fga(FgaOperation::Delete, Err(()));
        assert!(failed.is_err());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"security_operator_reconcile_total{controller="store",result="success"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"security_operator_fga_operations_total{operation="delete",result="error"} 1"#
            ),
            "{text}"
        );
    }
}
