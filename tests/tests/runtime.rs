//! The multi-cluster runtime against a real kcp: wildcard watches through the apiexport,
//! initializing and terminating virtual workspaces, engagement, routing of writes, and
//! initializer/terminator release.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::{Account, AccountSpec};
use futures::future::join_all;
use harness::{
    Kcp, PlatformExport, TcpProxy, TestWorkspace, universal, wait_for, wait_gone, when_found,
    when_served,
};
use k8s_openapi::api::core::v1::Namespace;
use kcp::initialization::{Marker, Released, release, release_patch};
use kcp::runtime::{
    Action, Context, Controller, ControllerConfig, EndpointSource, RuntimeMetrics,
    VirtualWorkspaceKind,
};
use kcp::types::apis::ApiBinding;
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::types::tenancy::{
    Workspace, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference, WorkspaceTypeSpec,
};
use kcp::{ClusterName, ClusterPath};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

const SETTLE: Duration = Duration::from_secs(90);

/// Polls `check` until it holds: tests observe the controller from outside, where there is
/// nothing to watch.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually_async<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// An Account controller that writes its own cluster name into `spec.description`, through
/// the endpoint it was seen on: proof of where each write went.
async fn stamp_cluster(account: Arc<Account>, ctx: Context) -> Result<Action, kube::Error> {
    let stamp = ctx.key.cluster.to_string();
    if account.spec.description.as_deref() == Some(&stamp) {
        return Ok(Action::Done);
    }
    let client = ctx.client().map_err(|e| kube::Error::Service(e.into()))?;
    let patch = serde_json::json!({"spec": {"description": stamp}});
    Api::<Account>::all(client)
        .patch(
            &account.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(Action::Done)
}

fn account(name: &str) -> Account {
    Account::new(
        name,
        AccountSpec {
            type_: "account".into(),
            display_name: name.into(),
            ..Default::default()
        },
    )
}

async fn account_controller(
    kcp: &Kcp,
    core: &PlatformExport,
    registry: &mut Registry,
    name: &str,
) -> Controller<Account> {
    let admin = kcp.admin().await;
    let source = EndpointSource::ApiExport {
        client: admin.for_path(&core.system).unwrap(),
        slice: crds::export::CORE_EXPORT.to_owned(),
    };
    Controller::new(
        name,
        admin,
        source,
        ControllerConfig::default(),
        Some(RuntimeMetrics::new(registry)),
    )
}

#[tokio::test]
async fn fifty_bound_workspaces_share_one_watch_per_kind_and_writes_reach_their_own_workspace() {
    let kcp = Kcp::shared().await;
    let core = PlatformExport::core(kcp).await;
    let tenant = kcp.private_workspace("fifty").await;

    // 50 workspaces, each binding the export and holding an Account of the same name.
    let mut consumers: Vec<TestWorkspace> = Vec::new();
    for batch in (0..50).collect::<Vec<_>>().chunks(10) {
        let created = join_all(batch.iter().map(|i| {
            let tenant = tenant.clone();
            async move {
                let ws = tenant.child(&format!("c{i}"), universal()).await;
                core.bind(&ws).await;
                Api::<Account>::all(ws.client())
                    .create(&PostParams::default(), &account("same-name"))
                    .await
                    .unwrap();
                ws
            }
        }))
        .await;
        consumers.extend(created);
    }

    let mut registry = Registry::default();
    let controller = account_controller(kcp, core, &mut registry, "fifty").await;
    let mut health = controller.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(stamp_cluster, stop.clone()));
    assert!(health.wait_synced().await);

    // Every workspace's Account carries that workspace's own cluster name.
    for ws in &consumers {
        let api: Api<Account> = Api::all(ws.client());
        let cluster = ws.cluster.to_string();
        wait_for(
            &api,
            "same-name",
            "stamped with its own cluster",
            move |a| a.spec.description.as_deref() == Some(cluster.as_str()),
        )
        .await;
    }

    // All of that through one endpoint, one open watch per kind, one watch request per kind.
    let endpoints = metric(
        &registry,
        "kcp_virtual_workspace_endpoints",
        &[("controller", "fifty")],
    );
    assert_eq!(endpoints, Some(1.0));
    let engaged = metric(
        &registry,
        "kcp_engaged_clusters",
        &[("controller", "fifty")],
    )
    .unwrap();
    assert!(engaged >= 50.0, "{engaged} clusters engaged");
    for kind in ["accounts", "apibindings"] {
        let labels = [("controller", "fifty"), ("kind", kind)];
        assert_eq!(
            metric(&registry, "kcp_wildcard_watches", &labels),
            Some(1.0),
            "{kind}"
        );
        assert_eq!(
            metric(&registry, "kcp_watch_requests_total", &labels),
            Some(1.0),
            "{kind}"
        );
    }
    eprintln!("50 workspaces: 1 endpoint, 1 wildcard watch per kind (accounts, apibindings)");

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn deleting_a_binding_disengages_and_a_new_binding_engages_without_restart() {
    let kcp = Kcp::shared().await;
    let core = PlatformExport::core(kcp).await;
    let tenant = kcp.private_workspace("engage").await;
    let ws = tenant.child("consumer", universal()).await;
    core.bind(&ws).await;

    let mut registry = Registry::default();
    let controller = account_controller(kcp, core, &mut registry, "engage").await;
    let clusters = controller.clusters();
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(stamp_cluster, stop.clone()));
    eventually("the workspace is engaged", || {
        clusters.is_engaged(&ws.cluster)
    })
    .await;
    assert_eq!(
        clusters.cluster_for_path(&ws.path),
        Some(ws.cluster.clone())
    );

    let bindings: Api<ApiBinding> = Api::all(ws.client());
    bindings
        .delete(crds::export::CORE_EXPORT, &DeleteParams::default())
        .await
        .unwrap();
    // kcp's part (finishing the binding's deletion) can be slow under load; ours follows it.
    wait_gone(&bindings, crds::export::CORE_EXPORT).await;
    eventually("the workspace is disengaged", || {
        !clusters.is_engaged(&ws.cluster)
    })
    .await;

    core.bind(&ws).await;
    eventually("the workspace is engaged again", || {
        clusters.is_engaged(&ws.cluster)
    })
    .await;
    let accounts: Api<Account> = Api::all(ws.client());
    accounts
        .create(&PostParams::default(), &account("after-rebind"))
        .await
        .unwrap();
    let cluster = ws.cluster.to_string();
    wait_for(&accounts, "after-rebind", "reconciled", move |a| {
        a.spec.description.as_deref() == Some(cluster.as_str())
    })
    .await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
}

