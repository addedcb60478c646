//! The Store controller: a Store in `root:orgs` becomes an OpenFGA store (found or created by
//! name over every page), its model (composed from the core module, the AuthorizationModels
//! that extend the store and the built-in API modules, written only when its meaning
//! changed) and its spec tuples.
//!
//! Stores anywhere else, in a tenant's workspace for one, have no effect: they could
//! otherwise adopt an organisation's store by name and write tuples into it (upstream #47).
//! A module that does not compose is left out and named in `status.rejectedModules`; the
//! store keeps working with the rest (upstream #51 froze the whole org's model).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use crds::Store;
use crds::authorization_model::AuthorizationModel;
use crds::store::{ORGS_STORE_NAME, RejectedModule, STORE_FINALIZER};
use fga::compose::{ModuleError, ModuleFile, compose};
use fga::model::AuthorizationModel as Model;
use fga::platform_mesh::builtin_modules;
use fga::store::{
    StoreOptions, delete_store, find_or_create_store, list_stores_named, write_model_if_changed,
};
use kcp::runtime::ObjectKey;
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use kube::api::Patch;
use lifecycle::{Outcome, Subroutine, SubroutineError};
use serde_json::json;

use super::tuples::{TupleHolder, TupleSubroutine};
use super::{Ctx, Settings, fga_failure, merge_params, new_controller};

/// The controller's name, as upstream.
pub const STORE_RECONCILER: &str = "store";

/// The file name of the core module in the composed model.
const CORE_FILE: &str = "core.fga";

/// The longest core module accepted, in bytes: OpenFGA's default limit on a model's encoded
/// size (`--max-authorization-model-size-in-bytes`). A model's encoding is about as long as
/// its DSL text or longer, so OpenFGA would refuse a longer module anyway; it is refused
/// before composing, whose work grows with the text.
const MAX_CORE_MODULE_BYTES: usize = 256 * 1024;

/// The most problems a message lists; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 10;

/// The most bytes of problems a message holds before it is cut.
const MAX_PROBLEMS_BYTES: usize = 8 * 1024;

