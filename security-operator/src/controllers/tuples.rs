//! The tuple subroutine the Store and the AuthorizationModel share: keep `spec.tuples`
//! written, delete what left the spec, remember what was written in `status.managedTuples`.

use async_trait::async_trait;
use crds::store::TUPLES_FINALIZER;
use fga::sync::TupleDiff;
use kit::controller::Object;
use kube::ResourceExt;
use kube::api::Patch;
use lifecycle::{Outcome, Subroutine, SubroutineError};
use serde_json::json;

use super::{Ctx, FgaOperation, merge_params, to_crd, to_fga};

/// The most bytes `spec.tuples` may take as JSON. `status.managedTuples` records the same
/// tuples again, and the object holding both must stay under what the API server stores in
/// one object (kcp's embedded etcd takes at most 2 MiB in one request, etcd's default is
/// 1.5 MiB). Past that, the tuples would be written to OpenFGA but could not be recorded, and
/// a later change of the list could not find them to delete.
const MAX_TUPLES_BYTES: usize = 512 * 1024;

/// A kind whose spec lists tuples for one store.
#[async_trait]
pub(super) trait TupleHolder: Object {
    /// `spec.tuples`.
    fn desired(&self) -> Vec<crds::Tuple>;
    /// `status.managedTuples`.
    fn managed(&self) -> Vec<crds::Tuple>;
    /// The OpenFGA store the tuples go to, or `None` when it does not exist (any more).
    async fn store_id(&self, ctx: &Ctx) -> Result<Option<String>, SubroutineError>;
}

/// The desired set, deduplicated and sorted, as the fga crate's tuples.
pub(super) fn tuple_set(tuples: &[crds::Tuple]) -> Vec<fga::Tuple> {
    let mut set: Vec<fga::Tuple> = tuples.iter().map(to_fga).collect();
    set.sort();
    set.dedup();
    set
}

/// Keeps the spec's tuples written (condition `TupleSubroutine`).
#[derive(Debug)]
pub(super) struct TupleSubroutine;

#[async_trait]
impl<K: TupleHolder> Subroutine<K, Ctx> for TupleSubroutine {
    fn name(&self) -> &str {
        "TupleSubroutine"
    }

    fn finalizers(&self, _: &K) -> Vec<String> {
        vec![TUPLES_FINALIZER.to_owned()]
    }

    async fn process(&self, obj: &K, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let listed = obj.desired();
        let bytes = serde_json::to_vec(&listed).map_or(0, |json| json.len());
        if bytes > MAX_TUPLES_BYTES {
            return Err(SubroutineError::permanent(
                "TooManyTuples",
                format!(
                    "spec.tuples lists {} tuples in {bytes} bytes of JSON; at most \
                     {MAX_TUPLES_BYTES} bytes are accepted, because status.managedTuples records \
                     them again and the object would outgrow what the API server stores; no \
                     tuple was written or deleted",
                    listed.len()
                ),
            ));
        }
        let Some(store_id) = obj.store_id(ctx).await? else {
            return Ok(Outcome::pending(
                "waiting for the OpenFGA store to be created",
            ));
        };
        let desired = tuple_set(&listed);
        let managed = tuple_set(&obj.managed());
        // Every desired tuple is written again each pass (duplicates are ignored), so one
        // deleted behind our back comes back; only managed ones that left the spec go.
        let diff = TupleDiff {
            deletes: managed
                .iter()
                .filter(|t| !desired.contains(t))
                .cloned()
                .collect(),
            writes: desired.clone(),
        };
        ctx.change_tuples(&store_id, &diff, FgaOperation::Apply, "writing the tuples")
            .await?;
        if desired != managed {
            let tuples: Vec<crds::Tuple> = desired.iter().map(to_crd).collect();
            let patch = json!({ "status": { "managedTuples": tuples } });
            ctx.runtime
                .api::<K>()
                .map_err(|e| SubroutineError::transient_from("client", e))?
                .patch_status(&obj.name_any(), &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| SubroutineError::kube("recording the managed tuples", e))?;
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, obj: &K, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let managed = tuple_set(&obj.managed());
        if managed.is_empty() {
            return Ok(Outcome::Ok);
        }
        // A store that is gone took its tuples with it.
        let Some(store_id) = obj.store_id(ctx).await? else {
            return Ok(Outcome::Ok);
        };
        ctx.delete_tuples(&store_id, managed, "deleting the managed tuples")
            .await?;
        Ok(Outcome::Ok)
    }
}
