//! Least privilege: the account-operator binary runs as a user of its own, with a client
//! certificate and no admin credentials, holding exactly the kcp RBAC of [`Rbac::needed`].
//! With that, an org and an account inside it become Ready and are deleted again. With one
//! permission less, the Account says which one, in kcp's own 403 message, and so does the
//! operator's log, or, where kcp keeps its 403 to itself, the Account says where kcp reports
//! it.
//!
//! Why a user and not a ServiceAccount: kcp v0.32.3 creates a new workspace's default
//! APIBindings impersonating the workspace's creator, and the `workspace-admin` binding it
//! makes for the creator in the new workspace names a ServiceAccount of another workspace in a
//! way that does not match it there, so every org workspace the operator creates would stay
//! `Initializing` (kcp-dev/kcp#4038). The last step shows exactly that.
//!
//! It starts a kcp that trusts the test's client CA, so it runs in its own test binary.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod operator;
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use harness::scoped::{
    CertificateUser, ClientCa, Principal, ServiceAccountIdentity, grant, kcp_trusting, rule,
};
use harness::{
    Kcp, OperatorChild, SYSTEM_PATH, TestWorkspace, account_condition, eventually, free_port,
    is_ready, names, wait_for, workspace_of,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kcp::ClusterPath;
use kcp::types::core::{LogicalCluster, LogicalClusterPhase};
use kcp::types::tenancy::{Workspace, WorkspaceType};
use kube::api::{Api, PostParams};
use operator::{Operator, until_readyz};

/// The export, and endpoint slice, the operator serves.
const EXPORT: &str = "core.platform-mesh.io";

/// The operator's RBAC in kcp, by workspace.
#[derive(Clone)]
struct Rbac {
    /// The verbs on `apiexports/content` of the export in `root:platform-mesh-system`: what
    /// the operator does through the export's virtual workspace.
    content_verbs: Vec<&'static str>,
    /// `bind` on the export in `root:platform-mesh-system`.
    bind: bool,
    /// `use` on every WorkspaceType of `root:orgs`.
    use_in_orgs: bool,
}

impl Rbac {
    /// What the operator needs, no more. Each permission was found needed by leaving it out
    /// (three of those runs are the steps below); `get` on the endpoint slice and `update`
    /// through the virtual workspace, which the README listed, were left out and not missed.
    fn needed() -> Self {
        Self {
            content_verbs: vec!["get", "list", "watch", "create", "patch", "delete"],
            bind: true,
            use_in_orgs: true,
        }
    }

    /// In `root:platform-mesh-system`, where the kubeconfig points.
    fn system(&self) -> Vec<PolicyRule> {
        let mut rules = vec![
            // kcp lets a user (not a ServiceAccount of this workspace) into a workspace only
            // with `access` on `/` there.
            PolicyRule {
                non_resource_urls: Some(vec!["/".to_owned()]),
                verbs: vec!["access".to_owned()],
                ..Default::default()
            },
            // The slice is watched by name (a field selector), which needs no `get`.
            rule(
                "apis.kcp.io",
                &["apiexportendpointslices"],
                &[EXPORT],
                &["list", "watch"],
            ),
            rule(
                "apis.kcp.io",
                &["apiexports/content"],
                &[EXPORT],
                &self.content_verbs,
            ),
        ];
        if self.bind {
            // kcp's initializer `system:apibindings` binds the org and account types' default
            // export as the new workspace's creator: the operator.
            rules.push(rule("apis.kcp.io", &["apiexports"], &[EXPORT], &["bind"]));
        }
        rules
    }

    /// Grants it to `principal`, as the admin.
    async fn grant_to(&self, kcp: &Kcp, principal: &impl Principal) {
        let admin = kcp.admin().await;
        grant(&admin, principal, &system(), self.system()).await;
        // Each type a new workspace's type extends needs `use` too. In production `org` and
        // `account` extend `security`, which then needs it as well.
        let in_root = rule(
            "tenancy.kcp.io",
            &["workspacetypes"],
            &["org", "account"],
            &["use"],
        );
        grant(&admin, principal, &ClusterPath::root(), vec![in_root]).await;
        if self.use_in_orgs {
            // The org types are named `<org>-org` and `<org>-account`; RBAC cannot name a
            // prefix, so this is every type of root:orgs.
            let in_orgs = rule("tenancy.kcp.io", &["workspacetypes"], &[], &["use"]);
            grant(&admin, principal, &orgs_path(), vec![in_orgs]).await;
        }
    }
}

fn system() -> ClusterPath {
    SYSTEM_PATH.parse().unwrap()
}

fn orgs_path() -> ClusterPath {
    "root:orgs".parse().unwrap()
}

/// An operator running with a kubeconfig of its own, and its log.
struct Running {
    child: Option<OperatorChild>,
    log: PathBuf,
}

impl Running {
    /// Starts the operator with `kubeconfig`, and waits until its watches have synced.
    async fn start(kcp: &Kcp, kubeconfig: &Path, name: &str) -> Self {
        let health = free_port();
        let log = kcp.state_dir().join(format!("{name}.log"));
        let mut child = Operator::start_with(
            kubeconfig,
            &log,
            &[format!("--health-probe-bind-address=127.0.0.1:{health}")],
        );
        until_readyz(health, 200, &mut child, &log, Duration::from_secs(60)).await;
        Self {
            child: Some(child),
            log,
        }
    }

    /// Starts the operator as user `name`, holding `rbac`.
    async fn as_user(kcp: &Kcp, ca: &ClientCa, name: &str, rbac: &Rbac) -> Self {
        let user = CertificateUser::new(ca, name);
        rbac.grant_to(kcp, &user).await;
        let kubeconfig = user.kubeconfig(kcp, &system(), "root");
        Self::start(kcp, &kubeconfig, name).await
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The operator's `reconcile failed` line about `account` that carries `message`, once
    /// it is written (the runtime logs the failure after the reconcile wrote the condition).
    async fn failure_logged(&self, account: &str, message: &str) -> String {
        let what = format!("a reconcile failure of {account} with {message:?} in the log");
        eventually(&what, || async {
            self.log()
                .lines()
                .find(|line| {
                    line.contains("reconcile failed")
                        && line.contains(&format!("on {account} failed"))
                        && line.contains(message)
                })
                .map(str::to_owned)
        })
        .await
    }

    fn stop(mut self) {
        drop(self.child.take());
    }
}

impl Drop for Running {
    /// The operator's log, when the test fails while it runs.
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("operator log {}:\n{}", self.log.display(), self.log());
        }
    }
}

