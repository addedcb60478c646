//! The run: one kcp, both operators, and the scenarios, each contender's work interleaved
//! with the others'.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crds::Account;
use futures::StreamExt;
use harness::{Kcp, TestWorkspace, when_served};
use kcp::ClientFactory;
use kcp::types::core::LogicalClusterPhase;
use kcp::types::tenancy::{Workspace, WorkspaceType};
use kit::controller::DEBUG_LABEL;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::time::Instant as Deadline;

use crate::floor::{self, Unfinished};
use crate::observe::{Progress, Watched};
use crate::operator::{Operator, PeakMemory};
use crate::report::{Figures, Report};
use crate::{BenchError, Contender, Plan};

/// Where orgs live.
pub const ORGS_PATH: &str = "root:orgs";

/// The creator every Account gets.
const CREATOR: &str = "bench@example.com";

/// How long one org gets in the single-org rounds.
const ONE_ORG_DEADLINE: Duration = Duration::from_secs(120);

/// The steps of an org, as the bench's watches see them, in order.
const STEPS: [&str; 6] = [
    "types created",
    "org type Ready",
    "workspace created",
    "initializing",
    "workspace Ready",
    "done",
];

/// The run's kcp, operators and watches.
#[derive(Debug)]
pub struct Bench {
    pub plan: Plan,
    /// Admin clients for any workspace.
    pub factory: ClientFactory,
    /// `root:orgs`.
    pub orgs: TestWorkspace,
    /// kcp's CA as PEM, as the operators write it into AccountInfos.
    pub ca: String,
    /// The Accounts, Workspaces and WorkspaceTypes of `root:orgs`.
    pub accounts: Watched<Account>,
    pub workspaces: Watched<Workspace>,
    pub types: Watched<WorkspaceType>,
    operators: Arc<Vec<Operator>>,
    memory: PeakMemory,
    sampler: tokio::task::JoinHandle<()>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// What a piece of work cost an operator.
#[derive(Debug, Default)]
struct Usage {
    cpu: Option<f64>,
    requests: Option<BTreeMap<String, u64>>,
    peak: Option<f64>,
}

/// One finished piece of work: its own time (from its create), and when it finished since
/// the scenario started.
#[derive(Debug, Clone, Copy)]
struct Done {
    own: f64,
    since_start: f64,
}

/// A contender's figures, added up round by round.
#[derive(Debug, Default)]
struct Tally {
    total: usize,
    items: Vec<Done>,
    wall: f64,
    cpu: Option<f64>,
    requests: Option<BTreeMap<String, u64>>,
    peak: Option<f64>,
    steps: Vec<Vec<f64>>,
    unfinished: Vec<Unfinished>,
}

impl Tally {
    fn add(&mut self, results: Vec<Result<Done, Unfinished>>, usage: Usage) {
        self.total += results.len();
        let mut wall: f64 = 0.0;
        for result in results {
            match result {
                Ok(done) => {
                    wall = wall.max(done.since_start);
                    self.items.push(done);
                }
                Err(why) => self.unfinished.push(why),
            }
        }
        self.wall += wall;
        self.cpu = sum(self.cpu, usage.cpu);
        self.requests = match (self.requests.take(), usage.requests) {
            (Some(mut total), Some(more)) => {
                for (kind, n) in more {
                    *total.entry(kind).or_insert(0) += n;
                }
                Some(total)
            }
            (a, b) => a.or(b),
        };
        self.peak = match (self.peak, usage.peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn figures(self, scenario: &str, contender: Contender) -> Figures {
        if let Some(first) = self.unfinished.first() {
            println!(
                "    {}: {} of {} unfinished in {scenario}; the first: {first}",
                contender.name(),
                self.unfinished.len(),
                self.total
            );
        }
        let steps = self
            .steps
            .iter()
            .enumerate()
            .filter_map(|(i, samples)| {
                Some((STEPS[i].to_owned(), crate::report::quantile(samples, 0.5)?))
            })
            .collect();
        Figures {
            scenario: scenario.to_owned(),
            contender,
            total: self.total,
            finished: self.items.len(),
            seconds: self.items.iter().map(|d| d.own).collect(),
            wall_seconds: self.wall,
            cpu_seconds: self.cpu,
            peak_rss_mib: self.peak,
            requests: self.requests.as_ref().map(|r| r.values().sum()),
            requests_by_kind: self.requests.unwrap_or_default(),
            steps,
        }
    }
}

fn sum<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn progress(line: &str) {
    println!("==> {line}");
}

/// Runs every scenario with `plan`, writing the operators' logs under `out/logs`.
pub async fn run(plan: Plan, out: &Path) -> Result<Report, BenchError> {
    let bench = Bench::start(plan, out).await?;
    let mut figures = bench.one_org().await;
    figures.extend(bench.burst().await);
    figures.extend(bench.subtree().await?);
    figures.extend(bench.steady().await?);
    Ok(Report {
        machine: machine(),
        plan: bench.plan.clone(),
        figures,
    })
}

impl Bench {
    async fn start(plan: Plan, out: &Path) -> Result<Self, BenchError> {
        progress("starting kcp (a fresh one, for this run)");
        let kcp = Kcp::shared().await;
        let (orgs, kubeconfig) =
            harness::set_up_platform(kcp, false, "bench-operators.kubeconfig").await;
        let factory = kcp.admin().await;
        let ca = ca_pem(&kubeconfig).await?;

        progress("building our account-operator and finding upstream's");
        let ours =
            harness::build_binary("account-operator", "account-operator").map_err(BenchError)?;
        let upstream = xtask::UPSTREAM_ACCOUNT_OPERATOR
            .binary("account-operator")
            .map_err(|e| BenchError(e.to_string()))?;
        // Anew each run: a pid file left by the last one would make an operator look exited.
        let logs = out.join("logs");
        if logs.exists() {
            std::fs::remove_dir_all(&logs)
                .map_err(|e| BenchError(format!("removing {}: {e}", logs.display())))?;
        }
        std::fs::create_dir_all(&logs)
            .map_err(|e| BenchError(format!("creating {}: {e}", logs.display())))?;
        let operators = Arc::new(vec![
            Operator::ours(&ours, &kubeconfig, &logs)?,
            Operator::upstream(&upstream, &kubeconfig, &logs)?,
        ]);
        for operator in operators.iter() {
            operator.ready().await?;
        }
        println!(
            "    both operators ready; their logs are in {}",
            logs.display()
        );
        let memory = PeakMemory::default();
        let sampler = memory.sample(operators.clone());
        let client = orgs.client();
        let bench = Self {
            plan,
            accounts: Watched::start(Api::all(client.clone()), "Accounts in root:orgs").await?,
            workspaces: Watched::start(Api::all(client.clone()), "Workspaces in root:orgs").await?,
            types: Watched::start(Api::all(client), "WorkspaceTypes in root:orgs").await?,
            factory,
            orgs,
            ca,
            operators,
            memory,
            sampler,
        };

        progress("warming up: one org per operator, and the narrow floor's WorkspaceType");
        let progress = Progress::new(Deadline::now() + ONE_ORG_DEADLINE, ONE_ORG_DEADLINE);
        for contender in [Contender::Ours, Contender::Upstream] {
            let name = format!("{}-warm", contender.tag());
            bench
                .operator_org(contender, &name, &progress)
                .await
                .map_err(|why| bench.failed(contender, &why))?;
        }
        floor::prepare_narrow(&bench, progress.hard())
            .await
            .map_err(BenchError)?;
        Ok(bench)
    }

    fn operator(&self, contender: Contender) -> Option<(usize, &Operator)> {
        self.operators
            .iter()
            .enumerate()
            .find(|(_, o)| o.contender == contender)
    }

    fn failed(&self, contender: Contender, why: &str) -> BenchError {
        let log = self
            .operator(contender)
            .map(|(_, o)| o.log_tail(30))
            .unwrap_or_default();
        BenchError(format!("{}: {why}\n{log}", contender.name()))
    }

    /// Runs `work` and measures what it cost `contender`'s operator (nothing for a floor).
    async fn measured<T>(&self, contender: Contender, work: impl Future<Output = T>) -> (T, Usage) {
        let Some((index, operator)) = self.operator(contender) else {
            return (work.await, Usage::default());
        };
        let (cpu, requests) = (operator.cpu_seconds(), operator.requests().await);
        self.memory.take();
        let result = work.await;
        let peak = self.memory.take().get(index).copied().unwrap_or(0.0);
        let usage = Usage {
            cpu: operator.cpu_seconds().zip(cpu).map(|(b, a)| b - a),
            requests: operator
                .requests()
                .await
                .zip(requests)
                .map(|(after, before)| {
                    after
                        .into_iter()
                        .map(|(kind, n)| {
                            let n = n.saturating_sub(before.get(&kind).copied().unwrap_or(0));
                            (kind, n)
                        })
                        .filter(|(_, n)| *n > 0)
                        .collect()
                }),
            peak: operator.rss_mib().map(|now| now.max(peak)),
        };
        (result, usage)
    }

    /// An Account for `contender`'s operator (its debug label), in `parent`.
    async fn create_account(
        &self,
        parent: &TestWorkspace,
        contender: Contender,
        name: &str,
        account_type: &str,
    ) -> Result<(), Unfinished> {
        let mut account = harness::new_account(name, account_type, CREATOR);
        account
            .metadata
            .labels
            .get_or_insert_default()
            .insert(DEBUG_LABEL.to_owned(), contender.tag().to_owned());
        let api: Api<Account> = Api::all(parent.client());
        let post = PostParams::default();
        when_served(|| api.create(&post, &account))
            .await
            .map(drop)
            .map_err(|e| format!("creating Account {name} in {}: {e}", parent.path))
    }

    /// An org Account for an operator, until Ready.
    async fn operator_org(
        &self,
        contender: Contender,
        name: &str,
        progress: &Progress,
    ) -> Result<Instant, Unfinished> {
        self.create_account(&self.orgs, contender, name, "org")
            .await?;
        self.accounts
            .until_progressing(name, progress, |a| a.is_some_and(harness::is_ready))
            .await
            .ok_or_else(|| format!("Account {name} not Ready: the deadline passed, or its operator finished nothing for the stall time"))
    }

    /// One org by `contender`, with the time of each step the watches saw.
    async fn timed_org(
        &self,
        contender: Contender,
        name: &str,
    ) -> (Result<Done, Unfinished>, Vec<Option<f64>>) {
        let started = Instant::now();
        let progress = Progress::new(Deadline::now() + ONE_ORG_DEADLINE, ONE_ORG_DEADLINE);
        let deadline = progress.hard();
        let org_type = account_operator::controllers::workspace_type_name(name, "org");
        let type_name = if contender == Contender::NarrowFloor {
            account_operator::controllers::workspace_type_name(floor::NARROW_ORG, "org")
        } else {
            org_type
        };
        let initializing = |w: Option<&Workspace>| {
            w.is_some_and(|w| {
                matches!(
                    w.phase(),
                    Some(LogicalClusterPhase::Initializing | LogicalClusterPhase::Ready)
                )
            })
        };
        let steps = async {
            let (a, b, c, d, e) = tokio::join!(
                self.types.until(&type_name, deadline, |t| t.is_some()),
                self.types.until(&type_name, deadline, |t| t
                    .is_some_and(WorkspaceType::is_ready)),
                self.workspaces.until(name, deadline, |w| w.is_some()),
                self.workspaces.until(name, deadline, initializing),
                self.workspaces
                    .until(name, deadline, |w| w.is_some_and(Workspace::is_ready)),
            );
            [a, b, c, d, e]
        };
        let work = async {
            match contender {
                Contender::Ours | Contender::Upstream => {
                    self.operator_org(contender, name, &progress).await
                }
                Contender::FullPathFloor => floor::org(self, name, deadline).await.map(|(t, _)| t),
                Contender::NarrowFloor => floor::workspace_only(self, name, deadline).await,
            }
        };
        let (steps, done) = tokio::join!(steps, work);
        let offset = |t: Instant| t.saturating_duration_since(started).as_secs_f64();
        let mut seen: Vec<Option<f64>> = steps.iter().map(|t| t.map(offset)).collect();
        seen.push(done.as_ref().ok().map(|t| offset(*t)));
        let done = done.map(|t| Done {
            own: offset(t),
            since_start: offset(t),
        });
        (done, seen)
    }

    /// Rounds of one org to Ready per contender, interleaved (A, B, floors, A, B, floors …).
    async fn one_org_rounds(
        &self,
        scenario: &str,
        prefix: &str,
        rounds: usize,
        contenders: &[Contender],
    ) -> Vec<Figures> {
        let mut tallies: Vec<Tally> = contenders.iter().map(|_| Tally::default()).collect();
        for round in 0..rounds {
            let round_started = Instant::now();
            let mut line = String::new();
            for (contender, tally) in contenders.iter().zip(tallies.iter_mut()) {
                let name = format!("{}{prefix}{round}", contender.tag());
                let ((done, steps), usage) = self
                    .measured(*contender, self.timed_org(*contender, &name))
                    .await;
                line.push_str(&match &done {
                    Ok(d) => format!(" {} {:.2} s;", contender.tag(), d.own),
                    Err(_) => format!(" {} unfinished;", contender.tag()),
                });
                tally.steps.resize(STEPS.len(), Vec::new());
                for (samples, seen) in tally.steps.iter_mut().zip(steps) {
                    samples.extend(seen);
                }
                tally.add(vec![done], usage);
            }
            println!(
                "    {scenario}: round {}/{rounds} ({:.1} s):{line}",
                round + 1,
                round_started.elapsed().as_secs_f64()
            );
        }
        contenders
            .iter()
            .zip(tallies)
            .map(|(c, t)| t.figures(scenario, *c))
            .collect()
    }

    /// Scenario 1: one org Account to Ready.
    async fn one_org(&self) -> Vec<Figures> {
        progress(&format!(
            "one org Account to Ready, {} rounds per contender, interleaved",
            self.plan.rounds
        ));
        self.one_org_rounds(
            "one org to Ready",
            "-org-",
            self.plan.rounds,
            &[
                Contender::Ours,
                Contender::Upstream,
                Contender::NarrowFloor,
                Contender::FullPathFloor,
            ],
        )
        .await
    }

    /// Orgs and their accounts, all at once: every org created together, each org's
    /// accounts created together as soon as the org is Ready.
    async fn orgs_with_accounts(
        &self,
        contender: Contender,
        prefix: &str,
        (orgs, per_org): (usize, usize),
        progress: &Progress,
    ) -> Vec<Result<Done, Unfinished>> {
        let started = Instant::now();
        let names: Vec<String> = (0..orgs)
            .map(|j| format!("{}{prefix}{j}", contender.tag()))
            .collect();
        let per_org_results = futures::future::join_all(
            names
                .iter()
                .map(|org| self.org_with_accounts(contender, org, per_org, started, progress)),
        )
        .await;
        per_org_results.into_iter().flatten().collect()
    }

    async fn org_with_accounts(
        &self,
        contender: Contender,
        org: &str,
        per_org: usize,
        started: Instant,
        progress: &Progress,
    ) -> Vec<Result<Done, Unfinished>> {
        // The floor never leaves work stuck: it gets the hard deadline.
        let deadline = progress.hard();
        let since = |t0: Instant, t: Instant| Done {
            own: t.saturating_duration_since(t0).as_secs_f64(),
            since_start: t.saturating_duration_since(started).as_secs_f64(),
        };
        let org_started = Instant::now();
        let org_done = match contender {
            Contender::FullPathFloor => floor::org(self, org, deadline)
                .await
                .map(|(t, info)| (t, Some(info))),
            _ => self
                .operator_org(contender, org, progress)
                .await
                .map(|t| (t, None)),
        };
        let (org_ready, info) = match org_done {
            Ok(done) => done,
            Err(why) => {
                let mut results = vec![Err(why.clone())];
                results.extend((0..per_org).map(|_| Err(format!("its org: {why}"))));
                return results;
            }
        };
        let mut results = vec![Ok(since(org_started, org_ready))];
        let children_unfinished = |mut results: Vec<_>, why: String| {
            results.extend((0..per_org).map(|_| Err(why.clone())));
            results
        };
        let workspace = match self.org_workspace(org) {
            Ok(workspace) => workspace,
            Err(why) => return children_unfinished(results, why),
        };
        let names: Vec<String> = (0..per_org).map(|k| format!("{org}a{k}")).collect();
        match info {
            Some(info) => {
                let watched = match Watched::<Workspace>::start(
                    Api::all(workspace.client()),
                    &format!("Workspaces in {}", workspace.path),
                )
                .await
                {
                    Ok(watched) => watched,
                    Err(e) => return children_unfinished(results, e.0),
                };
                let children = futures::future::join_all(names.iter().map(|name| {
                    let (workspace, watched, info) = (&workspace, &watched, &info);
                    async move {
                        let t0 = Instant::now();
                        floor::account(self, workspace, watched, (org, info), name, deadline)
                            .await
                            .map(|t| since(t0, t))
                    }
                }))
                .await;
                results.extend(children);
            }
            None => {
                let watched = match Watched::<Account>::start(
                    Api::all(workspace.client()),
                    &format!("Accounts in {}", workspace.path),
                )
                .await
                {
                    Ok(watched) => watched,
                    Err(e) => return children_unfinished(results, e.0),
                };
                let children = futures::future::join_all(names.iter().map(|name| {
                    let (workspace, watched) = (&workspace, &watched);
                    async move {
                        let t0 = Instant::now();
                        self.create_account(workspace, contender, name, "account")
                            .await?;
                        watched
                            .until_progressing(name, progress, |a| a.is_some_and(harness::is_ready))
                            .await
                            .map(|t| since(t0, t))
                            .ok_or_else(|| format!("Account {name} not Ready: the deadline passed, or its operator finished nothing for the stall time"))
                    }
                }))
                .await;
                results.extend(children);
            }
        }
        results
    }

    /// The workspace of org `org`, as the watch of `root:orgs` last saw it.
    fn org_workspace(&self, org: &str) -> Result<TestWorkspace, Unfinished> {
        let cluster = self
            .workspaces
            .get(org)
            .and_then(|w| w.spec.cluster)
            .ok_or_else(|| format!("Workspace {org} has no cluster"))?;
        Ok(TestWorkspace {
            factory: self.factory.clone(),
            path: self.orgs.path.join(org).map_err(|e| e.to_string())?,
            cluster: cluster.parse().map_err(|e| format!("{e}"))?,
        })
    }

    fn deadline(&self) -> Deadline {
        Deadline::now() + Duration::from_secs(self.plan.deadline_seconds)
    }

    /// A contender's waits in a scenario: until the deadline, or until it has finished
    /// nothing for `--stall-seconds`.
    fn progress(&self) -> Progress {
        Progress::new(
            self.deadline(),
            Duration::from_secs(self.plan.stall_seconds),
        )
    }

    /// Scenario 2: orgs with accounts, all created at once, one contender after the other.
    async fn burst(&self) -> Vec<Figures> {
        let (orgs, per_org) = (self.plan.burst_orgs, self.plan.burst_accounts);
        let scenario = format!("{orgs} orgs × {per_org} accounts at once");
        progress(&format!(
            "{scenario}, per contender (deadline {} s each)",
            self.plan.deadline_seconds
        ));
        let mut figures = Vec::new();
        for contender in [
            Contender::Ours,
            Contender::Upstream,
            Contender::FullPathFloor,
        ] {
            let (results, usage) = self
                .measured(
                    contender,
                    self.orgs_with_accounts(
                        contender,
                        "-burst-",
                        (orgs, per_org),
                        &self.progress(),
                    ),
                )
                .await;
            let mut tally = Tally::default();
            tally.add(results, usage);
            println!(
                "    {}: {} of {} Ready in {:.1} s",
                contender.name(),
                tally.items.len(),
                tally.total,
                tally.wall
            );
            figures.push(tally.figures(&scenario, contender));
        }
        figures
    }

    /// Scenario 3: an org with accounts beneath it, then its deletion until it is gone.
    async fn subtree(&self) -> Result<Vec<Figures>, BenchError> {
        let accounts = self.plan.subtree;
        let scenario = format!("delete an org with {accounts} accounts");
        progress(&format!(
            "{scenario}: creating the three subtrees (untimed), then deleting them, one by one"
        ));
        let contenders = [
            Contender::Ours,
            Contender::Upstream,
            Contender::FullPathFloor,
        ];
        // One after the other: three subtrees at once would load kcp so that a contender's
        // first account could take longer than the stall time.
        let mut created = Vec::new();
        for contender in contenders {
            created.push(
                self.orgs_with_accounts(contender, "-tree-", (1, accounts), &self.progress())
                    .await,
            );
        }
        for (contender, results) in contenders.iter().zip(&created) {
            // A contender that did not build its whole subtree still has its deletion timed,
            // of what it built; the table's `done` says so.
            let ready = results.iter().filter(|r| r.is_ok()).count();
            println!(
                "    {}: {ready} of {} Ready before the deletion",
                contender.name(),
                results.len()
            );
            if let Some(Err(why)) = results.iter().find(|r| r.is_err()) {
                println!("      the first one not Ready: {why}");
            }
        }
        let mut figures = Vec::new();
        for (contender, built) in contenders.into_iter().zip(&created) {
            let org = format!("{}-tree-0", contender.tag());
            let (gone, usage) = self
                .measured(contender, async {
                    let started = Instant::now();
                    let deadline = self.deadline();
                    let gone = match contender {
                        Contender::FullPathFloor => floor::delete_org(self, &org, deadline).await,
                        _ => self.delete_org_account(&org, deadline).await,
                    };
                    gone.map(|t| t.saturating_duration_since(started).as_secs_f64())
                })
                .await;
            let built = built.iter().filter(|r| r.is_ok()).count();
            let results = match gone {
                Ok(seconds) => {
                    println!("    {}: gone in {seconds:.1} s", contender.name());
                    let done = Done {
                        own: seconds,
                        since_start: seconds,
                    };
                    let mut results = vec![Ok(done); built];
                    results.resize(accounts + 1, Err("never Ready, so not deleted".to_owned()));
                    results
                }
                Err(why) => vec![Err(why); accounts + 1],
            };
            let mut tally = Tally::default();
            tally.add(results, usage);
            let mut figures_of = tally.figures(&scenario, contender);
            // One deletion, counted once in the distribution; the accounts stay in `finished`.
            figures_of.seconds.truncate(1);
            figures.push(figures_of);
        }
        Ok(figures)
    }

    async fn delete_org_account(
        &self,
        org: &str,
        deadline: Deadline,
    ) -> Result<Instant, Unfinished> {
        Api::<Account>::all(self.orgs.client())
            .delete(org, &DeleteParams::default())
            .await
            .map_err(|e| format!("deleting Account {org}: {e}"))?;
        self.accounts
            .until(org, deadline, |a| a.is_none())
            .await
            .ok_or_else(|| format!("Account {org} was not gone by the deadline"))
    }

    /// Scenario 4: many Accounts stored in kcp that neither operator reconciles (each has
    /// to list, watch and cache them), then new orgs, interleaved.
    async fn steady(&self) -> Result<Vec<Figures>, BenchError> {
        let stored = self.plan.steady;
        progress(&format!(
            "steady state: storing {stored} Accounts that no contender reconciles"
        ));
        let api: Api<Account> = Api::all(self.orgs.client());
        let started = Instant::now();
        let mut created = futures::stream::iter(0..stored)
            .map(|i| {
                let api = &api;
                async move {
                    let mut account = harness::new_account(&format!("stored{i}"), "org", CREATOR);
                    account
                        .metadata
                        .labels
                        .get_or_insert_default()
                        .insert(DEBUG_LABEL.to_owned(), "stored".to_owned());
                    api.create(&PostParams::default(), &account).await
                }
            })
            .buffer_unordered(16);
        let mut count = 0;
        while let Some(result) = created.next().await {
            result.map_err(|e| BenchError(format!("storing Accounts: {e}")))?;
            count += 1;
            if count % 250 == 0 || count == stored {
                println!(
                    "    {count}/{stored} stored in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // Let both operators take them in before anything is timed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rounds = self.plan.rounds.min(5);
        progress(&format!(
            "steady state: one new org at a time, {rounds} rounds per contender"
        ));
        Ok(self
            .one_org_rounds(
                &format!("one org with {stored} Accounts stored"),
                "-steady-",
                rounds,
                &[
                    Contender::Ours,
                    Contender::Upstream,
                    Contender::FullPathFloor,
                ],
            )
            .await)
    }
}

/// kcp's CA from the operators' kubeconfig, as PEM: what the operators write.
async fn ca_pem(kubeconfig: &Path) -> Result<String, BenchError> {
    let read = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| BenchError(format!("reading {}: {e}", kubeconfig.display())))?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(read, &options)
        .await
        .map_err(|e| BenchError(format!("loading {}: {e}", kubeconfig.display())))?;
    let certs = config.root_cert.unwrap_or_default();
    Ok(pem::encode_many(
        &certs
            .into_iter()
            .map(|der| pem::Pem::new("CERTIFICATE", der))
            .collect::<Vec<_>>(),
    ))
}

/// This machine, for the report: cores, memory, CPU model and load when the run started.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB; load average at the end {load}; kcp {}",
        xtask::KCP.version().unwrap_or_default()
    )
}
