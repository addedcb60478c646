//! What a run measured: the figures per scenario and contender, the table printed at the
//! end, the raw JSON and the SVG of the latency distributions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::Contender;

/// What one contender did in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub scenario: String,
    pub contender: Contender,
    /// Accounts (or workspaces, for a floor) the scenario asked for.
    pub total: usize,
    /// How many of them got there before the deadline.
    pub finished: usize,
    /// Each finished one's time, in seconds (to Ready; to gone for a deletion).
    pub seconds: Vec<f64>,
    /// From the first write to the last one finished, in seconds.
    pub wall_seconds: f64,
    /// CPU seconds the operator process used during the scenario (none for a floor).
    pub cpu_seconds: Option<f64>,
    /// The most resident memory of the operator process during the scenario, in MiB.
    pub peak_rss_mib: Option<f64>,
    /// Requests the operator sent to kcp during the scenario, by its own metric.
    pub requests: Option<u64>,
    /// The same, by kind: verb and resource for ours, HTTP method for upstream's (what
    /// client-go's metric labels).
    pub requests_by_kind: BTreeMap<String, u64>,
    /// Median time from the create to each step the bench saw, in seconds, in order.
    pub steps: Vec<(String, f64)>,
}

impl Figures {
    pub fn median(&self) -> Option<f64> {
        quantile(&self.seconds, 0.5)
    }

    pub fn p90(&self) -> Option<f64> {
        quantile(&self.seconds, 0.9)
    }

    pub fn max(&self) -> Option<f64> {
        self.seconds.iter().copied().reduce(f64::max)
    }

    /// Finished accounts per second of wall time.
    pub fn throughput(&self) -> Option<f64> {
        (self.wall_seconds > 0.0 && self.finished > 0)
            .then(|| self.finished as f64 / self.wall_seconds)
    }

    pub fn requests_per_account(&self) -> Option<f64> {
        let requests = self.requests?;
        (self.finished > 0).then(|| requests as f64 / self.finished as f64)
    }

    pub fn cpu_per_account(&self) -> Option<f64> {
        let cpu = self.cpu_seconds?;
        (self.finished > 0).then(|| cpu / self.finished as f64)
    }
}

/// The `q` quantile (nearest rank) of `samples`; `None` when there are none.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// The whole run: where, with what counts, and every figure.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: String,
    pub plan: crate::Plan,
    pub figures: Vec<Figures>,
}

impl Report {
    fn find(&self, scenario: &str, contender: Contender) -> Option<&Figures> {
        self.figures
            .iter()
            .find(|f| f.scenario == scenario && f.contender == contender)
    }

