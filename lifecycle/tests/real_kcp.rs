//! The engine against a real kcp (started by the harness).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::{Account, AccountSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use lifecycle::{Lifecycle, Outcome, Subroutine, SubroutineError, async_trait};

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
    harness::PlatformExport::core(kcp).await.bind(&ws).await;
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
