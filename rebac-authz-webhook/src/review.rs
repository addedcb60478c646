//! The wire format: a SubjectAccessReview in (`authorization.k8s.io/v1` or `v1beta1`), the
//! review with its status out, in the version it came in.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode, header};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use serde_json::{Value, json};

use crate::decide::{Decision, Question, ResourceRequest};

/// The largest body decoded (upstream's limit); a larger one gets HTTP 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const GROUP: &str = "authorization.k8s.io";
const KIND: &str = "SubjectAccessReview";

/// A decoded review: its version, its UID, and its question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// `authorization.k8s.io/v1` or `authorization.k8s.io/v1beta1`: the answer's version.
    pub api_version: String,
    /// `metadata.uid`, echoed in the answer.
    pub uid: Option<String>,
    /// What is asked.
    pub question: Question,
}

/// Why a body is not a review; the HTTP status and the message the answer carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReviewError {
    pub status: StatusCode,
    pub message: String,
}

impl ReviewError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

/// Decodes a request's body into a review, checking its content type first.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Review, ReviewError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(ReviewError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("content type {content_type:?} is not application/json"),
        });
    }
    if body.is_empty() {
        return Err(ReviewError::bad("the body is empty"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ReviewError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body is over {MAX_BODY_BYTES} bytes"),
        });
    }
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|e| ReviewError::bad(format!("the body is not JSON: {e}")))?;
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != KIND {
        return Err(ReviewError::bad(format!("kind {kind:?} is not {KIND}")));
    }
    match api_version
        .strip_prefix(GROUP)
        .and_then(|v| v.strip_prefix('/'))
    {
        Some("v1") => {}
        // v1beta1 names the groups `group`; otherwise the same.
        Some("v1beta1") => {
            value["apiVersion"] = json!(format!("{GROUP}/v1"));
            if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(groups) = spec.remove("group")
            {
                spec.insert("groups".into(), groups);
            }
        }
        _ => {
            return Err(ReviewError::bad(format!(
                "apiVersion {api_version:?} is not {GROUP}/v1 or {GROUP}/v1beta1"
            )));
        }
    }
    let review: SubjectAccessReview = serde_json::from_value(value)
        .map_err(|e| ReviewError::bad(format!("the body is not a {KIND}: {e}")))?;
    let spec = review.spec;
    Ok(Review {
        api_version,
        uid: review.metadata.uid,
        question: Question {
            user: spec.user.unwrap_or_default(),
            groups: spec.groups.unwrap_or_default(),
            extra: spec
                .extra
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            resource: spec.resource_attributes.map(|r| ResourceRequest {
                verb: r.verb.unwrap_or_default(),
                group: r.group.unwrap_or_default(),
                version: r.version.unwrap_or_default(),
                resource: r.resource.unwrap_or_default(),
                namespace: r.namespace.unwrap_or_default(),
                name: r.name.unwrap_or_default(),
            }),
            non_resource_path: spec
                .non_resource_attributes
                .map(|n| n.path.unwrap_or_default()),
        },
    })
}

/// The answer to a review: the review's version and UID with the decision as its status.
/// (A [`Decision::Retry`] is not a body: see [`crate::server`].)
pub fn encode(api_version: &str, uid: Option<&str>, decision: &Decision) -> Value {
    let (allowed, denied, reason) = match decision {
        Decision::Allow(reason) => (true, false, reason.as_str()),
        Decision::Deny(reason) => (false, true, reason.as_str()),
        Decision::NoOpinion(reason) => (false, false, reason.as_str()),
        Decision::Retry(_) => (false, false, "retry"),
    };
    answer(
        api_version,
        uid,
        SubjectAccessReviewStatus {
            allowed,
            denied: denied.then_some(true),
            reason: Some(reason.to_owned()),
            evaluation_error: None,
        },
    )
}

/// The answer to a body that is not a review: not allowed, the problem as evaluation error.
pub fn encode_error(error: &ReviewError) -> Value {
    answer(
        &format!("{GROUP}/v1"),
        None,
        SubjectAccessReviewStatus {
            allowed: false,
            denied: None,
            reason: None,
            evaluation_error: Some(error.message.clone()),
        },
    )
}

