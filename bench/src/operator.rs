//! The two operators as processes of their own: started, probed, and measured from outside
//! (CPU and memory from `/proc`, requests from each one's own metrics).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{ServerProcess, free_port, http_get, memory_mib};

use crate::{BenchError, Contender};

/// A running operator.
#[derive(Debug)]
pub struct Operator {
    pub contender: Contender,
    process: ServerProcess,
    metrics_port: u16,
    health_port: u16,
}

impl Operator {
    /// Our account-operator, `binary`, on the operator kubeconfig.
    pub fn ours(binary: &Path, kubeconfig: &Path, logs: &Path) -> Result<Self, BenchError> {
        let (metrics_port, health_port) = (free_port(), free_port());
        let args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            "--kubeconfig-context=root".into(),
            format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
            format!("--debug-label-value={}", Contender::Ours.tag()),
            "--no-json".into(),
        ];
        Self::start(
            Contender::Ours,
            binary,
            &args,
            logs,
            metrics_port,
            health_port,
        )
    }

    /// Upstream's Go account-operator, `binary`. It reads its kubeconfig from `KUBECONFIG`
    /// only (its `--kubeconfig` flag is stored and never used), so it runs under `env`.
    pub fn upstream(binary: &Path, kubeconfig: &Path, logs: &Path) -> Result<Self, BenchError> {
        let (metrics_port, health_port) = (free_port(), free_port());
        let args = vec![
            format!("KUBECONFIG={}", kubeconfig.display()),
            binary.display().to_string(),
            "operator".into(),
            format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
            format!("--debug-label-value={}", Contender::Upstream.tag()),
            "--no-json".into(),
        ];
        Self::start(
            Contender::Upstream,
            Path::new("/usr/bin/env"),
            &args,
            logs,
            metrics_port,
            health_port,
        )
    }

    fn start(
        contender: Contender,
        program: &Path,
        args: &[String],
        logs: &Path,
        metrics_port: u16,
        health_port: u16,
    ) -> Result<Self, BenchError> {
        let process = ServerProcess::start(contender.tag(), program, args, logs, false)
            .map_err(|e| BenchError(format!("starting {}: {e}", contender.name())))?;
        Ok(Self {
            contender,
            process,
            metrics_port,
            health_port,
        })
    }

    /// Waits until `/readyz` answers 200; an operator that exits or stays unready for two
    /// minutes is an error with its log.
    pub async fn ready(&self) -> Result<(), BenchError> {
        self.process
            .until_ready(self.health_port, Duration::from_secs(120))
            .await
            .map_err(BenchError)
    }

    /// CPU time (user and system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.process.pid()?)).ok()?;
        // Fields after the command (which may hold spaces): state is the first, utime the
        // 12th, stime the 13th; both in clock ticks, 100 per second on Linux.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }

    /// Resident memory now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        memory_mib(self.process.pid()?, "VmRSS:")
    }

    /// The requests the operator has sent to kcp so far, by kind, by its own count: ours
    /// counts in its client layer (`platform_mesh_client_requests_total`, by verb and
    /// resource), upstream's client-go does (`rest_client_requests_total`, by HTTP method).
    pub async fn requests(&self) -> Option<BTreeMap<String, u64>> {
        let (metric, labels): (&str, &[&str]) = match self.contender {
            Contender::Ours => ("platform_mesh_client_requests_total", &["verb", "resource"]),
            _ => ("rest_client_requests_total", &["method"]),
        };
        let (code, body) = http_get(self.metrics_port, "/metrics").await?;
        (code == 200).then(|| counter_by(&body, metric, labels))
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// The samples of counter `metric` in a Prometheus text exposition, added up by the values of
/// `labels` (joined with spaces).
pub fn counter_by(exposition: &str, metric: &str, labels: &[&str]) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (set, value) = match rest.strip_prefix('{').and_then(|r| r.split_once("} ")) {
            Some((set, value)) => (set, value),
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue, // another metric whose name starts with this one's
            },
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let key: Vec<&str> = labels
            .iter()
            .map(|label| {
                set.split(',')
                    .find_map(|pair| pair.strip_prefix(label)?.strip_prefix("=\""))
                    .map_or("", |v| v.trim_end_matches('"'))
            })
            .collect();
        *sums.entry(key.join(" ")).or_insert(0) += value as u64;
    }
    sums
}

/// The most resident memory each operator had while a scenario ran, sampled every 250 ms.
#[derive(Debug, Clone, Default)]
pub struct PeakMemory(Arc<Mutex<Vec<f64>>>);

impl PeakMemory {
    /// Samples `operators` until the returned handle is dropped.
    pub fn sample(&self, operators: Arc<Vec<Operator>>) -> tokio::task::JoinHandle<()> {
        let peaks = self.0.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(mut peaks) = peaks.lock() {
                    peaks.resize(operators.len(), 0.0);
                    for (peak, operator) in peaks.iter_mut().zip(operators.iter()) {
                        *peak = peak.max(operator.rss_mib().unwrap_or(0.0));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    }

    /// The peaks since the last call, per operator, and starts anew.
    pub fn take(&self) -> Vec<f64> {
        self.0
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_added_up_by_the_labels_asked_for() {
        let text = "# HELP rest_client_requests_total x\n\
                    # TYPE rest_client_requests_total counter\n\
                    rest_client_requests_total{code=\"200\",method=\"GET\"} 41\n\
                    rest_client_requests_total{code=\"404\",method=\"GET\"} 3\n\
                    rest_client_requests_total{code=\"201\",method=\"POST\"} 2\n\
                    rest_client_requests_total_other 100\n\
                    rest_client_request_duration_seconds_count 7\n";
        let by_method = counter_by(text, "rest_client_requests_total", &["method"]);
        assert_eq!(
            by_method,
            BTreeMap::from([("GET".to_owned(), 44), ("POST".to_owned(), 2)])
        );
        assert!(counter_by("", "rest_client_requests_total", &["method"]).is_empty());
    }
}