/// `problems` joined by "; ": at most [`MAX_LISTED_PROBLEMS`] of them in at most
/// [`MAX_PROBLEMS_BYTES`], then how many more there are. A condition repeats its message in
/// `Ready`, and thousands of problems would make the status larger than the API server stores.
fn summarize(problems: &[String]) -> String {
    let listed = problems.len().min(MAX_LISTED_PROBLEMS);
    let mut text = problems[..listed].join("; ");
    if text.len() > MAX_PROBLEMS_BYTES {
        let cut = (0..=MAX_PROBLEMS_BYTES)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    if problems.len() > listed {
        text.push_str(&format!("; and {} more", problems.len() - listed));
    }
    text
}

/// Builds the Store controller.
pub fn store_controller(setup: &Setup, settings: Arc<Settings>) -> LifecycleController<Store, Ctx> {
    new_controller(
        STORE_RECONCILER,
        setup,
        vec![
            Box::new(StoreSubroutine),
            Box::new(ModelSubroutine),
            Box::new(TupleSubroutine),
        ],
        settings,
    )
    // A module added, changed or removed changes the model of the Stores of its name.
    .watches::<AuthorizationModel>(|model, _, stores| {
        stores
            .keys()
            .into_iter()
            .filter(|key| key.name == model.spec.store_ref.name)
            .collect::<Vec<ObjectKey>>()
    })
}

#[async_trait]
impl TupleHolder for Store {
    fn desired(&self) -> Vec<crds::Tuple> {
        self.spec.tuples.clone().unwrap_or_default()
    }

    fn managed(&self) -> Vec<crds::Tuple> {
        self.status
            .as_ref()
            .map(|s| s.managed_tuples.clone())
            .unwrap_or_default()
    }

    async fn store_id(&self, _: &Ctx) -> Result<Option<String>, SubroutineError> {
        Ok(store_id(self))
    }
}

fn store_id(store: &Store) -> Option<String> {
    store
        .status
        .as_ref()
        .and_then(|s| s.store_id.clone())
        .filter(|id| !id.is_empty())
}

/// Refuses a Store outside `root:orgs`, with a condition that says why.
async fn in_orgs_workspace(store: &Store, ctx: &Ctx) -> Result<(), SubroutineError> {
    let orgs = ctx.settings.orgs_cluster().await?;
    if ctx.cluster() == orgs {
        return Ok(());
    }
    Err(SubroutineError::permanent(
        "NotInOrgsWorkspace",
        format!(
            "Stores take effect only in {} (cluster {orgs}); this one is in cluster {}, so no \
             OpenFGA store was created, adopted or changed for {:?}",
            ctx.settings.orgs_path,
            ctx.cluster(),
            store.name_any()
        ),
    ))
}

/// Finds or creates the OpenFGA store (condition `StoreSubroutine`).
#[derive(Debug)]
struct StoreSubroutine;

#[async_trait]
impl Subroutine<Store, Ctx> for StoreSubroutine {
    fn name(&self) -> &str {
        "StoreSubroutine"
    }

    fn finalizers(&self, _: &Store) -> Vec<String> {
        vec![STORE_FINALIZER.to_owned()]
    }

    async fn process(&self, store: &Store, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        in_orgs_workspace(store, ctx).await?;
        let name = store.name_any();
        let found = find_or_create_store(&mut ctx.fga(), &name, &StoreOptions::default())
            .await
            .map_err(|e| fga_failure(format!("finding or creating OpenFGA store {name:?}"), e))?;
        if store_id(store).as_deref() != Some(found.store.id.as_str()) {
            let patch = json!({ "status": { "storeId": found.store.id } });
            ctx.runtime
                .api::<Store>()
                .map_err(|e| SubroutineError::transient_from("client", e))?
                .patch_status(&name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| SubroutineError::kube("recording the store id", e))?;
            // The steps after this one read the id from the object this pass began with: they
            // go on when the watch shows the new one. Going on now would write the model to
            // the old id, which OpenFGA accepts even for a store that is gone.
            return Ok(Outcome::pending(format!(
                "recorded OpenFGA store {}; its model and tuples follow",
                found.store.id
            )));
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, store: &Store, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if store_id(store).is_none() {
            // Never created (or a Store outside root:orgs): nothing of ours exists.
            return Ok(Outcome::Ok);
        }
        let name = store.name_any();
        let extending = extending_models(&name, ctx).await?;
        if !extending.is_empty() {
            // The controller watches AuthorizationModels: each one's deletion brings it back.
            return Ok(Outcome::pending(format!(
                "waiting for the AuthorizationModels that extend this store to be deleted: {}",
                extending.join(", ")
            )));
        }
        // Every store of the name, not only ours: a leftover (two creators raced) would
        // otherwise be adopted by an organisation re-created under this name, with the old
        // members' tuples in it (upstream #214).
        let options = StoreOptions::default();
        let mut fga = ctx.fga();
        let stores = list_stores_named(&mut fga, &name, &options)
            .await
            .map_err(|e| fga_failure("listing stores", e))?;
        for id in stores.iter().map(|s| s.id.clone()).chain(store_id(store)) {
            delete_store(&mut fga, &id, &options)
                .await
                .map_err(|e| fga_failure(format!("deleting OpenFGA store {id}"), e))?;
        }
        Ok(Outcome::Ok)
    }
}

/// The trusted AuthorizationModels of store `name`, as `cluster/name`.
async fn extending_models(name: &str, ctx: &Ctx) -> Result<Vec<String>, SubroutineError> {
    Ok(trusted_models(name, ctx)
        .await?
        .into_iter()
        .map(|(cluster, model)| format!("{cluster}/{}", model.name_any()))
        .collect())
}

/// The AuthorizationModels that reference Store `name` in `root:orgs` and live outside tenant
/// workspaces, oldest first (see [`model_order`]).
///
/// The Store controller reads them, and their workspaces' paths, from its watches: with one
/// shard down, the Stores on the others still compose (with that shard's modules as last
/// seen). The terminator, which does not watch them, lists them on every shard, and waits
/// for all of them.
pub(super) async fn trusted_models(
    name: &str,
    ctx: &Ctx,
) -> Result<Vec<(String, AuthorizationModel)>, SubroutineError> {
    let settings = &ctx.settings;
    let clusters = ctx.runtime.clusters();
    let orgs_cluster = match clusters.cluster_for_path(&settings.orgs_path) {
        Some(cluster) => cluster.to_string(),
        None => settings.orgs_cluster().await?,
    };
    let models = match ctx.runtime.cached_everywhere::<AuthorizationModel>() {
        Some(cached) => cached
            .into_iter()
            .map(|(key, model)| (key.cluster.to_string(), (*model).clone()))
            .collect(),
        None => settings.list_core::<AuthorizationModel>().await?,
    };
    let mut trusted = Vec::new();
    for (cluster, model) in models {
        if !references(&model, name, settings.orgs_path.as_str(), &orgs_cluster) {
            continue;
        }
        let known = cluster.parse().ok().and_then(|c| clusters.path_of(&c));
        let path = match known {
            Some(path) => path.to_string(),
            None => settings.path_of(&cluster).await?,
        };
        if settings.is_tenant_path(&path) {
            continue;
        }
        trusted.push((cluster, model));
    }
    trusted.sort_by_key(|(cluster, model)| model_order(cluster, model));
    Ok(trusted)
}

/// The order modules compose in: the first to claim a type keeps it, so the oldest module
/// wins a clash and a newcomer that clashes is the one left out; cluster and name break ties,
/// so the same inputs always give the same model.
pub(super) fn model_order(
    cluster: &str,
    model: &AuthorizationModel,
) -> (Option<k8s_openapi::jiff::Timestamp>, String, String) {
    (
        model.metadata.creation_timestamp.as_ref().map(|t| t.0),
        cluster.to_owned(),
        model.name_any(),
    )
}

/// Whether `model` extends Store `name` in `root:orgs` (given by path or cluster name; the
/// deprecated `path` is read when `cluster` is empty).
pub(super) fn references(
    model: &AuthorizationModel,
    name: &str,
    orgs_path: &str,
    orgs_cluster: &str,
) -> bool {
    let reference = &model.spec.store_ref;
    let cluster = if reference.cluster.is_empty() {
        reference.path.as_deref().unwrap_or_default()
    } else {
        reference.cluster.as_str()
    };
    reference.name == name && (cluster == orgs_path || cluster == orgs_cluster)
}

/// The composed model of a store, and the modules left out.
#[derive(Debug)]
pub(super) struct Composition {
    pub model: Model,
    /// Problems of the core module (or a built-in one): the store's own spec is wrong.
    pub core_errors: Vec<String>,
    pub rejected: Vec<RejectedModule>,
}

/// What is wrong with a core module, composed as an organisation's store would compose it
/// (with the built-in API modules it references); `None` when nothing.
pub fn core_module_problems(core_module: &str) -> Option<String> {
    let composition = compose_store("", core_module, &[]);
    (!composition.core_errors.is_empty()).then(|| summarize(&composition.core_errors))
}

/// The file name of an AuthorizationModel's module.
fn model_file(cluster: &str, name: &str) -> String {
    format!("authorizationmodel-{cluster}-{name}.fga")
}

/// Composes a store's model: the core module, the built-in API modules (not for the `orgs`
/// store, which models only `root:orgs` itself), then each AuthorizationModel, sorted so the
/// same inputs give the same model. The first module to claim a type keeps it, so the
/// platform's own come first: a module that clashes with them is the one left out.
pub(super) fn compose_store(
    store_name: &str,
    core_module: &str,
    models: &[(String, AuthorizationModel)],
) -> Composition {
    if core_module.len() > MAX_CORE_MODULE_BYTES {
        return Composition {
            model: Model::default(),
            core_errors: vec![format!(
                "{CORE_FILE} is {} bytes long; at most {MAX_CORE_MODULE_BYTES} are accepted \
                 (OpenFGA's limit on the size of a model)",
                core_module.len()
            )],
            rejected: Vec::new(),
        };
    }
    let mut files = vec![ModuleFile::new(CORE_FILE, core_module)];
    let mut core_errors = Vec::new();
    if store_name != ORGS_STORE_NAME {
        for module in builtin_modules() {
            match module.to_file(&module.name) {
                Ok(file) => files.push(file),
                Err(e) => core_errors.push(format!("built-in module {}: {e}", module.name)),
            }
        }
    }
    let mut owners = BTreeMap::new();
    for (cluster, model) in models {
        let file = model_file(cluster, &model.name_any());
        owners.insert(file.clone(), (cluster.clone(), model.name_any()));
        files.push(ModuleFile::new(file, model.spec.model.as_str()));
    }
    let (model, errors) = compose(&files);
    let mut by_model: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for error in errors {
        match owners.get(&error.file) {
            Some(owner) => by_model
                .entry(owner.clone())
                .or_default()
                .push(describe(&error)),
            None => core_errors.push(error.to_string()),
        }
    }
    // A broken core module breaks every module that extends it; name only the cause.
    if core_errors.iter().any(|e| e.starts_with(CORE_FILE)) {
        core_errors.retain(|e| e.starts_with(CORE_FILE));
    }
    let rejected = by_model
        .into_iter()
        .map(|((cluster, name), problems)| RejectedModule {
            cluster,
            name,
            message: summarize(&problems),
        })
        .collect();
    Composition {
        model,
        core_errors,
        rejected,
    }
}

/// A module's problem without its file name (the AuthorizationModel is named beside it).
fn describe(error: &ModuleError) -> String {
    match &error.module {
        Some(module) => format!("module {module}: {}", error.kind),
        None => error.kind.to_string(),
    }
}

/// Writes the composed model (condition `AuthorizationModelSubroutine`).
#[derive(Debug)]
struct ModelSubroutine;

#[async_trait]
impl Subroutine<Store, Ctx> for ModelSubroutine {
    fn name(&self) -> &str {
        "AuthorizationModelSubroutine"
    }

    async fn process(&self, store: &Store, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let Some(store_id) = store_id(store) else {
            return Ok(Outcome::pending(
                "waiting for the OpenFGA store id to be recorded",
            ));
        };
        let name = store.name_any();
        let models = trusted_models(&name, ctx).await?;
        let composition = compose_store(&name, &store.spec.core_module, &models);
        if !composition.core_errors.is_empty() {
            return Err(SubroutineError::permanent(
                "InvalidCoreModule",
                format!(
                    "spec.coreModule does not compose: {}",
                    summarize(&composition.core_errors)
                ),
            ));
        }
        let written = write_model_if_changed(
            &mut ctx.fga(),
            &store_id,
            &composition.model,
            &StoreOptions::default(),
        )
        .await
        .map_err(|e| fga_failure("writing the authorization model", e))?;
        let status = store.status.clone().unwrap_or_default();
        if status.authorization_model_id.as_deref() != Some(written.id.as_str())
            || status.rejected_modules != composition.rejected
        {
            let patch = json!({ "status": {
                "authorizationModelId": written.id,
                "rejectedModules": composition.rejected,
            }});
            ctx.runtime
                .api::<Store>()
                .map_err(|e| SubroutineError::transient_from("client", e))?
                .patch_status(&name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| SubroutineError::kube("recording the model id", e))?;
        }
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::authorization_model::{AuthorizationModelSpec, StoreRef};

    fn model(name: &str, store: &str, cluster: &str, text: &str) -> AuthorizationModel {
        AuthorizationModel::new(
            name,
            AuthorizationModelSpec {
                store_ref: StoreRef {
                    name: store.into(),
                    cluster: cluster.into(),
                    path: None,
                },
                model: text.into(),
                tuples: None,
            },
        )
    }

    fn core() -> String {
        fga::platform_mesh::core_module(fga::platform_mesh::CoreModuleVariant::HelmChart)
            .to_dsl()
            .unwrap()
    }

    #[test]
    fn a_reference_names_the_store_and_root_orgs_by_path_or_cluster() {
        let by_path = model("m", "acme", "root:orgs", "");
        assert!(references(&by_path, "acme", "root:orgs", "c0"));
        assert!(!references(&by_path, "globex", "root:orgs", "c0"));
        let by_cluster = model("m", "acme", "c0", "");
        assert!(references(&by_cluster, "acme", "root:orgs", "c0"));
        let elsewhere = model("m", "acme", "root:orgs:acme", "");
        assert!(!references(&elsewhere, "acme", "root:orgs", "c0"));
        let mut deprecated = model("m", "acme", "", "");
        deprecated.spec.store_ref.path = Some("root:orgs".into());
        assert!(references(&deprecated, "acme", "root:orgs", "c0"));
    }

    #[test]
    fn a_bad_module_is_left_out_and_named_while_the_rest_composes() {
        let good = model(
            "widgets-acme",
            "acme",
            "root:orgs",
            "module widgets\n\ntype example_io_widget\n  relations\n    define parent: [core_platform-mesh_io_account]\n",
        );
        let clash = model(
            "clash-acme",
            "acme",
            "root:orgs",
            "module clash\n\ntype core_namespace\n",
        );
        let composition = compose_store(
            "acme",
            &core(),
            &[("p1".into(), clash), ("p2".into(), good)],
        );
        assert!(
            composition.core_errors.is_empty(),
            "{:?}",
            composition.core_errors
        );
        assert_eq!(composition.rejected.len(), 1);
        let rejected = &composition.rejected[0];
        assert_eq!(
            (rejected.cluster.as_str(), rejected.name.as_str()),
            ("p1", "clash-acme")
        );
        assert!(
            rejected.message.contains("core_namespace"),
            "{}",
            rejected.message
        );
        let types: Vec<&str> = composition
            .model
            .type_definitions
            .iter()
            .map(|t| t.type_name.as_str())
            .collect();
        assert!(types.contains(&"example_io_widget"));
        assert!(types.contains(&"core_namespace"));
    }

    #[test]
    fn a_broken_core_module_is_the_stores_own_error() {
        let composition = compose_store("acme", "module core\n\ntype", &[]);
        assert_eq!(composition.core_errors.len(), 1);
        assert!(composition.core_errors[0].contains(CORE_FILE));
    }

    #[test]
    fn the_built_in_core_module_is_checked_with_the_built_in_api_modules() {
        assert_eq!(core_module_problems(&core()), None);
        let problems = core_module_problems(
            "module core\n\ntype user\n  relations\n    define owner: [nobody]\n",
        )
        .unwrap();
        assert!(problems.contains("nobody"), "{problems}");
    }

    #[test]
    fn a_core_module_over_openfgas_size_limit_is_refused_before_composing() {
        let huge = format!("{}\n# {}\n", core(), "x".repeat(MAX_CORE_MODULE_BYTES));
        assert_eq!(
            core_module_problems(&huge).unwrap(),
            format!(
                "core.fga is {} bytes long; at most 262144 are accepted (OpenFGA's limit on the \
                 size of a model)",
                huge.len()
            )
        );
    }

    #[test]
    fn a_message_lists_ten_problems_and_counts_the_rest() {
        let problems: Vec<String> = (0..2_500).map(|i| format!("problem {i}")).collect();
        let listed: Vec<String> = (0..10).map(|i| format!("problem {i}")).collect();
        assert_eq!(
            summarize(&problems),
            format!("{}; and 2490 more", listed.join("; "))
        );
        assert_eq!(summarize(&problems[..2]), "problem 0; problem 1");
        let long = vec!["é".repeat(MAX_PROBLEMS_BYTES)];
        let cut = summarize(&long);
        assert_eq!(cut.len(), MAX_PROBLEMS_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_orgs_store_gets_no_builtin_modules() {
        let orgs = fga::platform_mesh::orgs_module().to_dsl().unwrap();
        let composition = compose_store(ORGS_STORE_NAME, &orgs, &[]);
        assert!(composition.core_errors.is_empty());
        assert_eq!(composition.model.type_definitions.len(), 3);
    }
}