    /// The table: one row per scenario and contender, with each operator's median and
    /// requests per account next to the full-path floor's and the other operator's.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Machine: {}", self.machine);
        let _ = writeln!(
            out,
            "\n| scenario | contender | done | median s | p90 s | max s | accounts/s | CPU s | CPU ms/account | peak MiB | requests/account | median ÷ full floor | median ÷ other | requests ÷ other |"
        );
        let _ = writeln!(out, "|{}", "---|".repeat(14));
        for f in &self.figures {
            let floor = self.find(&f.scenario, Contender::FullPathFloor);
            let other = f
                .contender
                .other()
                .and_then(|other| self.find(&f.scenario, other));
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "–".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.scenario,
                f.contender.name(),
                f.finished,
                f.total,
                num(f.median(), 2),
                num(f.p90(), 2),
                num(f.max(), 2),
                num(f.throughput(), 2),
                num(f.cpu_seconds, 2),
                num(f.cpu_per_account().map(|s| s * 1000.0), 0),
                num(f.peak_rss_mib, 1),
                num(f.requests_per_account(), 1),
                if f.contender == Contender::FullPathFloor {
                    "1.00×".into()
                } else {
                    ratio(f.median(), floor.and_then(Figures::median))
                },
                ratio(f.median(), other.and_then(Figures::median)),
                ratio(
                    f.requests_per_account(),
                    other.and_then(Figures::requests_per_account)
                ),
            );
        }
        section(
            &mut out,
            "Requests per account, by kind:",
            &self.figures,
            |f| {
                let kinds: Vec<String> = f
                    .requests_by_kind
                    .iter()
                    .map(|(kind, n)| format!("{kind} {:.2}", *n as f64 / f.finished as f64))
                    .collect();
                (f.finished > 0 && !kinds.is_empty()).then(|| kinds.join(", "))
            },
        );
        section(
            &mut out,
            "Where the time goes (median seconds from the create to each step the bench saw):",
            &self.figures,
            |f| {
                let steps: Vec<String> = f
                    .steps
                    .iter()
                    .map(|(step, s)| format!("{step} {s:.2}"))
                    .collect();
                (!steps.is_empty()).then(|| steps.join(" → "))
            },
        );
        out
    }

    /// The latency distributions as an SVG: one panel per scenario, one strip of dots per
    /// contender, its median marked.
    pub fn svg(&self) -> String {
        let mut scenarios: Vec<&str> = Vec::new();
        for f in &self.figures {
            if !scenarios.contains(&f.scenario.as_str()) {
                scenarios.push(&f.scenario);
            }
        }
        let (width, label, row, top) = (900.0, 190.0, 22.0, 34.0);
        let rows: Vec<Vec<&Figures>> = scenarios
            .iter()
            .map(|s| self.figures.iter().filter(|f| &f.scenario == s).collect())
            .collect();
        let height: f64 = rows.iter().map(|r| top + row * r.len() as f64 + 28.0).sum();
        let mut svg = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let mut y0 = 0.0;
        for (scenario, figures) in scenarios.iter().zip(&rows) {
            let most = figures
                .iter()
                .filter_map(|f| f.max())
                .fold(0.0_f64, f64::max)
                .max(0.001);
            let x = |s: f64| label + (width - label - 30.0) * s / most;
            let _ = write!(
                svg,
                r#"<text x="4" y="{}" font-weight="bold">{} (seconds, 0 to {most:.2})</text>"#,
                y0 + 18.0,
                escape(scenario)
            );
            for (i, f) in figures.iter().enumerate() {
                let y = y0 + top + row * i as f64;
                let _ = write!(
                    svg,
                    r#"<text x="4" y="{}">{} ({}/{})</text><line x1="{label}" x2="{}" y1="{y}" y2="{y}" stroke="lightgray"/>"#,
                    y + 4.0,
                    escape(f.contender.name()),
                    f.finished,
                    f.total,
                    width - 30.0
                );
                for s in &f.seconds {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{y}" r="3" fill="{}" fill-opacity="0.5"/>"#,
                        x(*s),
                        f.contender.colour()
                    );
                }
                if let Some(m) = f.median() {
                    let _ = write!(
                        svg,
                        r#"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="black" stroke-width="2"/>"#,
                        x(m),
                        y - 8.0,
                        y + 8.0
                    );
                }
            }
            y0 += top + row * figures.len() as f64 + 28.0;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// Appends `title` and a line per figure that `line` has something to say of, unless none has.
fn section(
    out: &mut String,
    title: &str,
    figures: &[Figures],
    line: impl Fn(&Figures) -> Option<String>,
) {
    let lines: Vec<String> = figures
        .iter()
        .filter_map(|f| {
            Some(format!(
                "- {} / {}: {}",
                f.scenario,
                f.contender.name(),
                line(f)?
            ))
        })
        .collect();
    if !lines.is_empty() {
        let _ = writeln!(out, "\n{title}\n");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(contender: Contender, seconds: Vec<f64>, requests: Option<u64>) -> Figures {
        Figures {
            scenario: "one org".into(),
            contender,
            total: 4,
            finished: seconds.len(),
            seconds,
            wall_seconds: 8.0,
            cpu_seconds: requests.map(|_| 0.4),
            peak_rss_mib: None,
            requests,
            requests_by_kind: requests
                .map(|n| BTreeMap::from([("get accounts".to_owned(), n)]))
                .unwrap_or_default(),
            steps: vec![("workspace".into(), 0.5)],
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let samples = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(&samples, 0.5), Some(2.0));
        assert_eq!(quantile(&samples, 0.9), Some(4.0));
        assert_eq!(quantile(&[7.0], 0.5), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_table_divides_by_the_floor_and_the_other_operator() {
        let report = Report {
            machine: "test".into(),
            plan: crate::Plan::smoke(),
            figures: vec![
                figures(Contender::Ours, vec![3.0, 3.0, 3.0], Some(30)),
                figures(Contender::Upstream, vec![6.0, 6.0], Some(40)),
                figures(Contender::FullPathFloor, vec![2.0, 2.0, 2.0, 2.0], None),
            ],
        };
        let table = report.table();
        let ours = table
            .lines()
            .find(|l| l.contains("| platform-mesh-rs |"))
            .unwrap();
        // 3 of 4 done; 3.00 s median; 3 per 8 s; 10 requests per account; 1.5× the floor;
        // half upstream's median; 10 ÷ 20 requests per account.
        assert_eq!(
            ours,
            "| one org | platform-mesh-rs | 3/4 | 3.00 | 3.00 | 3.00 | 0.38 | 0.40 | 133 | – | 10.0 | 1.50× | 0.50× | 0.50× |"
        );
        assert!(table.contains("- one org / platform-mesh-rs: workspace 0.50"));
        assert!(table.contains("- one org / platform-mesh-rs: get accounts 10.00"));
        let svg = report.svg();
        assert_eq!(svg.matches("<circle").count(), 9);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
