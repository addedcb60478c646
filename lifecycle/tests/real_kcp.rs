//! The engine and leader election against a real kcp (started by the harness).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::{Account, AccountSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use lifecycle::leader::{LeaderElector, LeaseConfig};
use lifecycle::{Lifecycle, Outcome, Subroutine, SubroutineError, async_trait};
use tokio_util::sync::CancellationToken;

/// Guards against hangs only; nothing here asserts on how fast kcp is.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Debug, Default)]
struct Ctx {
    log: Mutex<Vec<String>>,
    release_a: AtomicBool,
}

impl Ctx {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

struct Step {
    name: &'static str,
    finalizer: Option<&'static str>,
}

#[async_trait]
impl Subroutine<Account, Ctx> for Step {
    fn name(&self) -> &str {
        self.name
    }
    fn finalizers(&self, _obj: &Account) -> Vec<String> {
        self.finalizer.iter().map(|f| (*f).to_owned()).collect()
    }
    async fn process(&self, _obj: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        ctx.log
            .lock()
            .unwrap()
            .push(format!("{}.process", self.name));
        Ok(Outcome::Ok)
    }
    async fn finalize(&self, _obj: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        ctx.log
            .lock()
            .unwrap()
            .push(format!("{}.finalize", self.name));
        if self.name == "ASubroutine" && !ctx.release_a.load(Ordering::SeqCst) {
            return Ok(Outcome::pending("waiting for the test to release A"));
        }
        Ok(Outcome::Ok)
    }
}

fn chain() -> Vec<Box<dyn Subroutine<Account, Ctx>>> {
    vec![
        Box::new(Step {
            name: "ASubroutine",
            finalizer: Some("a.lifecycle.test/finalizer"),
        }),
        Box::new(Step {
            name: "BSubroutine",
            finalizer: None,
        }),
        Box::new(Step {
            name: "CSubroutine",
            finalizer: Some("c.lifecycle.test/finalizer"),
        }),
    ]
}

fn condition<'a>(account: &'a Account, type_: &str) -> &'a Condition {
    let status = account.status.as_ref().expect("a status");
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} in {:#?}", status.conditions))
}

#[tokio::test]
async fn engine_on_real_kcp() {
    let kcp = harness::Kcp::shared().await;
    let ws = kcp.private_workspace("lifecycle").await;
    harness::CoreExport::shared(kcp).await.bind(&ws).await;
    let accounts: Api<Account> = Api::all(ws.client());
    let lifecycle = Lifecycle::new("lifecycle-test", chain());
    let ctx = Ctx::default();

    let spec = AccountSpec {
        type_: "account".to_owned(),
        display_name: "Acme".to_owned(),
        ..AccountSpec::default()
    };
    // The APIBinding is Ready, but kcp may need a moment before it serves the kind.
    let created = tokio::time::timeout(PATIENCE, async {
        loop {
            match accounts
                .create(&PostParams::default(), &Account::new("acme", spec.clone()))
                .await
            {
                Ok(account) => break account,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("creating the account: {e}"),
            }
        }
    })
    .await
    .unwrap();

    // 1. Finalizers, then conditions through the status subresource.
    let r = lifecycle
        .reconcile(&accounts, Arc::new(created.clone()), &ctx)
        .await
        .unwrap();
    assert!(
        r.finalizers_patched && r.status_written && r.completed,
        "{r:?}"
    );
    assert_eq!(
        ctx.take(),
        [
            "ASubroutine.process",
            "BSubroutine.process",
            "CSubroutine.process"
        ]
    );
    let account = accounts.get("acme").await.unwrap();
    assert_eq!(
        account.finalizers(),
        ["a.lifecycle.test/finalizer", "c.lifecycle.test/finalizer"]
    );
    let generation = account.metadata.generation;
    assert!(generation.is_some());
    for type_ in ["ASubroutine", "BSubroutine", "CSubroutine", "Ready"] {
        let c = condition(&account, type_);
        assert_eq!((&*c.status, &*c.reason), ("True", "Complete"), "{type_}");
        assert_eq!(c.observed_generation, generation, "{type_}");
    }
    assert_eq!(
        account.status.as_ref().unwrap().observed_generation,
        generation
    );

    // 2. Nothing changed: no write (the resourceVersion stays).
    let r = lifecycle
        .reconcile(&accounts, Arc::new(account.clone()), &ctx)
        .await
        .unwrap();
    assert!(
        !r.finalizers_patched && !r.status_written && r.completed,
        "{r:?}"
    );
    ctx.take();
    let again = accounts.get("acme").await.unwrap();
    assert_eq!(again.resource_version(), account.resource_version());

    // 3. A stale object is refused by the resourceVersion precondition: quick requeue.
    let patch = serde_json::json!({"spec": {"displayName": "Acme Inc."}});
    let changed = accounts
        .patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_ne!(changed.metadata.generation, generation);
    // The object as first created (no finalizers, old resourceVersion): adding the finalizers
    // again is refused.
    let r = lifecycle
        .reconcile(&accounts, Arc::new(created), &ctx)
        .await
        .unwrap();
    assert!(r.conflict && !r.status_written, "{r:?}");
    assert!(ctx.take().is_empty(), "nothing runs after a conflict");
    assert_eq!(r.requeue_after, Some(lifecycle::CONFLICT_REQUEUE));
    let r = lifecycle
        .reconcile(&accounts, Arc::new(changed.clone()), &ctx)
        .await
        .unwrap();
    assert!(r.status_written, "{r:?}");
    ctx.take();
    let account = accounts.get("acme").await.unwrap();
    assert_eq!(
        account.status.as_ref().unwrap().observed_generation,
        changed.metadata.generation
    );
    assert_eq!(
        condition(&account, "Ready").observed_generation,
        changed.metadata.generation
    );

    // 4. Deletion: finalize in reverse; A holds on, so only C's finalizer goes.
    accounts
        .delete("acme", &DeleteParams::default())
        .await
        .unwrap();
    let deleting = accounts.get("acme").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    let r = lifecycle
        .reconcile(&accounts, Arc::new(deleting), &ctx)
        .await
        .unwrap();
    assert!(
        !r.completed && r.finalizers_patched && r.status_written,
        "{r:?}"
    );
    assert_eq!(ctx.take(), ["CSubroutine.finalize", "ASubroutine.finalize"]);
    let deleting = accounts.get("acme").await.unwrap();
    assert_eq!(deleting.finalizers(), ["a.lifecycle.test/finalizer"]);
    assert_eq!(
        condition(&deleting, "CSubroutineFinalize").reason,
        "Complete"
    );
    let a = condition(&deleting, "ASubroutineFinalize");
    assert_eq!((&*a.status, &*a.reason), ("Unknown", "Pending"));
    assert_eq!(a.message, "waiting for the test to release A");

    // A is done: the last finalizer goes and the object disappears.
    ctx.release_a.store(true, Ordering::SeqCst);
    let r = lifecycle
        .reconcile(&accounts, Arc::new(deleting), &ctx)
        .await
        .unwrap();
    assert!(
        r.completed && r.finalizers_patched && !r.status_written,
        "{r:?}"
    );
    assert_eq!(ctx.take(), ["ASubroutine.finalize"]);
    assert!(accounts.get_opt("acme").await.unwrap().is_none());
}

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
    use lifecycle::leader::Attempt;

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
