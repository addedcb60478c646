//! The HTTP side: `POST /authz` answers kcp's SubjectAccessReviews; `POST /authz/batch`
//! answers many questions for one user in one call (for a UI deciding which actions to
//! offer, platform-mesh#212). Both run every question through [`Authorizer::decide`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use kcp::ClusterPath;
use openfga_client::client::{
    CheckRequest, CheckRequestTupleKey, ContextualTupleKeys, OpenFgaServiceClient, TupleKey,
};
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::decide::{self, Check, Decision, Handler, Question, ResourceRequest, Rules};
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::review::{self, MAX_BODY_BYTES};

/// The path kcp's AuthorizationConfiguration points at.
pub const AUTHZ_PATH: &str = "/authz";
/// The batch endpoint.
pub const BATCH_PATH: &str = "/authz/batch";
/// The most questions one batch may ask.
pub const MAX_BATCH_QUESTIONS: usize = 1000;
/// How many of a batch's Checks run at once.
const BATCH_CONCURRENCY: usize = 16;

/// Decides questions: the rules, the view of the workspaces, and OpenFGA.
#[derive(Debug)]
pub struct Authorizer {
    /// The flags that shape the answers.
    pub rules: Rules,
    /// The view of the workspaces.
    pub directory: Directory,
    /// OpenFGA.
    pub fga: OpenFgaServiceClient<Channel>,
    /// How long a Check may take before the answer is NoOpinion.
    pub check_timeout: Duration,
    /// The metric families.
    pub metrics: Metrics,
}

impl Authorizer {
    /// The answer to `question`, and the handler that gave it.
    pub async fn decide(&self, question: &Question) -> (Handler, Decision) {
        self.directory.prepare(question, &self.rules).await;
        let (handler, plan) = decide::plan(question, &self.rules, &self.directory);
        let decision = match plan {
            decide::Plan::Answer(decision) => decision,
            decide::Plan::Check(check) => self.check(&check).await,
        };
        self.metrics.decided(handler, &decision);
        tracing::debug!(?question, handler = handler.label(), ?decision, "decided");
        (handler, decision)
    }

    async fn check(&self, check: &Check) -> Decision {
        let request = check_request(check);
        let started = Instant::now();
        let answer =
            tokio::time::timeout(self.check_timeout, self.fga.clone().check(request)).await;
        let seconds = started.elapsed().as_secs_f64();
        match answer {
            Ok(Ok(response)) => {
                let allowed = response.into_inner().allowed;
                let result = if allowed { "allowed" } else { "not_allowed" };
                self.metrics.checked(result, seconds);
                check.decide(allowed)
            }
            // The model has no such type or relation: nothing in it grants the request. An
            // answer, not an OpenFGA failure, or every ordinary refusal of a kind the model does
            // not cover would look like an outage in the logs and on the dashboards.
            Ok(Err(status)) if undefined_in_model(&status) => {
                self.metrics.checked("not_allowed", seconds);
                tracing::debug!(tuple = %check.tuple, reason = %status.message(), "not in the model");
                check.decide(false)
            }
            Ok(Err(status)) => {
                self.metrics.checked("error", seconds);
                tracing::warn!(tuple = %check.tuple, error = %status.message(), "OpenFGA Check failed");
                Decision::NoOpinion(format!(
                    "OpenFGA could not check {}: {}",
                    check.tuple,
                    status.message()
                ))
            }
            Err(_) => {
                self.metrics.checked("error", seconds);
                tracing::warn!(tuple = %check.tuple, "OpenFGA Check timed out");
                Decision::NoOpinion(format!(
                    "OpenFGA did not answer within {:?}",
                    self.check_timeout
                ))
            }
        }
    }
}

/// Whether OpenFGA refused a Check because the store's model defines no such type or relation
/// (OpenFGA's `type 'x' not found` and `relation 'x#y' not found[ for tuple '…']`, validation
/// errors and so invalid arguments).
fn undefined_in_model(status: &tonic::Status) -> bool {
    let message = status.message();
    status.code() == tonic::Code::InvalidArgument
        && ((message.starts_with("type '") && message.ends_with("' not found"))
            || (message.starts_with("relation '") && message.contains("' not found")))
}

/// The OpenFGA Check request of `check`: the latest model of the store, the hierarchy as
/// contextual tuples.
pub fn check_request(check: &Check) -> CheckRequest {
    let key = |t: &decide::Tuple| TupleKey {
        user: t.user.clone(),
        relation: t.relation.clone(),
        object: t.object.clone(),
        condition: None,
    };
    CheckRequest {
        store_id: check.store.clone(),
        tuple_key: Some(CheckRequestTupleKey {
            user: check.tuple.user.clone(),
            relation: check.tuple.relation.clone(),
            object: check.tuple.object.clone(),
        }),
        contextual_tuples: (!check.contextual.is_empty()).then(|| ContextualTupleKeys {
            tuple_keys: check.contextual.iter().map(key).collect(),
        }),
        ..CheckRequest::default()
    }
}

/// The webhook's routes.
pub fn routes(authorizer: Arc<Authorizer>) -> Router {
    Router::new()
        .route(AUTHZ_PATH, post(authorize))
        .route(BATCH_PATH, post(batch))
        // axum stops reading at the limit; `authorize` answers that as a review error.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(authorizer)
}

