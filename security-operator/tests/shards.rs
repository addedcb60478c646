//! Both operators across two kcp shards (issue 14): orgs and accounts placed on each shard
//! become Ready, with their AccountInfo, OpenFGA store and tuples; the core export's endpoint
//! slice and the `security` type's initializing and terminating virtual workspaces list both
//! shards; while `shard-1` is down, an account and a new org on the root shard still become
//! Ready; once it is back, its org works again; and deletion, the terminator included, works on
//! both shards, also on the one that restarted.
//!
//! Placement is steered as an administrator would: kcp places a new workspace on a random
//! schedulable shard, so the test cordons every other shard while it creates one.
//!
//! It runs a sharded kcp of its own, so it has its own test binary.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::export::CORE_EXPORT;
use fga::platform_mesh::owner_tuples;
use harness::sharded::{SHARD_ANNOTATION, ShardedKcp};
use harness::{
    OpenFga, PlatformExport, SECURITY_TYPE, SYSTEM_PATH, TestWorkspace, delete_account,
    ready_account, wait_for,
};
use kcp::ClusterPath;
use kcp::types::apis::ApiExportEndpointSlice;
use kcp::types::tenancy::{Workspace, WorkspaceType};
use kube::ResourceExt;
use kube::api::Api;
use support::{
    run_account_operator, security_args, start_security_operator, store_id, tuples, until_ready,
};

const CREATOR: &str = "alice@example.com";

