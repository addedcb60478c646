//! Store and authorization-model helpers.
//!
//! * [`find_store`] / [`find_or_create_store`]: look a store up by name over
//!   **every** page of `ListStores` (with the server-side name filter, and an
//!   exact-name check on our side). OpenFGA does not keep names unique, so when
//!   several stores share the name the choice is deterministic: the **oldest
//!   `created_at`, then the smallest id** ([`choose_store`]). Every caller, and
//!   every replica, therefore settles on the same store, including after two
//!   creators raced and made two.
//! * [`delete_store`] deletes a store; one already gone is not an error.
//! * [`latest_model`] reads the newest model (there is no dedicated endpoint:
//!   `ReadAuthorizationModels` with page size 1, which lists newest first).
//! * [`write_model_if_changed`] writes a model only when it differs
//!   semantically ([`crate::diff`]) from the latest one.
//!
//! Models cross between [`crate::model::AuthorizationModel`] and the
//! `openfga-client` proto type through their serde JSON forms ([`to_proto_model`],
//! [`from_proto_model`]).

use openfga_client::client::{
    AuthorizationModel as ProtoModel, CreateStoreRequest, DeleteStoreRequest, ListStoresRequest,
    ReadAuthorizationModelsRequest, Store, WriteAuthorizationModelRequest,
};

use crate::api::{FgaApi, RetryPolicy, retrying};
use crate::diff::first_difference;
use crate::error::FgaError;
use crate::model::AuthorizationModel;

/// The largest `ListStores` page the server accepts.
pub const MAX_LIST_STORES_PAGE_SIZE: i32 = 100;

/// Tuning of the store and model helpers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// `ListStores` page size (1..=100).
    pub list_page_size: i32,
    /// Retries of transient errors for reads (`ListStores`, `ReadAuthorizationModels`)
    /// and model writes. `CreateStore` is never retried blindly (see [`find_or_create_store`]).
    pub retry: RetryPolicy,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            list_page_size: MAX_LIST_STORES_PAGE_SIZE,
            retry: RetryPolicy::default(),
        }
    }
}

/// The store chosen among several with the same name: oldest `created_at`
/// (a store without one counts as newest), then smallest id. Stores with
/// another name are ignored.
pub fn choose_store(stores: impl IntoIterator<Item = Store>, name: &str) -> Option<Store> {
    stores
        .into_iter()
        .filter(|store| store.name == name)
        .min_by(|a, b| order_key(a).cmp(&order_key(b)))
}

fn order_key(store: &Store) -> (bool, i64, i32, &str) {
    match &store.created_at {
        Some(t) => (false, t.seconds, t.nanos, &store.id),
        None => (true, 0, 0, &store.id),
    }
}

/// Every store named exactly `name`, over all pages.
///
/// # Errors
/// [`FgaError::ListStores`] when a page cannot be listed.
pub async fn list_stores_named<C: FgaApi>(
    client: &mut C,
    name: &str,
    options: &StoreOptions,
) -> Result<Vec<Store>, FgaError> {
    let mut stores = Vec::new();
    let mut continuation_token = String::new();
    loop {
        let request = ListStoresRequest {
            page_size: Some(options.list_page_size.clamp(1, MAX_LIST_STORES_PAGE_SIZE)),
            continuation_token: continuation_token.clone(),
            name: name.to_owned(),
        };
        let response = retrying!(
            &options.retry,
            &mut 0,
            format_args!("listing stores named {name:?}"),
            client.list_stores(request.clone())
        )
        .map_err(|status| FgaError::ListStores {
            name: name.to_owned(),
            source: Box::new(status),
        })?;
        stores.extend(response.stores.into_iter().filter(|s| s.name == name));
        if response.continuation_token.is_empty() {
            return Ok(stores);
        }
        continuation_token = response.continuation_token;
    }
}

/// The store named `name` ([`choose_store`] among duplicates), or `None`.
///
/// # Errors
/// [`FgaError::ListStores`] when a page cannot be listed.
pub async fn find_store<C: FgaApi>(
    client: &mut C,
    name: &str,
    options: &StoreOptions,
) -> Result<Option<Store>, FgaError> {
    let stores = list_stores_named(client, name, options).await?;
    Ok(choose_store(stores, name))
}

