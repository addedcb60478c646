//! Leader election against a real kcp (started by the harness): one holder at a time,
//! release on shutdown, takeover of an abandoned lease, and a partitioned leader that stops
//! writing before the next one starts.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kit::leader::{LeaderElector, LeaderError, LeaseConfig};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

/// Guards against hangs only; nothing here asserts on how fast kcp is.
const PATIENCE: Duration = Duration::from_secs(90);
fn config(namespace: &str, identity: &str) -> LeaseConfig {
    LeaseConfig {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_millis(250),
        ..LeaseConfig::new(namespace, "lifecycle-test-leader", identity)
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get("lifecycle-test-leader")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
}

async fn until_leading(elector: &LeaderElector) {
    let mut leading = elector.subscribe();
    tokio::time::timeout(PATIENCE, leading.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn leader_election_on_real_kcp() {
    let kcp = harness::Kcp::shared().await;
    let ws = kcp.private_workspace("leader").await;
    let namespaces: Api<Namespace> = Api::all(ws.client());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some("leader-election".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match namespaces.create(&PostParams::default(), &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("creating the namespace: {e}"),
    }
    let leases: Api<Lease> = Api::namespaced(ws.client(), "leader-election");

    let a = Arc::new(
        LeaderElector::new(ws.client(), config("leader-election", "candidate-a")).unwrap(),
    );
    let b = Arc::new(
        LeaderElector::new(ws.client(), config("leader-election", "candidate-b")).unwrap(),
    );
    let shutdown = CancellationToken::new();
    let leading_now = Arc::new(Mutex::new(Vec::<&'static str>::new()));

    // Each candidate's work records that it leads and runs until its own stop token (or a
    // lost lease / shutdown) ends it.
    let spawn = |elector: Arc<LeaderElector>, who: &'static str, stop: CancellationToken| {
        let shutdown = shutdown.clone();
        let leading_now = leading_now.clone();
        tokio::spawn(async move {
            elector
                .run(shutdown, move |lost| async move {
                    leading_now.lock().unwrap().push(who);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = lost.cancelled() => {}
                    }
                    leading_now.lock().unwrap().retain(|w| *w != who);
                    who
                })
                .await
        })
    };
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let run_a = spawn(a.clone(), "candidate-a", stop_a.clone());
    let run_b = spawn(b.clone(), "candidate-b", stop_b.clone());

    // Exactly one leads.
    tokio::time::timeout(PATIENCE, async {
        loop {
            if *a.subscribe().borrow() || *b.subscribe().borrow() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    // Let the follower retry a few times against the held lease.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (leader, follower, stop_leader, run_leader, run_follower) = if *a.subscribe().borrow() {
        (a.clone(), b.clone(), stop_a, run_a, run_b)
    } else {
        (b.clone(), a.clone(), stop_b, run_b, run_a)
    };
    let leader_id = leader.config().identity.clone();
    let follower_id = follower.config().identity.clone();
    assert!(!*follower.subscribe().borrow(), "two leaders");
    assert_eq!(*leading_now.lock().unwrap(), [leader_id.as_str()]);
    assert_eq!(holder(&leases).await.as_deref(), Some(leader_id.as_str()));

    // The leader's work ends: it releases, and the follower takes over.
    stop_leader.cancel();
    let finished = tokio::time::timeout(PATIENCE, run_leader)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(finished, Some(leader_id.as_str()));
    assert!(!*leader.subscribe().borrow());
    until_leading(&follower).await;
    assert_eq!(holder(&leases).await.as_deref(), Some(follower_id.as_str()));
    let lease = leases.get("lifecycle-test-leader").await.unwrap();
    assert_eq!(lease.spec.unwrap().lease_transitions, Some(1));

    // Shutdown: the new leader's work is cancelled and it releases the lease.
    shutdown.cancel();
    let finished = tokio::time::timeout(PATIENCE, run_follower)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(finished, Some(follower_id.as_str()));
    assert_eq!(holder(&leases).await, None);
    assert!(leading_now.lock().unwrap().is_empty());
}

/// A leader that stops renewing (crashed, without releasing) loses the lease once it has not
/// changed for the lease duration, as seen by the other candidate's own clock; the old holder
/// then sees the new one and does not take the lease back.
#[tokio::test]
async fn an_abandoned_lease_is_taken_over_after_it_expires() {
    use kit::leader::Attempt;

    let kcp = harness::Kcp::shared().await;
    let ws = kcp.private_workspace("lease-expiry").await;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some("leader-election".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(ws.client())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let short = |identity: &str| LeaseConfig {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(250),
        ..LeaseConfig::new("leader-election", "lifecycle-test-expiry", identity)
    };
    let crashed = LeaderElector::new(ws.client(), short("crashed")).unwrap();
    let successor = LeaderElector::new(ws.client(), short("successor")).unwrap();

    assert_eq!(
        crashed.try_acquire_or_renew().await.unwrap(),
        Attempt::Leading
    );
    assert_eq!(
        successor.try_acquire_or_renew().await.unwrap(),
        Attempt::HeldBy("crashed".to_owned())
    );
    // `crashed` never renews again; the successor keeps trying until the lease has expired.
    tokio::time::timeout(PATIENCE, async {
        loop {
            match successor.try_acquire_or_renew().await.unwrap() {
                Attempt::Leading => break,
                Attempt::HeldBy(holder) => assert_eq!(holder, "crashed"),
                Attempt::Conflict => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        crashed.try_acquire_or_renew().await.unwrap(),
        Attempt::HeldBy("successor".to_owned())
    );
    let leases: Api<Lease> = Api::namespaced(ws.client(), "leader-election");
    let spec = leases
        .get("lifecycle-test-expiry")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("successor"));
    assert_eq!(spec.lease_transitions, Some(1));
}

/// `client`, until `partitioned` is set: from then on every request hangs forever, as through
/// a network partition or a stuck API server.
fn partitionable(client: kube::Client, partitioned: Arc<AtomicBool>) -> kube::Client {
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (client, partitioned) = (client.clone(), partitioned.clone());
        async move {
            if partitioned.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            client.send(request).await.map_err(tower::BoxError::from)
        }
    });
    kube::Client::new(service, "default")
}

/// What one replica's work did.
#[derive(Default)]
struct Replica {
    /// When the work started (it leads from then on).
    started: Mutex<Option<Instant>>,
    /// When each write was sent.
    sent: Mutex<Vec<Instant>>,
    /// How many writes succeeded.
    written: AtomicUsize,
    /// Whether the work future was dropped before it returned.
    dropped: AtomicBool,
}

/// Sets [`Replica::dropped`] unless defused (the work returned).
struct DropGuard(Arc<Replica>, bool);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.1 {
            self.0.dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// A leader whose Lease requests hang (partitioned from the API server, while its work still
/// reaches it) loses leadership and stops writing before another replica can take over: every
/// write the old leader sent was sent before the new leader's work started.
#[tokio::test]
async fn a_partitioned_leader_stops_writing_before_the_next_one_starts() {
    let kcp = harness::Kcp::shared().await;
    let ws = kcp.private_workspace("leader-fencing").await;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some("leader-election".to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(ws.client())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(ws.client(), "leader-election");
    let target = ConfigMap {
        metadata: ObjectMeta {
            name: Some("leader-writes".to_owned()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    configmaps
        .create(&PostParams::default(), &target)
        .await
        .unwrap();
    let fenced = |identity: &str| LeaseConfig {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(250),
        ..LeaseConfig::new("leader-election", "lifecycle-test-fencing", identity)
    };

    // Only A's elector goes through the partition; its work writes through a normal client.
    let partitioned = Arc::new(AtomicBool::new(false));
    let a = Arc::new(
        LeaderElector::new(
            partitionable(ws.client(), partitioned.clone()),
            fenced("replica-a"),
        )
        .unwrap(),
    );
    let b = Arc::new(LeaderElector::new(ws.client(), fenced("replica-b")).unwrap());
    let shutdown = CancellationToken::new();

    // Each replica's work writes every 100 ms until its own stop token is cancelled. It
    // ignores the leadership token on purpose, like work that takes long to drain: only `run`
    // dropping it stops an old leader's writes.
    let spawn = |elector: Arc<LeaderElector>,
                 who: &'static str,
                 replica: Arc<Replica>,
                 stop: CancellationToken| {
        let (shutdown, configmaps) = (shutdown.clone(), configmaps.clone());
        tokio::spawn(async move {
            elector
                .run(shutdown, move |_leading| async move {
                    *replica.started.lock().unwrap() = Some(Instant::now());
                    let mut guard = DropGuard(replica.clone(), false);
                    let mut count = 0_u64;
                    while !stop.is_cancelled() {
                        count += 1;
                        let patch = serde_json::json!({
                            "data": { "writer": who, "count": count.to_string() }
                        });
                        replica.sent.lock().unwrap().push(Instant::now());
                        match configmaps
                            .patch(
                                "leader-writes",
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await
                        {
                            Ok(_) => {
                                replica.written.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => eprintln!("{who}: write {count} failed: {e}"),
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    guard.1 = true;
                    count
                })
                .await
        })
    };
    let (replica_a, replica_b) = (Arc::new(Replica::default()), Arc::new(Replica::default()));
    let stop_b = CancellationToken::new();

    // A leads first, and writes.
    let run_a = spawn(
        a.clone(),
        "replica-a",
        replica_a.clone(),
        CancellationToken::new(),
    );
    until_leading(&a).await;
    tokio::time::timeout(PATIENCE, async {
        while replica_a.written.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    let run_b = spawn(b.clone(), "replica-b", replica_b.clone(), stop_b.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!*b.subscribe().borrow(), "two leaders");
    assert!(replica_b.started.lock().unwrap().is_none());

    // Partition A from the API server: its renewals hang; its work still writes.
    partitioned.store(true, Ordering::SeqCst);
    let lost = tokio::time::timeout(PATIENCE, run_a)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(lost, Err(LeaderError::Lost { .. })), "{lost:?}");
    assert!(!*a.subscribe().borrow());
    assert!(
        replica_a.dropped.load(Ordering::SeqCst),
        "A's work was not dropped"
    );

    // B takes over, and writes.
    until_leading(&b).await;
    tokio::time::timeout(PATIENCE, async {
        while replica_b.written.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    stop_b.cancel();
    shutdown.cancel();
    let finished = tokio::time::timeout(PATIENCE, run_b)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(finished.is_some_and(|count| count >= 1));
    assert!(!replica_b.dropped.load(Ordering::SeqCst));

    // No write from the old leader after the new one started.
    let b_started = replica_b.started.lock().unwrap().unwrap();
    let a_sent = replica_a.sent.lock().unwrap().clone();
    assert!(replica_a.written.load(Ordering::SeqCst) >= 3);
    let last_a = *a_sent.last().unwrap();
    assert!(
        a_sent.iter().all(|sent| *sent < b_started),
        "A sent a write {:?} after B's work started",
        last_a - b_started
    );
    let lease = Api::<Lease>::namespaced(ws.client(), "leader-election")
        .get("lifecycle-test-fencing")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity, None, "B released the lease");
    assert_eq!(spec.lease_transitions, Some(1));
}