/// A new child workspace binding the export requeues the Account in its parent through the
/// on-engage hook, with nothing else that could: no resync, no requeue, and the Account is
/// not touched after its first reconcile.
#[tokio::test]
async fn a_child_workspace_that_binds_requeues_its_parent_account_without_a_poll() {
    let kcp = Kcp::shared().await;
    let core = PlatformExport::core(kcp).await;
    let tenant = kcp.private_workspace("onengage").await;
    let parent = tenant.child("parent", universal()).await;
    core.bind(&parent).await;
    Api::<Account>::all(parent.client())
        .create(&PostParams::default(), &account("kid"))
        .await
        .unwrap();

    // Each reconcile of an Account records whether the workspace named after it is served.
    let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let admin = kcp.admin().await;
    let source = EndpointSource::ApiExport {
        client: admin.for_path(&core.system).unwrap(),
        slice: crds::export::CORE_EXPORT.to_owned(),
    };
    let config = ControllerConfig {
        resync: None,
        ..ControllerConfig::default()
    };
    let controller: Controller<Account> = Controller::new("onengage", admin, source, config, None)
        .on_engage(|cluster, clusters, _| {
            let Some(path) = clusters.path_of(cluster) else {
                return Vec::new();
            };
            path.parent()
                .and_then(|p| clusters.cluster_for_path(&p))
                .map(|p| kcp::runtime::ObjectKey::cluster_scoped(p, path.base()))
                .into_iter()
                .collect()
        });
    let record = seen.clone();
    let reconcile = move |account: Arc<Account>, ctx: Context| {
        let record = record.clone();
        async move {
            let child = ctx
                .clusters()
                .path_of(&ctx.key.cluster)
                .and_then(|p| p.join(&account.name_any()).ok())
                .and_then(|p| ctx.clusters().cluster_for_path(&p));
            record
                .lock()
                .unwrap()
                .push((ctx.key.to_string(), child.is_some()));
            Ok::<_, kube::Error>(Action::Done)
        }
    };
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(reconcile, stop.clone()));
    let parent_key = format!("{}|kid", parent.cluster);
    eventually("the Account is reconciled once", || {
        seen.lock().unwrap().iter().any(|(k, _)| *k == parent_key)
    })
    .await;
    assert!(
        seen.lock().unwrap().iter().all(|(_, served)| !served),
        "no child workspace yet"
    );

    // The child workspace appears and binds: the parent's Account runs again, seeing it.
    let child = parent.child("kid", universal()).await;
    core.bind(&child).await;
    eventually(
        "the parent's Account is requeued by the child's engagement",
        || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|(k, served)| *k == parent_key && *served)
        },
    )
    .await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
}