/// The result of [`find_or_create_store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundStore {
    /// The chosen store.
    pub store: Store,
    /// True when this call created it.
    pub created: bool,
}

/// The store named `name`, created when there is none.
///
/// After creating, the lookup runs again and returns the deterministic choice,
/// so two callers that raced converge on one store (the other stays unused).
/// `CreateStore` is not retried: after an ambiguous failure, calling this
/// again is the retry.
///
/// # Errors
/// [`FgaError::ListStores`] or [`FgaError::CreateStore`].
pub async fn find_or_create_store<C: FgaApi>(
    client: &mut C,
    name: &str,
    options: &StoreOptions,
) -> Result<FoundStore, FgaError> {
    if let Some(store) = find_store(client, name, options).await? {
        return Ok(FoundStore {
            store,
            created: false,
        });
    }
    let created = client
        .create_store(CreateStoreRequest {
            name: name.to_owned(),
        })
        .await
        .map_err(|status| FgaError::CreateStore {
            name: name.to_owned(),
            source: Box::new(status),
        })?;
    tracing::info!(name, id = created.id, "created OpenFGA store");
    let created_store = Store {
        id: created.id,
        name: created.name,
        created_at: created.created_at,
        updated_at: created.updated_at,
        deleted_at: None,
    };
    let chosen = find_store(client, name, options)
        .await?
        .unwrap_or_else(|| created_store.clone());
    Ok(FoundStore {
        created: chosen.id == created_store.id,
        store: chosen,
    })
}

/// Deletes the store `store_id`; a store that is already gone counts as deleted.
///
/// # Errors
/// [`FgaError::DeleteStore`].
pub async fn delete_store<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    options: &StoreOptions,
) -> Result<(), FgaError> {
    let request = DeleteStoreRequest {
        store_id: store_id.to_owned(),
    };
    match retrying!(
        &options.retry,
        &mut 0,
        format_args!("deleting store {store_id}"),
        client.delete_store(request.clone())
    ) {
        Ok(()) => Ok(()),
        // OpenFGA answers a missing store with `store_id_not_found`, as NotFound.
        Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
        Err(status) => Err(FgaError::DeleteStore {
            store_id: store_id.to_owned(),
            source: Box::new(status),
        }),
    }
}

/// A model as stored: its id and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredModel {
    /// The authorization model id.
    pub id: String,
    /// The model.
    pub model: AuthorizationModel,
}

/// This crate's model as the proto type (its `id` empty).
///
/// # Errors
/// A serde error if the JSON forms disagree.
pub fn to_proto_model(model: &AuthorizationModel) -> Result<ProtoModel, serde_json::Error> {
    serde_json::to_value(model).and_then(serde_json::from_value)
}

/// The proto type as this crate's model (the id is dropped).
///
/// # Errors
/// A serde error if the JSON forms disagree.
pub fn from_proto_model(model: &ProtoModel) -> Result<AuthorizationModel, serde_json::Error> {
    let mut value = serde_json::to_value(model)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("id");
    }
    serde_json::from_value(value)
}

/// The newest model of the store, or `None` when it has none.
///
/// # Errors
/// [`FgaError::ReadModels`], or [`FgaError::ModelConversion`].
pub async fn latest_model<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    options: &StoreOptions,
) -> Result<Option<StoredModel>, FgaError> {
    let request = ReadAuthorizationModelsRequest {
        store_id: store_id.to_owned(),
        page_size: Some(1),
        continuation_token: String::new(),
    };
    let response = retrying!(
        &options.retry,
        &mut 0,
        format_args!("reading models of store {store_id}"),
        client.read_authorization_models(request.clone())
    )
    .map_err(|status| FgaError::ReadModels {
        store_id: store_id.to_owned(),
        source: Box::new(status),
    })?;
    let Some(latest) = response.authorization_models.into_iter().next() else {
        return Ok(None);
    };
    let model = from_proto_model(&latest).map_err(|source| FgaError::ModelConversion {
        store_id: store_id.to_owned(),
        direction: "from the proto type",
        source,
    })?;
    Ok(Some(StoredModel {
        id: latest.id,
        model,
    }))
}