/// Creates Account `name` of `type_` in `parent`; the Accounts of `parent`.
async fn create(parent: &TestWorkspace, name: &str, type_: &str) -> Api<Account> {
    let accounts: Api<Account> = Api::all(parent.client());
    accounts
        .create(&PostParams::default(), &support::new_account(name, type_))
        .await
        .unwrap();
    accounts
}

/// Waits until the Account's condition `type_` has `status` and a message containing
/// `needle`; returns the message.
async fn condition(
    accounts: &Api<Account>,
    name: &str,
    type_: &str,
    status: &str,
    needle: &str,
) -> String {
    let what = format!("{type_} {status} saying {needle:?}");
    let account = wait_for(accounts, name, &what, |a| {
        account_condition(a, type_)
            .is_some_and(|c| c.status == status && c.message.contains(needle))
    })
    .await;
    let message = account_condition(&account, type_).unwrap().message.clone();
    eprintln!("least-privilege: {name}: {type_} {status}: {message}");
    message
}

/// The condition an API error ends in: the failed call, kcp's message, kube's rendering of the
/// Status, and that it is retried.
fn assert_forbidden(message: &str, kcp_message: &str) {
    let start = format!("a Kubernetes API call failed: ApiError: {kcp_message}: Forbidden (");
    assert!(message.starts_with(&start), "{message}");
    assert!(message.ends_with(") (will retry)"), "{message}");
}