/// While kcp cannot be reached, the controller's health reports the failing watch (which
/// `/readyz` turns into a 503 after its grace period) and the errors are counted; once kcp is
/// back, the watch recovers and the health clears.
#[tokio::test]
async fn a_failing_watch_shows_in_the_health_and_clears_when_it_resumes() {
    let kcp = Kcp::shared().await;
    let core = PlatformExport::core(kcp).await;
    let proxy = TcpProxy::to_kcp(kcp).await;
    let proxied = proxy.kubeconfig(kcp.kubeconfig(), "proxied.kubeconfig");
    let factory = kcp::ClientFactory::from_kubeconfig(&proxied, Some("root"))
        .await
        .unwrap();
    // The endpoint slice is watched through the proxy (its URLs lead to kcp directly).
    let source = EndpointSource::ApiExport {
        client: factory.for_path(&core.system).unwrap(),
        slice: crds::export::CORE_EXPORT.to_owned(),
    };
    let mut registry = Registry::default();
    let metrics = RuntimeMetrics::new(&mut registry);
    let controller: Controller<Account> = Controller::new(
        "outage",
        kcp.admin().await,
        source,
        ControllerConfig::default(),
        Some(metrics),
    );
    let mut health = controller.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(stamp_cluster, stop.clone()));
    assert!(health.wait_synced().await);
    assert_eq!(health.failing_longer_than(Duration::ZERO), None);

    proxy.set_cut(true);
    let grace = Duration::from_secs(2);
    eventually("the cut watch is reported failing", || {
        health.failing_longer_than(grace).is_some()
    })
    .await;
    let why = health.failing_longer_than(grace).unwrap();
    assert!(
        why.contains("APIExportEndpointSlice core.platform-mesh.io"),
        "{why}"
    );
    let errors = metric(
        &registry,
        "kcp_watch_errors_total",
        &[("controller", "outage")],
    );
    assert!(errors.is_some_and(|n| n >= 1.0), "{errors:?}");

    proxy.set_cut(false);
    eventually("the watch recovers", || {
        health.failing_longer_than(Duration::ZERO).is_none()
    })
    .await;

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .unwrap()
        .unwrap();
}

