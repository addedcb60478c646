//! A small in-process fake API server for unit tests: one cluster-scoped kind, GET and JSON
//! merge PATCH (object and `status` subresource), `resourceVersion` preconditions, deletion
//! once a deleted object's finalizers are gone, injected conflicts, and a request log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The test kind.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "test.platform-mesh.io",
    version = "v1",
    kind = "Widget",
    status = "WidgetStatus",
    schema = "disabled"
)]
pub struct WidgetSpec {
    pub size: i32,
}

/// The test kind's status, shaped like every Platform Mesh status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

const PREFIX: &str = "/apis/test.platform-mesh.io/v1/widgets/";

#[derive(Debug, Default)]
pub struct Fake {
    objects: Mutex<HashMap<String, Value>>,
    requests: Mutex<Vec<String>>,
    conflicts: AtomicUsize,
    next_rv: AtomicUsize,
}

impl Fake {
    /// Starts the server; returns it with a client pointing at it.
    pub async fn start() -> (Arc<Fake>, kube::Client) {
        let fake = Arc::new(Fake::default());
        let app = Router::new().fallback(handle).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
        (fake, kube::Client::try_from(config).unwrap())
    }

    /// Stores `widget` (as a server would after a create) and returns it as stored.
    pub fn put(&self, mut widget: Value) -> Widget {
        let name = widget["metadata"]["name"].as_str().unwrap().to_owned();
        widget["apiVersion"] = "test.platform-mesh.io/v1".into();
        widget["kind"] = "Widget".into();
        widget["metadata"]["resourceVersion"] = self.rv().into();
        if widget["metadata"]["generation"].is_null() {
            widget["metadata"]["generation"] = 1.into();
        }
        self.objects.lock().unwrap().insert(name, widget.clone());
        serde_json::from_value(widget).unwrap()
    }

    /// The stored object.
    pub fn get(&self, name: &str) -> Option<Widget> {
        let objects = self.objects.lock().unwrap();
        objects
            .get(name)
            .map(|v| serde_json::from_value(v.clone()).unwrap())
    }

    /// Requests so far, as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.requests.lock().unwrap().clear();
    }

    /// Makes the next `n` PATCH requests fail with 409.
    pub fn inject_conflicts(&self, n: usize) {
        self.conflicts.store(n, Ordering::SeqCst);
    }

    fn rv(&self) -> String {
        (self.next_rv.fetch_add(1, Ordering::SeqCst) + 1).to_string()
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

async fn handle(State(fake): State<Arc<Fake>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    fake.requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}"));
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("no route {path}"),
        );
    };
    let (name, subresource) = match rest.split_once('/') {
        Some((name, sub)) => (name.to_owned(), Some(sub.to_owned())),
        None => (rest.to_owned(), None),
    };
    let mut objects = fake.objects.lock().unwrap();
    let Some(current) = objects.get(&name).cloned() else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("widget {name} not found"),
        );
    };
    match method {
        Method::GET => axum::Json(current).into_response(),
        Method::PATCH => {
            if fake
                .conflicts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return status(StatusCode::CONFLICT, "Conflict", "injected conflict");
            }
            let patch: Value = serde_json::from_slice(&body).unwrap();
            let wanted = &patch["metadata"]["resourceVersion"];
            if !wanted.is_null() && *wanted != current["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                );
            }
            let mut updated = current.clone();
            match subresource.as_deref() {
                Some("status") => merge(&mut updated["status"], &patch["status"]),
                None => {
                    let mut patch = patch.clone();
                    if let Some(map) = patch.as_object_mut() {
                        map.remove("status");
                    }
                    merge(&mut updated, &patch);
                }
                Some(other) => {
                    return status(StatusCode::NOT_FOUND, "NotFound", other);
                }
            }
            updated["metadata"]["resourceVersion"] = fake.rv().into();
            let finalizers_left = updated["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if !updated["metadata"]["deletionTimestamp"].is_null() && !finalizers_left {
                objects.remove(&name);
            } else {
                objects.insert(name, updated.clone());
            }
            axum::Json(updated).into_response()
        }
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "fake"),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
