//! The webhook's metrics: controller-runtime's webhook families, with the names upstream's
//! dashboards read, and the decisions and OpenFGA Checks behind them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::decide::{Decision, Handler};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Webhook {
    webhook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookCode {
    webhook: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerDecision {
    handler: String,
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckResult {
    result: String,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// The webhook's metric families.
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<WebhookCode, Counter>,
    latency: Family<Webhook, Histogram, fn() -> Histogram>,
    in_flight: Family<Webhook, Gauge>,
    decisions: Family<HandlerDecision, Counter>,
    checks: Family<CheckResult, Histogram, fn() -> Histogram>,
}

impl Metrics {
    /// Registers the families into `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            decisions: Family::default(),
            checks: Family::new_with_constructor(latency_histogram),
        };
        registry.register(
            "controller_runtime_webhook_requests",
            "HTTP requests by webhook path and status code",
            metrics.requests.clone(),
        );
        registry.register(
            "controller_runtime_webhook_latency_seconds",
            "Time to answer a request, by webhook path",
            metrics.latency.clone(),
        );
        registry.register(
            "controller_runtime_webhook_requests_in_flight",
            "Requests being answered, by webhook path",
            metrics.in_flight.clone(),
        );
        registry.register(
            "rebac_authz_webhook_decisions",
            "Decisions by handler (review, nonresource, orgs, bind, contextual) and decision \
             (allow, deny, no_opinion, retry)",
            metrics.decisions.clone(),
        );
        registry.register(
            "rebac_authz_webhook_openfga_check_duration_seconds",
            "OpenFGA Check latency by result (allowed, not_allowed, error)",
            metrics.checks.clone(),
        );
        metrics
    }

    /// Counts a request to `webhook` as started; the guard counts it finished.
    pub fn started(&self, webhook: &str) -> InFlight {
        let label = Webhook {
            webhook: webhook.to_owned(),
        };
        self.in_flight.get_or_create(&label).inc();
        InFlight {
            metrics: self.clone(),
            label,
            started: std::time::Instant::now(),
        }
    }

    /// Counts one decision.
    pub fn decided(&self, handler: Handler, decision: &Decision) {
        self.decisions
            .get_or_create(&HandlerDecision {
                handler: handler.label().to_owned(),
                decision: decision.label().to_owned(),
            })
            .inc();
    }

    /// Records one OpenFGA Check.
    pub fn checked(&self, result: &str, seconds: f64) {
        self.checks
            .get_or_create(&CheckResult {
                result: result.to_owned(),
            })
            .observe(seconds);
    }
}

/// A request being answered.
#[derive(Debug)]
pub struct InFlight {
    metrics: Metrics,
    label: Webhook,
    started: std::time::Instant,
}

impl InFlight {
    /// Counts the request answered with `code`.
    pub fn finished(self, code: u16) {
        let metrics = &self.metrics;
        metrics
            .requests
            .get_or_create(&WebhookCode {
                webhook: self.label.webhook.clone(),
                code: code.to_string(),
            })
            .inc();
        metrics
            .latency
            .get_or_create(&self.label)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.get_or_create(&self.label).dec();
    }
}
