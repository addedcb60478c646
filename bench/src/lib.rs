//! `cargo xtask bench`: our account-operator next to upstream's Go account-operator and next
//! to kcp's own floor, on one kcp started for the run, interleaved so that machine noise hits
//! every contender alike.
//!
//! Contenders ([`Contender`]): the two operators, each a release-built process of its own
//! that sees only its own Accounts (the debug label); the *full-path floor*, which issues the
//! writes an operator must (the org's two WorkspaceTypes, the Workspace, the AccountInfo),
//! each the moment a watch shows its precondition, with no operator logic at all; and, for a
//! single org, the *narrow floor*: a Workspace of an existing type, created directly.
//!
//! Scenarios ([`scenarios`]): one org Account to Ready, round after round; orgs with accounts
//! created at once; deleting a subtree; one new org with many Accounts stored in kcp. Every
//! wait has a deadline: a contender that leaves work unfinished is reported with how many it
//! finished, never waited for forever.

pub mod floor;
pub mod observe;
pub mod operator;
pub mod report;
pub mod scenarios;

use serde::Serialize;

/// Why the bench could not run (a scenario that misses its deadline is a figure, not this).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BenchError(pub String);

/// Who does the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Contender {
    /// This project's account-operator.
    Ours,
    /// Upstream's Go account-operator at the version pinned in `tools/`.
    Upstream,
    /// The same writes as an operator, with no operator: the best any operator could do.
    FullPathFloor,
    /// A Workspace of an existing type, created directly: what kcp alone costs.
    NarrowFloor,
}

impl Contender {
    /// As the table shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ours => "platform-mesh-rs",
            Self::Upstream => "upstream Go v0.14.62",
            Self::FullPathFloor => "floor: full path",
            Self::NarrowFloor => "floor: workspace only",
        }
    }

    /// Short and DNS-safe: the prefix of the names a contender's objects get, and the
    /// operators' debug-label values.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ours => "rs",
            Self::Upstream => "go",
            Self::FullPathFloor => "ff",
            Self::NarrowFloor => "nf",
        }
    }

    /// The operator an operator is compared with.
    pub fn other(self) -> Option<Self> {
        match self {
            Self::Ours => Some(Self::Upstream),
            Self::Upstream => Some(Self::Ours),
            Self::FullPathFloor | Self::NarrowFloor => None,
        }
    }

    /// The colour of its dots in the plot.
    pub fn colour(self) -> &'static str {
        match self {
            Self::Ours => "#c2410c",
            Self::Upstream => "#1d4ed8",
            Self::FullPathFloor => "#15803d",
            Self::NarrowFloor => "#6b7280",
        }
    }
}

/// How much work each scenario does.
#[derive(Debug, Clone, Serialize, clap::Args)]
pub struct Plan {
    /// Rounds of "one org Account to Ready" per contender (interleaved).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Orgs created at once in the burst.
    #[arg(long, default_value_t = 10)]
    pub burst_orgs: usize,
    /// Accounts created at once in each burst org, as soon as it is Ready.
    #[arg(long, default_value_t = 20)]
    pub burst_accounts: usize,
    /// Accounts stored in kcp (reconciled by neither operator) before the steady-state rounds.
    #[arg(long, default_value_t = 1000)]
    pub steady: usize,
    /// Accounts under the org whose deletion is timed.
    #[arg(long, default_value_t = 50)]
    pub subtree: usize,
    /// Seconds a contender gets for one scenario's work before what is unfinished counts as
    /// not done.
    #[arg(long, default_value_t = 300)]
    pub deadline_seconds: u64,
    /// Seconds a contender may finish nothing (with work pending) before its unfinished work
    /// counts as stuck, before the deadline.
    #[arg(long, default_value_t = 60)]
    pub stall_seconds: u64,
}

impl Plan {
    /// Tiny counts, for the test suite: the harness runs end to end in a few minutes.
    pub fn smoke() -> Self {
        Self {
            rounds: 2,
            burst_orgs: 1,
            burst_accounts: 2,
            steady: 5,
            subtree: 2,
            deadline_seconds: 240,
            stall_seconds: 120,
        }
    }
}

/// Runs the bench with `plan` and writes `out/bench.json`, `out/bench.svg` and
/// `out/bench.md` (the table, also printed).
pub async fn write(plan: Plan, out: &std::path::Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(out)
        .map_err(|e| BenchError(format!("creating {}: {e}", out.display())))?;
    let report = scenarios::run(plan, out).await?;
    let table = report.table();
    println!("\n{table}");
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| BenchError(format!("encoding the report: {e}")))?;
    for (file, text) in [
        ("bench.json", json),
        ("bench.svg", report.svg()),
        ("bench.md", table),
    ] {
        let path = out.join(file);
        std::fs::write(&path, text)
            .map_err(|e| BenchError(format!("writing {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