#[tokio::test]
async fn both_operators_serve_two_shards_and_ride_out_one_shards_outage() {
    let mut kcp = ShardedKcp::start(2).await;
    let admin = kcp.admin().await;
    let roots: Vec<String> = kcp.shards().iter().map(|s| s.name().to_owned()).collect();
    assert_eq!(roots, ["root", "shard-1"]);

    // The platform on the root shard, as an administrator keeps `root:orgs` (where every
    // Store lives) and the exports next to `root`.
    kcp.cordon("shard-1", true).await;
    let kubeconfig = kcp.kubeconfig().with_file_name("operators.kubeconfig");
    let (orgs, kubeconfig) =
        harness::set_up_platform_on(&admin, kcp.kubeconfig(), true, &kubeconfig).await;
    kcp.cordon("shard-1", false).await;
    let system: ClusterPath = SYSTEM_PATH.parse().unwrap();
    for path in [&orgs.path, &system] {
        assert_eq!(shard_of(&kcp, path).await, "root", "{path}");
    }

    let openfga = OpenFga::shared().await;
    run_account_operator(&kubeconfig);
    let health_port = harness::free_port();
    let args = security_args(&kubeconfig, &openfga.grpc_endpoint(), health_port);
    let state_dir = kubeconfig.parent().unwrap();
    let operator = start_security_operator("security-operator", &args, state_dir);
    until_ready(&operator, health_port).await;

    // An org on each shard, and an account in each on the same shard.
    let alpha = account_on(&kcp, "root", &orgs, "alpha", "org").await;
    let beta = account_on(&kcp, "shard-1", &orgs, "beta", "org").await;
    let a1 = account_on(&kcp, "root", &alpha, "a1", "account").await;
    let b1 = account_on(&kcp, "shard-1", &beta, "b1", "account").await;

    // Every shard serves the operators: the core export's slice lists each shard's virtual
    // workspace, and the `security` type each shard's initializing and terminating ones.
    let core = PlatformExport::core_on(&admin).await;
    let system = admin.for_path(&core.system).unwrap();
    let slices: Api<ApiExportEndpointSlice> = Api::all(system);
    let slice = wait_for(&slices, CORE_EXPORT, "to list both shards", |s| {
        s.endpoint_urls().count() == 2
    })
    .await;
    let urls: BTreeSet<&str> = slice.endpoint_urls().collect();
    let expected: BTreeSet<String> = kcp
        .shards()
        .iter()
        .map(|shard| {
            format!(
                "{}/services/apiexport/{}/{CORE_EXPORT}",
                shard.virtual_workspace_url(),
                core.export.annotations()[kcp::CLUSTER_ANNOTATION]
            )
        })
        .collect();
    assert_eq!(urls, expected.iter().map(String::as_str).collect());
    let types: Api<WorkspaceType> = Api::all(admin.for_path(&ClusterPath::root()).unwrap());
    let security = types.get(SECURITY_TYPE).await.unwrap();
    for kind in ["initializing", "terminating"] {
        let urls: Vec<&str> = security.virtual_workspace_urls(kind).collect();
        for shard in kcp.shards() {
            assert_eq!(
                urls.iter()
                    .filter(|url| url.starts_with(shard.virtual_workspace_url()))
                    .count(),
                1,
                "{kind} URLs of {SECURITY_TYPE} for shard {}: {urls:?}",
                shard.name()
            );
        }
    }

    // Each workspace got its AccountInfo on its own shard, and each org its store with
    // exactly the tuples of its accounts.
    for workspace in [&alpha, &beta, &a1, &b1] {
        let info: AccountInfo = Api::all(workspace.client())
            .get(ACCOUNT_INFO_NAME)
            .await
            .unwrap();
        let account = &info.spec.account;
        assert_eq!(
            (account.name.as_str(), account.generated_cluster_id.as_str()),
            (workspace.path.base(), workspace.cluster.as_str())
        );
    }
    let alpha_store = store_id(&orgs, "alpha").await;
    let beta_store = store_id(&orgs, "beta").await;
    assert_ne!(alpha_store, beta_store);
    assert_eq!(
        tuples(&alpha_store).await,
        expected_tuples(&orgs, &alpha, &["a1"])
    );
    assert_eq!(
        tuples(&beta_store).await,
        expected_tuples(&orgs, &beta, &["b1"])
    );

    // shard-1 down (cordoned first, as its administrator would): work on the root shard goes
    // on, a new org's Store included.
    kcp.cordon("shard-1", true).await;
    kcp.stop_shard("shard-1").await;
    let outage = Instant::now();
    let (_, a2) = ready_account(&alpha, "a2", "account", CREATOR).await;
    let account_took = outage.elapsed();
    let org_started = Instant::now();
    let (_, gamma) = ready_account(&orgs, "gamma", "org", CREATOR).await;
    let gamma_store = store_id(&orgs, "gamma").await;
    let org_took = org_started.elapsed();
    for workspace in [&a2, &gamma] {
        assert_eq!(shard_of(&kcp, &workspace.path).await, "root");
    }
    assert_eq!(
        tuples(&alpha_store).await,
        expected_tuples(&orgs, &alpha, &["a1", "a2"])
    );
    assert_eq!(
        tuples(&gamma_store).await,
        expected_tuples(&orgs, &gamma, &[])
    );
    eprintln!(
        "shard-1 down: an account in the root shard's org Ready in {:.1} s, a new org with its \
         store in {:.1} s",
        account_took.as_secs_f64(),
        org_took.as_secs_f64()
    );

    // shard-1 back: its org takes a new account, which lands there.
    let took = kcp.start_shard("shard-1").await;
    kcp.cordon("shard-1", false).await;
    let back = Instant::now();
    account_on(&kcp, "shard-1", &beta, "b2", "account").await;
    eprintln!(
        "shard-1 ready again after {:.1} s; a new account on it Ready {:.1} s after that",
        took.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    assert_eq!(
        tuples(&beta_store).await,
        expected_tuples(&orgs, &beta, &["b1", "b2"])
    );

    // Deleting on both shards, shard-1's after its restart: the terminators remove the
    // tuples, and the Accounts go.
    let deleting = Instant::now();
    futures::future::join(delete_account(&alpha, "a1"), delete_account(&beta, "b1")).await;
    eprintln!(
        "an account deleted on each shard in {:.1} s",
        deleting.elapsed().as_secs_f64()
    );
    assert_eq!(
        tuples(&alpha_store).await,
        expected_tuples(&orgs, &alpha, &["a2"])
    );
    assert_eq!(
        tuples(&beta_store).await,
        expected_tuples(&orgs, &beta, &["b2"])
    );
    assert!(!operator.exited(), "{}", operator.log_tail(20));
}

/// Creates Account `name` of `account_type` in `parent` with every other shard cordoned, so
/// that its workspace lands on `shard`; waits until it is Ready and checks where it landed.
async fn account_on(
    kcp: &ShardedKcp,
    shard: &str,
    parent: &TestWorkspace,
    name: &str,
    account_type: &str,
) -> TestWorkspace {
    let others: Vec<String> = kcp
        .shards()
        .iter()
        .map(|s| s.name().to_owned())
        .filter(|s| s != shard)
        .collect();
    for other in &others {
        kcp.cordon(other, true).await;
    }
    let started = Instant::now();
    let (_, workspace) = ready_account(parent, name, account_type, CREATOR).await;
    for other in &others {
        kcp.cordon(other, false).await;
    }
    eprintln!(
        "{account_type} {name} on {shard} Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(shard_of(kcp, &workspace.path).await, shard);
    workspace
}

/// The shard kcp placed the workspace at `path` on.
async fn shard_of(kcp: &ShardedKcp, path: &ClusterPath) -> String {
    let parent = path.parent().unwrap();
    let client = kcp.admin().await.for_path(&parent).unwrap();
    let workspace: Workspace = Api::all(client).get(path.base()).await.unwrap();
    workspace
        .annotations()
        .get(SHARD_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| panic!("workspace {path} has no shard"))
}

/// Exactly the tuples of org `org` and its accounts `accounts`, as the security-operator
/// writes them.
fn expected_tuples(
    orgs: &TestWorkspace,
    org: &TestWorkspace,
    accounts: &[&str],
) -> BTreeSet<String> {
    let (orgs_c, org_c) = (orgs.cluster.as_str(), org.cluster.as_str());
    let org_name = org.path.base();
    let mut expected: Vec<fga::Tuple> = owner_tuples(orgs_c, org_name, CREATOR, None);
    for name in accounts {
        expected.extend(owner_tuples(org_c, name, CREATOR, Some((orgs_c, org_name))));
    }
    expected.iter().map(ToString::to_string).collect()
}