/// Creates WorkspaceType `name` in `ws` and waits until kcp published its virtual workspaces.
async fn workspace_type(ws: &TestWorkspace, name: &str, spec: WorkspaceTypeSpec) -> WorkspaceType {
    let api: Api<WorkspaceType> = Api::all(ws.client());
    let object = WorkspaceType {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    let params = PostParams::default();
    when_served(|| api.create(&params, &object)).await.unwrap();
    wait_for(&api, name, "to publish virtual workspaces", |wt| {
        wt.virtual_workspace_urls("initializing").next().is_some()
            && wt.virtual_workspace_urls("terminating").next().is_some()
    })
    .await
}

fn type_ref(ws: &TestWorkspace, name: &str) -> WorkspaceTypeReference {
    WorkspaceTypeReference {
        name: name.into(),
        path: ws.path.to_string(),
    }
}

/// Starts a LogicalCluster controller on a WorkspaceType's initializing or terminating
/// virtual workspace that does `work` in each workspace (through the content proxy) and then
/// releases its marker.
fn marker_controller(
    kcp_admin: kcp::ClientFactory,
    ws: &TestWorkspace,
    type_name: &str,
    kind: VirtualWorkspaceKind,
    seen: Arc<Mutex<BTreeSet<ClusterName>>>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let source = EndpointSource::WorkspaceType {
        client: ws.client(),
        name: type_name.into(),
        kind,
    };
    let controller: Controller<LogicalCluster> = Controller::new(
        format!("{type_name}-{kind:?}"),
        kcp_admin,
        source,
        ControllerConfig::default(),
        None,
    );
    tokio::spawn(controller.run(
        move |_cluster: Arc<LogicalCluster>, ctx: Context| {
            let seen = seen.clone();
            async move {
                let marker = Marker::from_virtual_workspace_url(&ctx.endpoint)
                    .ok_or_else(|| format!("no marker in {}", ctx.endpoint))?;
                let client = ctx.client().map_err(|e| e.to_string())?;
                // Work inside the workspace through the content proxy (cluster-scoped: a new
                // workspace has no namespaces yet while it initializes).
                let namespaces: Api<Namespace> = Api::all(client.clone());
                let name = format!("touched-by-{}", marker_name(&marker).replace(':', "-"));
                if matches!(marker, Marker::Initializer(_)) {
                    let namespace = Namespace {
                        metadata: ObjectMeta {
                            name: Some(name),
                            ..Default::default()
                        },
                        ..Default::default()
                    };
                    match namespaces.create(&PostParams::default(), &namespace).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 409 => {}
                        Err(e) => return Err(e.to_string()),
                    }
                } else {
                    namespaces
                        .list(&Default::default())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                release(client, &marker).await.map_err(|e| e.to_string())?;
                seen.lock().unwrap().insert(ctx.key.cluster.clone());
                Ok::<_, String>(Action::Done)
            }
        },
        stop,
    ))
}

fn marker_name(marker: &Marker) -> &str {
    match marker {
        Marker::Initializer(n) | Marker::Terminator(n) => n,
    }
}

#[tokio::test]
async fn two_initializers_each_work_through_the_virtual_workspace_and_release_only_their_own() {
    let kcp = Kcp::shared().await;
    let admin = kcp.admin().await;
    let ws = kcp.private_workspace("init").await;
    let initializer = WorkspaceTypeSpec {
        initializer: true,
        ..Default::default()
    };
    workspace_type(&ws, "first", initializer.clone()).await;
    workspace_type(
        &ws,
        "second",
        WorkspaceTypeSpec {
            extend: Some(WorkspaceTypeExtension {
                with: vec![type_ref(&ws, "first")],
            }),
            ..initializer
        },
    )
    .await;

    let stop = CancellationToken::new();
    let seen_first = Arc::new(Mutex::new(BTreeSet::new()));
    let seen_second = Arc::new(Mutex::new(BTreeSet::new()));
    let tasks = [
        marker_controller(
            admin.clone(),
            &ws,
            "first",
            VirtualWorkspaceKind::Initializing,
            seen_first.clone(),
            stop.clone(),
        ),
        marker_controller(
            admin.clone(),
            &ws,
            "second",
            VirtualWorkspaceKind::Initializing,
            seen_second.clone(),
            stop.clone(),
        ),
    ];

    let child = ws.child("initialized", type_ref(&ws, "second")).await;
    for set in [&seen_first, &seen_second] {
        assert!(set.lock().unwrap().contains(&child.cluster));
    }
    let names: BTreeSet<String> = Api::<Namespace>::all(child.client())
        .list(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("touched-by-"))
        .collect();
    assert_eq!(
        names.len(),
        2,
        "both initializers worked in the workspace: {names:?}"
    );
    stop.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn a_stale_release_is_refused_and_never_re_adds_another_initializer() {
    let kcp = Kcp::shared().await;
    let admin = kcp.admin().await;
    let ws = kcp.private_workspace("race").await;
    let initializer = WorkspaceTypeSpec {
        initializer: true,
        ..Default::default()
    };
    let first = workspace_type(&ws, "first", initializer.clone()).await;
    let second = workspace_type(
        &ws,
        "second",
        WorkspaceTypeSpec {
            extend: Some(WorkspaceTypeExtension {
                with: vec![type_ref(&ws, "first")],
            }),
            ..initializer
        },
    )
    .await;

    // No controller runs: the workspace waits in Initializing with both markers.
    let workspaces: Api<Workspace> = Api::all(ws.client());
    let pending = Workspace {
        metadata: ObjectMeta {
            name: Some("pending".into()),
            ..Default::default()
        },
        spec: kcp::types::tenancy::WorkspaceSpec {
            type_: Some(type_ref(&ws, "second")),
            ..Default::default()
        },
        status: None,
    };
    workspaces
        .create(&PostParams::default(), &pending)
        .await
        .unwrap();
    let pending = wait_for(&workspaces, "pending", "Initializing with a cluster", |w| {
        w.spec.cluster.is_some()
            && w.phase() == Some(kcp::types::core::LogicalClusterPhase::Initializing)
    })
    .await;
    let cluster: ClusterName = pending.spec.cluster.unwrap().parse().unwrap();

    let vw = |wt: &WorkspaceType| {
        wt.virtual_workspace_urls("initializing")
            .next()
            .unwrap()
            .to_owned()
    };
    let (first_url, second_url) = (vw(&first), vw(&second));
    let first_marker = Marker::from_virtual_workspace_url(&first_url).unwrap();
    let second_marker = Marker::from_virtual_workspace_url(&second_url).unwrap();
    let via_first: Api<LogicalCluster> =
        Api::all(admin.for_virtual_cluster(&first_url, &cluster).unwrap());
    let via_second: Api<LogicalCluster> =
        Api::all(admin.for_virtual_cluster(&second_url, &cluster).unwrap());

    // The second controller reads, then the first releases, then the second writes from its
    // stale read: kcp must refuse it (it would re-add the first marker).
    // The virtual workspace serves a new cluster once its informers caught up.
    let stale = when_found(|| via_second.get(LOGICAL_CLUSTER_NAME))
        .await
        .unwrap();
    let stale_patch = release_patch(&stale, &second_marker).unwrap();
    assert_eq!(
        release(
            admin.for_virtual_cluster(&first_url, &cluster).unwrap(),
            &first_marker
        )
        .await
        .unwrap(),
        Released::Removed
    );
    let refused = via_second
        .patch_status(
            LOGICAL_CLUSTER_NAME,
            &PatchParams::default(),
            &Patch::Merge(&stale_patch),
        )
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 409),
        "{refused:?}"
    );

    // Released properly, from a fresh read: the first marker stays gone, the workspace is Ready.
    let status_now = via_first.get(LOGICAL_CLUSTER_NAME).await;
    assert!(
        status_now.is_err(),
        "the first initializer's view no longer serves the cluster"
    );
    assert_eq!(
        release(
            admin.for_virtual_cluster(&second_url, &cluster).unwrap(),
            &second_marker
        )
        .await
        .unwrap(),
        Released::Removed
    );
    let ready = wait_for(&workspaces, "pending", "Ready", Workspace::is_ready).await;
    let remaining = ready.status.map(|s| s.initializers).unwrap_or_default();
    assert!(
        !remaining.contains(&marker_name(&first_marker).to_owned()),
        "{remaining:?}"
    );
}