/// Writes `model` unconditionally; returns the new model id.
///
/// # Errors
/// [`FgaError::ModelConversion`] or [`FgaError::WriteModel`] (e.g. an invalid model).
pub async fn write_model<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    model: &AuthorizationModel,
    options: &StoreOptions,
) -> Result<String, FgaError> {
    let proto = to_proto_model(model).map_err(|source| FgaError::ModelConversion {
        store_id: store_id.to_owned(),
        direction: "to the proto type",
        source,
    })?;
    let request = WriteAuthorizationModelRequest {
        store_id: store_id.to_owned(),
        type_definitions: proto.type_definitions,
        schema_version: proto.schema_version,
        conditions: proto.conditions,
    };
    let response = retrying!(
        &options.retry,
        &mut 0,
        format_args!("writing a model to store {store_id}"),
        client.write_authorization_model(request.clone())
    )
    .map_err(|status| FgaError::WriteModel {
        store_id: store_id.to_owned(),
        source: Box::new(status),
    })?;
    Ok(response.authorization_model_id)
}

/// The result of [`write_model_if_changed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelWrite {
    /// The id of the model now in force: the new one, or the unchanged latest.
    pub id: String,
    /// True when a new model was written.
    pub written: bool,
    /// Why it was written: the first semantic difference from the latest model,
    /// or that the store had no model. `None` when nothing was written.
    pub reason: Option<String>,
}

/// Writes `model` only when it differs semantically from the store's latest model.
///
/// # Errors
/// See [`latest_model`] and [`write_model`].
pub async fn write_model_if_changed<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    model: &AuthorizationModel,
    options: &StoreOptions,
) -> Result<ModelWrite, FgaError> {
    let reason = match latest_model(client, store_id, options).await? {
        None => "the store has no model".to_owned(),
        Some(latest) => match first_difference(&latest.model, model) {
            None => {
                return Ok(ModelWrite {
                    id: latest.id,
                    written: false,
                    reason: None,
                });
            }
            Some(difference) => difference,
        },
    };
    let id = write_model(client, store_id, model, options).await?;
    tracing::info!(store_id, id, reason, "wrote OpenFGA authorization model");
    Ok(ModelWrite {
        id,
        written: true,
        reason: Some(reason),
    })
}

#[cfg(test)]
mod tests {
    use openfga_client::prost_wkt_types::Timestamp;

    use super::*;

    fn store(id: &str, name: &str, created: Option<(i64, i32)>) -> Store {
        Store {
            id: id.into(),
            name: name.into(),
            created_at: created.map(|(seconds, nanos)| Timestamp { seconds, nanos }),
            ..Store::default()
        }
    }

    #[test]
    fn the_oldest_store_then_the_smallest_id_wins() {
        let stores = vec![
            store("01C", "acme", Some((10, 5))),
            store("01B", "acme", Some((10, 1))),
            store("01A", "acme", Some((10, 1))),
            store("00Z", "other", Some((1, 0))),
            store("000", "acme", None),
        ];
        assert_eq!(choose_store(stores.clone(), "acme").unwrap().id, "01A");
        let mut reversed = stores;
        reversed.reverse();
        assert_eq!(choose_store(reversed, "acme").unwrap().id, "01A");
        assert_eq!(
            choose_store(vec![store("000", "acme", None)], "acme")
                .unwrap()
                .id,
            "000"
        );
        assert!(choose_store(vec![], "acme").is_none());
    }

    #[test]
    fn models_round_trip_through_the_proto_type() {
        let model = crate::dsl::parse_model(
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define owner: [user]\n    define viewer: [user, user:*] or owner\n",
        )
        .unwrap();
        let proto = to_proto_model(&model).unwrap();
        assert_eq!(proto.type_definitions.len(), 2);
        let back = from_proto_model(&proto).unwrap();
        assert!(crate::diff::semantically_equal(&model, &back));
    }
}
