//! Least privilege: the security-operator binary, every role in one process, runs as a user
//! of its own with a client certificate and no admin credentials, holding exactly the kcp RBAC
//! of [`Rbac::needed`], none of it in an org's or account's workspace; the account-operator
//! runs beside it in-process as the admin. With that, an org becomes Ready with its OpenFGA store holding exactly the
//! creator's owner tuples, an account in it gets its tuples (the initializer), deleting the
//! account removes them (the terminator), and deleting the org removes its Store and OpenFGA
//! store. With a permission less, the operator's log names the failure in kcp's own 403
//! message, and where a watch cannot start, so does `/readyz`.
//!
//! Each permission was found needed by leaving it out once (of the `list` and `watch` that
//! every watch takes, those on the system endpoint slice and export): three of those runs are
//! the steps below. Not needed, though the README listed them: `get`, `list`, `watch` on the
//! `security` WorkspaceType (kcp's own `system:kcp:tenancy:reader` gives every authenticated
//! user that in `root`); of "all verbs" on `stores` in `root:orgs`, all but `get`, `create`,
//! `patch`, `delete`; of "read" on its `accounts` and `logicalclusters`, all but `get`. What no
//! step here exercises needs more: providers' AuthorizationModels, APIExportPolicies (`get` on
//! `accountinfos` in the workspaces they name, among others) and the identity steps.
//!
//! A user rather than a ServiceAccount, as for the account-operator (its `least_privilege.rs`).
//! It starts a kcp that trusts the test's client CA, so it runs in its own test binary, on a
//! platform set up there by the real platform-mesh-operator.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use crds::{Account, Store};
use fga::platform_mesh::owner_tuples;
use fga::store::{StoreOptions, list_stores_named};
use harness::scoped::{
    CertificateUser, ClientCa, Principal, grant, kcp_trusting, rule, workspace_access,
};
use harness::{
    Kcp, OpenFga, SYSTEM_PATH, ServerProcess, TestWorkspace, eventually, free_port, http_get,
    is_ready, ready_account, wait_for, wait_gone, workspace_of,
};
use kcp::ClusterPath;
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster, LogicalClusterPhase};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, PostParams};
use serde_json::Value;

/// The creator of every Account here.
const CREATOR: &str = "alice@example.com";
/// The export of Stores, AuthorizationModels, AccountInfos …, and its endpoint slice.
const CORE: &str = "core.platform-mesh.io";
/// The export of APIExportPolicies, and its endpoint slice.
const SYSTEM: &str = "system.platform-mesh.io";
/// The initializer and terminator of the `security` WorkspaceType in `root`.
const SECURITY_INITIALIZER: &str = "root:security";

/// The operator's RBAC in kcp outside the org and account workspaces, by workspace.
struct Rbac {
    /// The verbs on the WorkspaceType `security` in `root`: kcp's gates of its initializing
    /// and terminating virtual workspaces.
    security_verbs: Vec<&'static str>,
    /// The verbs on `stores` in `root:orgs`: the initializer reads and applies an org's Store
    /// (an apply that creates takes `create` too), the terminator deletes it.
    store_verbs: Vec<&'static str>,
    /// The verbs on the core export's `apiexports/content`: what the roles do through its
    /// virtual workspace (watch; patch finalizers and status of Stores, AccountInfos …; get
    /// an account's parent workspace and Account, which the export claims).
    core_content_verbs: Vec<&'static str>,
}

impl Rbac {
    /// What the operator needs, no more.
    fn needed() -> Self {
        Self {
            security_verbs: vec!["initialize", "terminate"],
            store_verbs: vec!["get", "create", "patch", "delete"],
            core_content_verbs: vec!["get", "list", "watch", "patch"],
        }
    }