#[tokio::test]
async fn a_terminator_sees_the_deleted_workspace_and_releases_it() {
    let kcp = Kcp::shared().await;
    let admin = kcp.admin().await;
    let ws = kcp.private_workspace("term").await;
    workspace_type(
        &ws,
        "guarded",
        WorkspaceTypeSpec {
            terminator: true,
            ..Default::default()
        },
    )
    .await;

    let stop = CancellationToken::new();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let task = marker_controller(
        admin,
        &ws,
        "guarded",
        VirtualWorkspaceKind::Terminating,
        seen.clone(),
        stop.clone(),
    );

    let child = ws.child("doomed", type_ref(&ws, "guarded")).await;
    let workspaces: Api<Workspace> = Api::all(ws.client());
    workspaces
        .delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    eventually_async("the workspace is gone", || {
        let workspaces = workspaces.clone();
        async move { workspaces.get_opt("doomed").await.unwrap().is_none() }
    })
    .await;
    assert!(seen.lock().unwrap().contains(&child.cluster));
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_controller_without_endpoints_is_ready_and_one_whose_watch_never_syncs_still_stops() {
    let kcp = Kcp::shared().await;
    let admin = kcp.admin().await;
    let config = ControllerConfig {
        shutdown_timeout: Duration::from_secs(2),
        ..Default::default()
    };

    // No such slice: an empty endpoint list is normal, and the controller is ready.
    let source = EndpointSource::ApiExport {
        client: admin.for_path(&ClusterPath::root()).unwrap(),
        slice: "no-such-slice".into(),
    };
    let idle: Controller<Account> =
        Controller::new("idle", admin.clone(), source, config.clone(), None);
    let mut health = idle.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(idle.run(stamp_cluster, stop.clone()));
    assert!(
        tokio::time::timeout(SETTLE, health.wait_synced())
            .await
            .unwrap()
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();

    // A workspace that does not exist: the source watch fails forever and never syncs.
    let source = EndpointSource::ApiExport {
        client: admin
            .for_path(&"root:no-such-workspace".parse().unwrap())
            .unwrap(),
        slice: "anything".into(),
    };
    let stuck: Controller<Account> = Controller::new("stuck", admin, source, config, None);
    let health = stuck.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(stuck.run(stamp_cluster, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!health.is_synced());
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
}
