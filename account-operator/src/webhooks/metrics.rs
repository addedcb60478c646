//! `account_operator_webhook_validations_total{operation,result,account_type}`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::policy::Validation;

/// The metric name as registered; prometheus-client appends `_total` to counters.
const VALIDATIONS: &str = "account_operator_webhook_validations";

/// The labels of one validation count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabels {
    /// `create` or `update`.
    pub operation: String,
    /// `allowed` or `denied`.
    pub result: String,
    /// The Account's `spec.type`.
    pub account_type: String,
}

/// The webhooks' metrics. Cloning shares the counters.
#[derive(Clone, Debug, Default)]
pub struct WebhookMetrics {
    validations: Family<ValidationLabels, Counter>,
}

impl WebhookMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            VALIDATIONS,
            "Account admission validations by operation (create, update), result (allowed, denied) and account type",
            metrics.validations.clone(),
        );
        metrics
    }

    /// Counts one validation.
    pub fn record(&self, validation: &Validation) {
        self.validations
            .get_or_create(&ValidationLabels {
                operation: validation.operation.as_str().to_owned(),
                result: if validation.allowed {
                    "allowed"
                } else {
                    "denied"
                }
                .to_owned(),
                account_type: validation.account_type.clone(),
            })
            .inc();
    }

    /// The count for one label combination (0 if never seen; does not create the series).
    pub fn validations(&self, operation: &str, result: &str, account_type: &str) -> u64 {
        self.validations
            .get(&ValidationLabels {
                operation: operation.to_owned(),
                result: result.to_owned(),
                account_type: account_type.to_owned(),
            })
            .map_or(0, |counter| counter.get())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::webhooks::policy::Operation;

    #[test]
    fn validations_are_counted_and_exposed_under_the_upstream_name() {
        let mut registry = Registry::default();
        let metrics = WebhookMetrics::register(&mut registry);
        let denied_org = Validation {
            operation: Operation::Create,
            allowed: false,
            account_type: "org".to_owned(),
        };
        metrics.record(&denied_org);
        metrics.record(&denied_org);
        metrics.record(&Validation {
            operation: Operation::Update,
            allowed: true,
            account_type: "account".to_owned(),
        });
        assert_eq!(metrics.validations("create", "denied", "org"), 2);
        assert_eq!(metrics.validations("update", "allowed", "account"), 1);
        assert_eq!(metrics.validations("create", "allowed", "org"), 0);

        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# TYPE account_operator_webhook_validations counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"account_operator_webhook_validations_total{operation="create",result="denied",account_type="org"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"account_operator_webhook_validations_total{operation="update",result="allowed",account_type="account"} 1"#
            ),
            "{text}"
        );
    }
}