    /// Grants it to `user`, as the admin.
    async fn grant_to(&self, kcp: &Kcp, user: &impl Principal) {
        let admin = kcp.admin().await;
        let system = vec![
            // kcp lets a user into a workspace, and into an export's virtual workspace, only
            // with `access` on `/` in the workspace.
            workspace_access(),
            // Watched by name, and read whenever the initializer or a Store lists objects
            // across every shard.
            rule(
                "apis.kcp.io",
                &["apiexportendpointslices"],
                &[CORE, SYSTEM],
                &["get", "list", "watch"],
            ),
            rule(
                "apis.kcp.io",
                &["apiexports/content"],
                &[CORE],
                &self.core_content_verbs,
            ),
            rule(
                "apis.kcp.io",
                &["apiexports/content"],
                &[SYSTEM],
                &["list", "watch"],
            ),
        ];
        grant(&admin, user, &system_path(), system).await;
        // No `access` here: kcp gives every authenticated user that in root, and read on its
        // WorkspaceTypes, which covers the watch of `security`.
        let root = vec![rule(
            "tenancy.kcp.io",
            &["workspacetypes"],
            &["security"],
            &self.security_verbs,
        )];
        grant(&admin, user, &ClusterPath::root(), root).await;
        let orgs = vec![
            workspace_access(),
            rule(CORE, &["stores"], &[], &self.store_verbs),
            // An org's creator, from its Account.
            rule(CORE, &["accounts"], &[], &["get"]),
            // root:orgs' own cluster name.
            rule(
                "core.kcp.io",
                &["logicalclusters"],
                &[LOGICAL_CLUSTER_NAME],
                &["get"],
            ),
        ];
        grant(&admin, user, &orgs_path(), orgs).await;
    }
}

fn system_path() -> ClusterPath {
    SYSTEM_PATH.parse().unwrap()
}

fn orgs_path() -> ClusterPath {
    "root:orgs".parse().unwrap()
}

/// The security-operator binary running as a user: its probes' port and its JSON log.
struct Running {
    process: Option<ServerProcess>,
    health: u16,
    log: PathBuf,
}

impl Running {
    /// Starts the operator as `user` holding `rbac`; does not wait for it to be ready.
    async fn start(kcp: &Kcp, fga_target: &str, user: &CertificateUser, rbac: &Rbac) -> Self {
        rbac.grant_to(kcp, user).await;
        let kubeconfig = user.kubeconfig(kcp, &system_path(), "root");
        let health = free_port();
        // JSON logs: a failure's fields, kcp's message among them, read exactly.
        let args: Vec<String> = support::security_args(&kubeconfig, fga_target, health)
            .into_iter()
            .filter(|arg| arg != "--no-json")
            .collect();
        let process = support::start_security_operator(&user.name, &args, kcp.state_dir());
        Self {
            process: Some(process),
            health,
            log: kcp.state_dir().join(format!("{}.log", user.name)),
        }
    }

    fn process(&self) -> &ServerProcess {
        self.process.as_ref().unwrap()
    }

    /// The first log line with `message` whose `error` contains `needle`, once it is written.
    async fn logged(&self, message: &str, needle: &str) -> Value {
        let what = format!("{message:?} with an error containing {needle:?}");
        eventually(&what, || async {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            log.lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| {
                    line["fields"]["message"] == message
                        && line["fields"]["error"]
                            .as_str()
                            .is_some_and(|error| error.contains(needle))
                })
        })
        .await
    }

    /// Every log line that carries a 403.
    fn forbidden(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter(|line| line.contains("code: 403"))
            .map(str::to_owned)
            .collect()
    }

    fn stop(mut self) {
        drop(self.process.take());
    }
}

impl Drop for Running {
    /// The operator's log, when the test fails while it runs.
    fn drop(&mut self) {
        if std::thread::panicking() && self.process.is_some() {
            eprintln!(
                "operator log {}:\n{}",
                self.log.display(),
                self.process().log_tail(40)
            );
        }
    }
}

/// `error` is kube's rendering of kcp's 403 `kcp_message`, after `context`.
fn assert_forbidden(error: &str, context: &str, kcp_message: &str) {
    let start = format!("{context}: ApiError: {kcp_message}: Forbidden (Status {{ ");
    assert!(error.starts_with(&start), "{error}");
    assert!(error.ends_with(" })"), "{error}");
}

/// A string field of a log line.
fn field<'a>(line: &'a Value, name: &str) -> &'a str {
    line["fields"][name].as_str().unwrap_or_default()
}

fn strings(tuples: &[fga::Tuple]) -> BTreeSet<String> {
    tuples.iter().map(ToString::to_string).collect()
}

