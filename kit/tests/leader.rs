//! Leader election against a real kcp (started by the harness): one holder at a time,
//! release on shutdown, and takeover of an abandoned lease.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kit::leader::{LeaderElector, LeaseConfig};
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