async fn authorize(
    State(authorizer): State<Arc<Authorizer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let in_flight = authorizer.metrics.started(AUTHZ_PATH);
    let decoded = body
        .map_err(|rejection| review::ReviewError {
            status: rejection.status(),
            message: match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => format!("the body is over {MAX_BODY_BYTES} bytes"),
                _ => rejection.body_text(),
            },
        })
        .and_then(|body| review::decode(&headers, &body));
    let response = match decoded {
        Err(error) => {
            tracing::info!(%error, "refused a request that is not a SubjectAccessReview");
            authorizer
                .metrics
                .decided(Handler::Review, &Decision::NoOpinion(String::new()));
            (error.status, Json(review::encode_error(&error))).into_response()
        }
        Ok(review) => match authorizer.decide(&review.question).await.1 {
            // Retry-After in whole seconds, at least one.
            Decision::Retry(after) => {
                let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
                let mut response = StatusCode::SERVICE_UNAVAILABLE.into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
                response
            }
            decision => Json(review::encode(
                &review.api_version,
                review.uid.as_deref(),
                &decision,
            ))
            .into_response(),
        },
    };
    in_flight.finished(response.status().as_u16());
    response
}

/// A batch: many questions for one user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    /// The user, as kcp names them (the token's user claim).
    pub user: String,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The questions, answered in order.
    pub questions: Vec<BatchQuestion>,
}

/// One question of a batch: may the user do `verb` on `resource` in `workspace`?
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchQuestion {
    /// The workspace path (`root:orgs:acme:team`).
    pub workspace: String,
    pub verb: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

/// The answers of a batch, in the order of its questions.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BatchResponse {
    pub answers: Vec<BatchAnswer>,
}

/// One answer: allowed, denied (only in the strict bind mode), or neither (kcp's RBAC would
/// decide), with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct BatchAnswer {
    pub allowed: bool,
    pub denied: bool,
    pub reason: String,
}

async fn batch(
    State(authorizer): State<Arc<Authorizer>>,
    request: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let in_flight = authorizer.metrics.started(BATCH_PATH);
    let response = match request {
        Err(rejection) => (rejection.status(), rejection.body_text()).into_response(),
        Ok(Json(request)) if request.questions.len() > MAX_BATCH_QUESTIONS => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} questions; a batch may ask at most {MAX_BATCH_QUESTIONS}",
                request.questions.len()
            ),
        )
            .into_response(),
        Ok(Json(request)) => {
            let request = Arc::new(request);
            let answers = futures::stream::iter(0..request.questions.len())
                .map(|i| {
                    let (authorizer, request) = (authorizer.clone(), request.clone());
                    async move { answer(&authorizer, &request, &request.questions[i]).await }
                })
                .buffered(BATCH_CONCURRENCY)
                .collect()
                .await;
            Json(BatchResponse { answers }).into_response()
        }
    };
    in_flight.finished(response.status().as_u16());
    response
}

async fn answer(
    authorizer: &Authorizer,
    request: &BatchRequest,
    question: &BatchQuestion,
) -> BatchAnswer {
    let reply = |allowed, denied, reason: String| BatchAnswer {
        allowed,
        denied,
        reason,
    };
    let path: ClusterPath = match question.workspace.parse() {
        Ok(path) => path,
        Err(e) => {
            return reply(
                false,
                false,
                format!("workspace {:?}: {e}", question.workspace),
            );
        }
    };
    let Some(cluster) = authorizer.directory.cluster_for_path(&path) else {
        return reply(false, false, format!("workspace {path} is not known"));
    };
    let asked = Question {
        user: request.user.clone(),
        groups: request.groups.clone(),
        extra: [(
            authorizer.rules.cluster_key.clone(),
            vec![cluster.to_string()],
        )]
        .into(),
        resource: Some(ResourceRequest {
            verb: question.verb.clone(),
            group: question.group.clone(),
            version: question.version.clone(),
            resource: question.resource.clone(),
            namespace: question.namespace.clone(),
            name: question.name.clone(),
        }),
        non_resource_path: None,
    };
    match authorizer.decide(&asked).await.1 {
        Decision::Allow(reason) => reply(true, false, reason),
        Decision::Deny(reason) => reply(false, true, reason),
        Decision::NoOpinion(reason) => reply(false, false, reason),
        Decision::Retry(_) => reply(false, false, format!("workspace {path} is not ready yet")),
    }
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::undefined_in_model;

    #[test]
    fn a_type_or_relation_the_model_lacks_is_told_from_a_failure() {
        let invalid = |message: &str| Status::new(Code::InvalidArgument, message);
        assert!(undefined_in_model(&invalid(
            "type 'tenancy_kcp_io_workspace' not found"
        )));
        assert!(undefined_in_model(&invalid(
            "relation 'core_platform-mesh_io_account#create_stores' not found"
        )));
        assert!(undefined_in_model(&invalid(
            "relation 'doc#viewer' not found for tuple 'doc:1#viewer@user:a'"
        )));
        assert!(!undefined_in_model(&invalid(
            "invalid CheckRequest.TupleKey"
        )));
        assert!(!undefined_in_model(&Status::new(
            Code::NotFound,
            "type 'x' not found"
        )));
        assert!(!undefined_in_model(&Status::new(
            Code::Unavailable,
            "connection refused"
        )));
    }
}