fn answer(api_version: &str, uid: Option<&str>, status: SubjectAccessReviewStatus) -> Value {
    let mut body = json!({
        "apiVersion": api_version,
        "kind": KIND,
        "status": status,
    });
    if let Some(uid) = uid {
        body["metadata"] = json!({ "uid": uid });
    }
    body
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers
    }

    #[test]
    fn v1_and_v1beta1_decode_to_one_question() {
        let v1 = json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": { "uid": "u-1" },
            "spec": {
                "user": "alice",
                "groups": ["system:authenticated"],
                "extra": { "authorization.kubernetes.io/cluster-name": ["abc"] },
                "resourceAttributes": {
                    "verb": "list", "group": "core.platform-mesh.io", "version": "v1alpha1",
                    "resource": "accounts"
                }
            }
        });
        let mut beta = v1.clone();
        beta["apiVersion"] = json!("authorization.k8s.io/v1beta1");
        let spec = beta["spec"].as_object_mut().unwrap();
        let groups = spec.remove("groups").unwrap();
        spec.insert("group".into(), groups);

        let one = decode(&json_headers(), &serde_json::to_vec(&v1).unwrap()).unwrap();
        let other = decode(&json_headers(), &serde_json::to_vec(&beta).unwrap()).unwrap();
        assert_eq!(one.question, other.question);
        assert_eq!(one.uid.as_deref(), Some("u-1"));
        assert_eq!(other.api_version, "authorization.k8s.io/v1beta1");
        assert_eq!(one.question.groups, ["system:authenticated"]);
        let resource = one.question.resource.unwrap();
        assert_eq!(
            (resource.verb.as_str(), resource.resource.as_str()),
            ("list", "accounts")
        );
    }

    #[test]
    fn bodies_that_are_not_reviews_are_refused_with_the_reason() {
        let cases: [(&[u8], StatusCode, &str); 6] = [
            (b"", StatusCode::BAD_REQUEST, "the body is empty"),
            (b"{not json", StatusCode::BAD_REQUEST, "the body is not JSON"),
            (b"{}", StatusCode::BAD_REQUEST, "kind \"\" is not SubjectAccessReview"),
            (
                br#"{"kind":"SubjectAccessReview","apiVersion":"v1"}"#,
                StatusCode::BAD_REQUEST,
                "apiVersion \"v1\" is not",
            ),
            (
                br#"{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":{"user":7}}"#,
                StatusCode::BAD_REQUEST,
                "the body is not a SubjectAccessReview",
            ),
            (
                br#"{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":[]}"#,
                StatusCode::BAD_REQUEST,
                "the body is not a SubjectAccessReview",
            ),
        ];
        for (body, status, message) in cases {
            let error = decode(&json_headers(), body).unwrap_err();
            assert_eq!(error.status, status, "{error}");
            assert!(error.message.starts_with(message), "{error}");
        }
        let error = decode(&HeaderMap::new(), b"{}").unwrap_err();
        assert_eq!(error.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let huge = vec![b' '; MAX_BODY_BYTES + 1];
        let error = decode(&json_headers(), &huge).unwrap_err();
        assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn answers_carry_the_version_uid_and_decision() {
        let allow = encode(
            "authorization.k8s.io/v1beta1",
            Some("u-2"),
            &Decision::Allow("ok".into()),
        );
        assert_eq!(allow["apiVersion"], "authorization.k8s.io/v1beta1");
        assert_eq!(allow["metadata"]["uid"], "u-2");
        assert_eq!(allow["status"]["allowed"], true);
        assert_eq!(allow["status"].get("denied"), None);
        let deny = encode(
            "authorization.k8s.io/v1",
            None,
            &Decision::Deny("no".into()),
        );
        assert_eq!(deny["status"]["allowed"], false);
        assert_eq!(deny["status"]["denied"], true);
        assert_eq!(deny.get("metadata"), None);
        let none = encode(
            "authorization.k8s.io/v1",
            None,
            &Decision::NoOpinion("n/a".into()),
        );
        assert_eq!(none["status"]["allowed"], false);
        assert_eq!(none["status"].get("denied"), None);
        assert_eq!(none["status"]["reason"], "n/a");
        let error = encode_error(&ReviewError::bad("broken"));
        assert_eq!(error["status"]["evaluationError"], "broken");
        assert_eq!(error["status"]["allowed"], false);
    }
}