/// Creates Account `name` of `type_` in `parent`; its workspace, once kcp has done its own
/// initialization there and waits for `root:security` alone.
async fn waiting_for_security(parent: &TestWorkspace, name: &str, type_: &str) -> TestWorkspace {
    Api::<Account>::all(parent.client())
        .create(
            &PostParams::default(),
            &harness::new_account(name, type_, CREATOR),
        )
        .await
        .unwrap();
    wait_for(
        &Api::<Workspace>::all(parent.client()),
        name,
        "Initializing",
        |ws| ws.phase() == Some(LogicalClusterPhase::Initializing),
    )
    .await;
    let ws = workspace_of(parent, name).await;
    // By name: a workspace's path resolves only a moment after it starts initializing.
    let client = ws.factory.for_cluster(&ws.cluster).unwrap();
    wait_for(
        &Api::<LogicalCluster>::all(client),
        LOGICAL_CLUSTER_NAME,
        "waiting for root:security alone",
        |lc| {
            lc.status.as_ref().is_some_and(|s| {
                s.phase == Some(LogicalClusterPhase::Initializing)
                    && s.initializers == [SECURITY_INITIALIZER]
            })
        },
    )
    .await;
    ws
}

fn secs(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

#[tokio::test]
async fn the_operator_works_with_exactly_its_rbac_and_names_what_is_missing() {
    let started = Instant::now();
    let ca = ClientCa::new();
    let kcp = kcp_trusting(&ca).await;
    let platform = support::set_up_on(&kcp).await;
    platform.run_account_operator();
    let (orgs, fga_target) = (platform.orgs_on(&kcp).await, platform.fga_target.clone());
    let orgs_c = orgs.cluster.as_str();
    eprintln!(
        "least-privilege: kcp and the platform up after {}",
        secs(started)
    );

    // (a) Exactly the RBAC it needs: an org with its store and owner tuples, an account's
    // tuples written and removed, the org's store removed.
    let step = Instant::now();
    let user = CertificateUser::new(&ca, "security-operator");
    let operator = Running::start(&kcp, &fga_target, &user, &Rbac::needed()).await;
    support::until_ready(operator.process(), operator.health).await;
    let (_, acme) = ready_account(&orgs, "acme", "org", CREATOR).await;
    let store = support::store_id(&orgs, "acme").await;
    let org_tuples = strings(&owner_tuples(orgs_c, "acme", CREATOR, None));
    assert_eq!(support::tuples(&store).await, org_tuples);
    ready_account(&acme, "dev", "account", CREATOR).await;
    let dev_tuples = strings(&owner_tuples(
        acme.cluster.as_str(),
        "dev",
        CREATOR,
        Some((orgs_c, "acme")),
    ));
    let both: BTreeSet<String> = org_tuples.union(&dev_tuples).cloned().collect();
    assert_eq!(support::tuples(&store).await, both);
    harness::delete_account(&acme, "dev").await;
    assert_eq!(support::tuples(&store).await, org_tuples);
    harness::delete_account(&orgs, "acme").await;
    wait_gone(&Api::<Store>::all(orgs.client()), "acme").await;
    let mut fga = OpenFga::shared().await.client().await;
    let left = list_stores_named(&mut fga, "acme", &StoreOptions::default())
        .await
        .unwrap();
    assert!(left.is_empty(), "OpenFGA stores left: {left:?}");
    // Nothing else it does was refused either.
    assert_eq!(operator.forbidden(), Vec::<String>::new());
    eprintln!("least-privilege: (a) done after {}", secs(step));
    operator.stop();

    // (b1) Without `get` on the core export's content: an org is initialized (its Account is
    // read in root:orgs), an account in it is not, as its parent's LogicalCluster and Account
    // are read through the export, and the log says why.
    let step = Instant::now();
    let mut rbac = Rbac::needed();
    rbac.core_content_verbs.retain(|verb| *verb != "get");
    let user = CertificateUser::new(&ca, "security-operator-without-content-get");
    let operator = Running::start(&kcp, &fga_target, &user, &rbac).await;
    support::until_ready(operator.process(), operator.health).await;
    let (_, beta) = ready_account(&orgs, "beta", "org", CREATOR).await;
    let dev = waiting_for_security(&beta, "dev", "account").await;
    let context = format!(
        "LogicalClusterInitializer: initialize of WorkspaceSubroutine on cluster failed \
         (retrying with backoff): no endpoint of {CORE} serves workspace {} (",
        beta.cluster
    );
    let line = operator.logged("reconcile failed", &context).await;
    assert_eq!(field(&line, "controller"), "LogicalClusterInitializer");
    assert_eq!(field(&line, "key"), format!("{}|cluster", dev.cluster));
    let error = field(&line, "error");
    assert!(
        error.contains(
            "logicalclusters.core.kcp.io \"cluster\" is forbidden: User \
             \"security-operator-without-content-get\" cannot get resource \"logicalclusters\""
        ),
        "{error}"
    );
    assert!(!is_ready(
        &Api::<Account>::all(beta.client()).get("dev").await.unwrap()
    ));
    eprintln!("least-privilege: (b1) log: {error}");
    eprintln!("least-privilege: (b1) done after {}", secs(step));
    operator.stop();

    // (b2) Without `create` on stores in root:orgs: an org's Store cannot be applied (an
    // apply that creates is a create too).
    let step = Instant::now();
    let mut rbac = Rbac::needed();
    rbac.store_verbs.retain(|verb| *verb != "create");
    let user = CertificateUser::new(&ca, "security-operator-without-store-create");
    let operator = Running::start(&kcp, &fga_target, &user, &rbac).await;
    let gamma = waiting_for_security(&orgs, "gamma", "org").await;
    let context = "LogicalClusterInitializer: initialize of WorkspaceSubroutine on cluster \
                   failed (retrying with backoff): applying Store gamma in root:orgs";
    let line = operator.logged("reconcile failed", context).await;
    assert_eq!(field(&line, "controller"), "LogicalClusterInitializer");
    assert_eq!(field(&line, "key"), format!("{}|cluster", gamma.cluster));
    assert_forbidden(
        field(&line, "error"),
        context,
        "stores.core.platform-mesh.io \"gamma\" is forbidden: User \
         \"security-operator-without-store-create\" cannot create resource \"stores\" in API \
         group \"core.platform-mesh.io\" at the cluster scope: access denied",
    );
    let stores: Api<Store> = Api::all(orgs.client());
    assert!(stores.get_opt("gamma").await.unwrap().is_none());
    eprintln!("least-privilege: (b2) log: {}", field(&line, "error"));
    eprintln!("least-privilege: (b2) done after {}", secs(step));
    operator.stop();

    // (b3) Without `initialize` on the security WorkspaceType: the initializer cannot watch
    // its virtual workspace. kcp's 403 names the LogicalClusters it lists there, not the
    // missing verb. The log line names the watch and carries kcp's 403; `/readyz`, once the
    // watch has failed for longer than the kit's grace, names the controller and the virtual
    // workspace too.
    let step = Instant::now();
    let mut rbac = Rbac::needed();
    rbac.security_verbs.retain(|verb| *verb != "initialize");
    let user = CertificateUser::new(&ca, "security-operator-without-initialize");
    let operator = Running::start(&kcp, &fga_target, &user, &rbac).await;
    waiting_for_security(&orgs, "delta", "org").await;
    let kcp_message = "logicalclusters.core.kcp.io is forbidden: User \
                       \"security-operator-without-initialize\" cannot list resource \
                       \"logicalclusters\" in API group \"core.kcp.io\" at the cluster scope: \
                       access denied";
    let line = operator.logged("watch failed; retrying", kcp_message).await;
    assert_eq!(field(&line, "watch"), "logicalclusters");
    let error = field(&line, "error");
    assert_forbidden(error, "failed to perform initial object list", kcp_message);
    eprintln!("least-privilege: (b3) log: {error}");
    let body = eventually("/readyz to name the failing watch", || async {
        http_get(operator.health, "/readyz")
            .await
            .filter(|(code, _)| *code == 503)
            .map(|(_, body)| body)
            .filter(|body| !body.ends_with("the watches have not synced yet"))
    })
    .await;
    let (watch, rest) = body
        .strip_prefix("not ready: LogicalClusterInitializer: the watch of logicalclusters on ")
        .and_then(|rest| rest.split_once(" has been failing for "))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        watch.starts_with("https://")
            && watch.ends_with("/services/initializingworkspaces/root:security"),
        "{body}"
    );
    let (seconds, rest) = rest.split_once("s: ").unwrap_or_else(|| panic!("{body}"));
    assert!(seconds.parse::<u64>().is_ok(), "{body}");
    assert_eq!(rest, error);
    eprintln!("least-privilege: (b3) /readyz: {body}");
    eprintln!("least-privilege: (b3) done after {}", secs(step));
    operator.stop();
    eprintln!("least-privilege: whole test {}", secs(started));
}