fn secs(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

#[tokio::test]
async fn the_operator_works_with_exactly_its_rbac_and_names_what_is_missing() {
    let started = Instant::now();
    let ca = ClientCa::new();
    let kcp = kcp_trusting(&ca).await;
    let (orgs, _) = support::set_up(&kcp).await;
    eprintln!(
        "least-privilege: kcp and the platform up after {}",
        secs(started)
    );

    // (a) Exactly the RBAC it needs: an org and an account in it become Ready, and go again.
    let step = Instant::now();
    let operator = Running::as_user(&kcp, &ca, "account-operator", &Rbac::needed()).await;
    let (_, acme) = support::ready_account(&orgs, "acme", "org").await;
    let (_, dev) = support::ready_account(&acme, "dev", "account").await;
    let info: AccountInfo = Api::all(dev.client()).get(ACCOUNT_INFO_NAME).await.unwrap();
    assert_eq!(info.spec.organization.name, "acme");
    assert_eq!(info.spec.account.path, "root:orgs:acme:dev");
    eprintln!(
        "least-privilege: acme and acme:dev Ready after {}",
        secs(step)
    );
    harness::delete_account(&acme, "dev").await;
    harness::delete_account(&orgs, "acme").await;
    assert_eq!(names::<Account>(&orgs).await, BTreeSet::new());
    assert_eq!(names::<Workspace>(&orgs).await, BTreeSet::new());
    let types = names::<WorkspaceType>(&orgs).await;
    assert!(
        !types.iter().any(|t| t.starts_with("acme-")),
        "the org's WorkspaceTypes are left: {types:?}"
    );
    eprintln!("least-privilege: and both deleted after {}", secs(step));
    operator.stop();

    // (b1) Without `use` on the WorkspaceTypes of root:orgs: an org still works (its workspace
    // is created in root:orgs, where the virtual workspace acts for the operator), an account
    // in it does not, and says why.
    let step = Instant::now();
    let rbac = Rbac {
        use_in_orgs: false,
        ..Rbac::needed()
    };
    let operator = Running::as_user(&kcp, &ca, "account-operator-without-use", &rbac).await;
    let (_, beta) = support::ready_account(&orgs, "beta", "org").await;
    let accounts = create(&beta, "dev", "account").await;
    let kcp_message = "workspaces.tenancy.kcp.io \"dev\" is forbidden: unable to use workspace \
                       type root:orgs:beta-account: missing verb='use' permission on workspacetype";
    let message = condition(
        &accounts,
        "dev",
        "WorkspaceSubroutine",
        "False",
        kcp_message,
    )
    .await;
    assert_forbidden(&message, kcp_message);
    let ready = account_condition(&accounts.get("dev").await.unwrap(), "Ready").cloned();
    assert_eq!(
        ready.map(|c| (c.status, c.message)),
        Some((
            "False".to_owned(),
            format!("WorkspaceSubroutine process failed: {message}")
        ))
    );
    let line = operator.failure_logged("dev", kcp_message).await;
    eprintln!("least-privilege: log: {line}");
    assert_eq!(names::<Workspace>(&beta).await, BTreeSet::new());
    // Deleting needs no `use`.
    harness::delete_account(&beta, "dev").await;
    harness::delete_account(&orgs, "beta").await;
    eprintln!("least-privilege: without use, done after {}", secs(step));
    operator.stop();

    // (b2) Without `create` through the virtual workspace: the org's first write, its
    // WorkspaceType, is refused, and the Account says so.
    let step = Instant::now();
    let mut rbac = Rbac::needed();
    rbac.content_verbs.retain(|verb| *verb != "create");
    let operator = Running::as_user(&kcp, &ca, "account-operator-without-create", &rbac).await;
    let accounts = create(&orgs, "gamma", "org").await;
    let kcp_message = "workspacetypes.tenancy.kcp.io \"gamma-org\" is forbidden: User \
                       \"account-operator-without-create\" cannot create resource \
                       \"workspacetypes\" in API group \"tenancy.kcp.io\" at the cluster scope: \
                       access denied";
    let message = condition(
        &accounts,
        "gamma",
        "WorkspaceTypeSubroutine",
        "False",
        kcp_message,
    )
    .await;
    assert_forbidden(&message, kcp_message);
    let line = operator.failure_logged("gamma", kcp_message).await;
    eprintln!("least-privilege: log: {line}");
    assert_eq!(names::<Workspace>(&orgs).await, BTreeSet::new());
    harness::delete_account(&orgs, "gamma").await;
    eprintln!("least-privilege: without create, done after {}", secs(step));
    operator.stop();

    // (b3) Without `bind` on the export: kcp creates the org workspace, but its own
    // initializer cannot bind the export there as the operator, so the workspace stays
    // Initializing. kcp's 403 is only on the workspace's LogicalCluster, which the operator
    // cannot read; the Account says where it is.
    let step = Instant::now();
    let rbac = Rbac {
        bind: false,
        ..Rbac::needed()
    };
    let operator = Running::as_user(&kcp, &ca, "account-operator-without-bind", &rbac).await;
    let accounts = create(&orgs, "delta", "org").await;
    let message = condition(
        &accounts,
        "delta",
        "ManageAccountInfoSubroutine",
        "Unknown",
        "system:apibindings",
    )
    .await;
    assert_eq!(
        message,
        "waiting for workspace root:orgs:delta to bind core.platform-mesh.io; kcp's \
         initializer system:apibindings has not finished: it creates the workspace's default \
         APIBindings as the workspace's creator, who needs `bind` on each of their APIExports \
         (kcp's error, if any, is in condition APIBindingsInitialized of LogicalCluster \
         `cluster` in root:orgs:delta)"
    );
    let delta = initializing(&orgs, "delta").await;
    let why = initialization_error(&delta).await;
    assert!(
        why.contains(
            "is forbidden: unable to create APIBinding: no permission to bind to export \
             root:platform-mesh-system:core.platform-mesh.io"
        ),
        "{why}"
    );
    eprintln!("least-privilege: kcp's reason, on the LogicalCluster: {why}");
    eprintln!("least-privilege: without bind, done after {}", secs(step));
    operator.stop();

    // (c) The same RBAC for a ServiceAccount of root:platform-mesh-system, bound outside it
    // as the user kcp names it there: its own requests are allowed (the org's Workspace is
    // created, which takes `use` on root:org), but kcp cannot create the workspace's
    // bindings as it (kcp-dev/kcp#4038).
    let step = Instant::now();
    let admin = kcp.admin().await;
    let sa = ServiceAccountIdentity::create(&admin, &system(), "account-operator").await;
    Rbac::needed().grant_to(&kcp, &sa).await;
    let token = sa.token(&admin, Duration::from_secs(3600)).await;
    let kubeconfig = sa.kubeconfig(&kcp, &token, &system(), "root");
    let operator = Running::start(&kcp, &kubeconfig, "account-operator-serviceaccount").await;
    let accounts = create(&orgs, "epsilon", "org").await;
    condition(
        &accounts,
        "epsilon",
        "WorkspaceSubroutine",
        "True",
        "completed",
    )
    .await;
    let epsilon = initializing(&orgs, "epsilon").await;
    let why = initialization_error(&epsilon).await;
    assert!(
        why.contains(&format!(
            "apibindings.apis.kcp.io is forbidden: User \"{}\" cannot create resource \
             \"apibindings\" in API group \"apis.kcp.io\" at the cluster scope",
            sa.user()
        )),
        "kcp-dev/kcp#4038 may be fixed: the operator could run as a ServiceAccount now ({why})"
    );
    eprintln!(
        "least-privilege: as ServiceAccount {} ({} outside its workspace), kcp says: {why}",
        sa.user(),
        sa.foreign_user()
    );
    eprintln!(
        "least-privilege: as a ServiceAccount, done after {}",
        secs(step)
    );
    operator.stop();
    assert!(!is_ready(&accounts.get("epsilon").await.unwrap()));
    eprintln!("least-privilege: whole test {}", secs(started));
}

/// The workspace of Account `name` in `parent`, once it is initializing.
async fn initializing(parent: &TestWorkspace, name: &str) -> TestWorkspace {
    let workspaces: Api<Workspace> = Api::all(parent.client());
    wait_for(&workspaces, name, "to be initializing", |ws| {
        ws.phase() == Some(LogicalClusterPhase::Initializing)
    })
    .await;
    workspace_of(parent, name).await
}

/// Waits until kcp reports why workspace `ws` cannot finish initializing: the message of the
/// `APIBindingsInitialized` condition of its LogicalCluster, as the admin reads it.
async fn initialization_error(ws: &TestWorkspace) -> String {
    // By name: a workspace's path resolves only a moment after it starts initializing.
    let client = ws.factory.for_cluster(&ws.cluster).unwrap();
    let clusters: Api<LogicalCluster> = Api::all(client);
    let failed = |lc: &LogicalCluster| {
        lc.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "APIBindingsInitialized" && c.status == "False")
                .and_then(|c| c.message.clone())
        })
    };
    let lc = wait_for(
        &clusters,
        "cluster",
        "to report its bindings failing",
        |lc| failed(lc).is_some(),
    )
    .await;
    failed(&lc).unwrap()
}
