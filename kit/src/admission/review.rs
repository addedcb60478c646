//! The AdmissionReview plumbing every webhook shares, on kube's types: a request body in,
//! kube's [`AdmissionRequest`] out; kube's [`AdmissionResponse`] in, the HTTP answer out. A
//! webhook then only decides.

use std::future::{Ready, ready};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, post};
use k8s_openapi::ByteString;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use kube::core::{DynamicObject, Resource};
use serde_json::Value;

/// The older review version, same shape as v1. kube's types carry the version through from
/// request to response, so it is accepted and answered in kind, as controller-runtime does.
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";

/// Why a request body is not an AdmissionReview a webhook can answer. Answered with HTTP 400
/// and the message as plain text (see its [`IntoResponse`]), so the API server's error (and
/// the webhook's log) says what was wrong instead of a decoding error on an empty review.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// The body is not JSON of the AdmissionReview shape.
    #[error("request body is not an AdmissionReview: {0}")]
    Malformed(String),
    /// Another `apiVersion`/`kind`.
    #[error(
        "unsupported review {api_version:?}/{kind:?}: expected {META_API_VERSION_V1:?} (or {ADMISSION_V1BETA1:?}) {META_KIND:?}"
    )]
    Unsupported {
        /// The review's `apiVersion` (empty if absent).
        api_version: String,
        /// The review's `kind` (empty if absent).
        kind: String,
    },
    /// No `request` in the review.
    #[error("AdmissionReview has no request")]
    NoRequest,
}

impl IntoResponse for ReviewError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self, "bad admission request");
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{self}\n"),
        )
            .into_response()
    }
}

/// Parses the body the API server sent. The version and kind are checked before the request
/// is decoded (kube's types accept any), so a wrong review is named as such rather than
/// reported as a missing field; the review's version is kept in the request, so
/// `AdmissionResponse::from(&request).into_review()` answers in the same version.
pub fn parse_request(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReviewError::Malformed("the body is empty".to_owned()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    let Some(object) = value.as_object() else {
        return Err(ReviewError::Malformed("expected a JSON object".to_owned()));
    };
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let version_ok = api_version == META_API_VERSION_V1 || api_version == ADMISSION_V1BETA1;
    if !version_ok || kind != META_KIND {
        return Err(ReviewError::Unsupported { api_version, kind });
    }
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(value).map_err(|e| ReviewError::Malformed(e.to_string()))?;
    review.try_into().map_err(|_| ReviewError::NoRequest)
}

/// Refuses by policy: code 403, reason `Forbidden`, as controller-runtime's `Denied` does.
/// kube's [`AdmissionResponse::deny`] sets only the message; the code and reason are what
/// clients and audit logs classify the refusal by.
pub fn forbidden<T: Resource>(
    request: &AdmissionRequest<T>,
    message: impl ToString,
) -> AdmissionResponse {
    refuse(request, StatusCode::FORBIDDEN, "Forbidden", message)
}

/// Refuses a request whose object the webhook cannot read: code 400, reason `BadRequest`.
/// Unlike kube's [`AdmissionResponse::invalid`], it keeps the request's uid and version,
/// which the API server requires to accept the answer.
pub fn bad_request<T: Resource>(
    request: &AdmissionRequest<T>,
    message: impl ToString,
) -> AdmissionResponse {
    refuse(request, StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Admits the request with `patch` applied. Serialising a patch cannot fail in practice;
/// should it, the request is refused (500 `InternalError`) rather than admitted unpatched.
pub fn patched<T: Resource>(
    request: &AdmissionRequest<T>,
    patch: json_patch::Patch,
) -> AdmissionResponse {
    AdmissionResponse::from(request)
        .with_patch(patch)
        .unwrap_or_else(|e| {
            refuse(
                request,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e,
            )
        })
}

fn refuse<T: Resource>(
    request: &AdmissionRequest<T>,
    code: StatusCode,
    reason: &str,
    message: impl ToString,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.code = code.as_u16();
    response.result.reason = reason.to_owned();
    response
}

/// The HTTP answer to a review: 200 with the AdmissionReview carrying `response`, in the
/// request's version.
pub fn respond(response: AdmissionResponse) -> Response {
    match review_json(response) {
        Ok(review) => axum::Json(review).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding an admission review");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the AdmissionReview: {e}\n"),
            )
                .into_response()
        }
    }
}

/// The review as JSON, with `patch` base64-encoded. kube declares the patch a `Vec<u8>`,
/// which serde writes as an array of numbers (kube-rs/kube#1781); the admission API
/// documents base64, Go's encoding of `[]byte`, which is what every API server and
/// controller-runtime speak.
fn review_json(mut response: AdmissionResponse) -> serde_json::Result<Value> {
    let patch = response.patch.take();
    let mut review = serde_json::to_value(response.into_review())?;
    if let Some(patch) = patch {
        review["response"]["patch"] = serde_json::to_value(ByteString(patch))?;
    }
    Ok(review)
}

/// One review: parse `body`, let `decide`, answer (or refuse a body that is not a review).
fn answer(
    body: &[u8],
    decide: impl FnOnce(&AdmissionRequest<DynamicObject>) -> AdmissionResponse,
) -> Response {
    match parse_request(body) {
        Ok(request) => respond(decide(&request)),
        Err(e) => e.into_response(),
    }
}

/// A `POST` route answering reviews with `decide`: a body that is not a review gets HTTP 400
/// (see [`ReviewError`]); any other method gets 405 from axum.
pub fn review<F, S>(decide: F) -> MethodRouter<S>
where
    F: Fn(&AdmissionRequest<DynamicObject>) -> AdmissionResponse + Clone + Send + Sync + 'static,
    S: Clone + Send + Sync + 'static,
{
    post(move |body: Bytes| -> Ready<Response> { ready(answer(&body, &decide)) })
}

/// [`review`] for a decision that has to ask something first (a webhook that looks up whether
/// a name is taken elsewhere): `decide` gets the parsed request and answers in its own time.
pub fn review_async<F, Fut, S>(decide: F) -> MethodRouter<S>
where
    F: Fn(AdmissionRequest<DynamicObject>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = AdmissionResponse> + Send + 'static,
    S: Clone + Send + Sync + 'static,
{
    post(move |body: Bytes| {
        let decide = decide.clone();
        async move {
            match parse_request(&body) {
                Ok(request) => respond(decide(request).await),
                Err(e) => e.into_response(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    /// A review as kube-apiserver (and kcp) sends it, trimmed.
    fn api_server_review() -> Value {
        json!({
            "kind": "AdmissionReview",
            "apiVersion": "admission.k8s.io/v1",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": { "group": "core.platform-mesh.io", "version": "v1alpha1", "kind": "Account" },
                "resource": { "group": "core.platform-mesh.io", "version": "v1alpha1", "resource": "accounts" },
                "requestKind": { "group": "core.platform-mesh.io", "version": "v1alpha1", "kind": "Account" },
                "name": "acme",
                "operation": "CREATE",
                "userInfo": {
                    "username": "kcp-admin",
                    "groups": ["system:kcp:admin", "system:authenticated"],
                    "extra": { "authentication.kcp.io/cluster-name": ["root"] }
                },
                "object": {
                    "apiVersion": "core.platform-mesh.io/v1alpha1",
                    "kind": "Account",
                    "metadata": { "name": "acme", "annotations": { "kcp.io/cluster": "2x7k" } },
                    "spec": { "type": "org", "displayName": "Acme" }
                },
                "oldObject": null,
                "dryRun": false,
                "options": { "kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1" }
            }
        })
    }

    fn parse(review: &Value) -> AdmissionRequest<DynamicObject> {
        parse_request(&serde_json::to_vec(review).unwrap()).unwrap()
    }

    fn wire(response: AdmissionResponse) -> Value {
        review_json(response).unwrap()
    }

    #[test]
    fn parses_what_the_api_server_sends() {
        let request = parse(&api_server_review());
        assert_eq!(request.types.api_version, META_API_VERSION_V1);
        assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(request.kind.kind, "Account");
        assert_eq!(request.operation, kube::core::admission::Operation::Create);
        assert_eq!(request.user_info.username.as_deref(), Some("kcp-admin"));
        assert_eq!(request.name, "acme");
        assert!(request.old_object.is_none());
        assert_eq!(request.object.unwrap().data["spec"]["type"], "org");
    }

    #[test]
    fn answers_in_the_reviews_version_with_a_base64_patch() {
        let request = parse(&api_server_review());
        let patch = json!([{ "op": "add", "path": "/spec/creator", "value": "kcp-admin" }]);
        let answer = wire(patched(
            &request,
            serde_json::from_value(patch.clone()).unwrap(),
        ));
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert!(answer.get("request").is_none());
        let response = &answer["response"];
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        // base64 of the JSON patch, as the API server expects.
        let encoded = response["patch"].as_str().unwrap();
        let decoded: ByteString = serde_json::from_value(json!(encoded)).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&decoded.0).unwrap(), patch);
    }

    #[test]
    fn a_denial_carries_code_reason_and_message() {
        let request = parse(&api_server_review());
        let uid = request.uid.clone();
        assert_eq!(
            wire(forbidden(&request, "no"))["response"],
            json!({
                "uid": uid,
                "allowed": false,
                "status": { "code": 403, "reason": "Forbidden", "message": "no" }
            })
        );
        assert_eq!(
            wire(bad_request(&request, "unreadable"))["response"]["status"],
            json!({ "code": 400, "reason": "BadRequest", "message": "unreadable" })
        );
    }

    #[test]
    fn v1beta1_is_answered_in_kind() {
        let mut review = api_server_review();
        review["apiVersion"] = json!(ADMISSION_V1BETA1);
        let request = parse(&review);
        let answer = wire(AdmissionResponse::from(&request));
        assert_eq!(answer["apiVersion"], ADMISSION_V1BETA1);
        assert_eq!(answer["response"]["allowed"], true);
    }

    #[tokio::test]
    async fn an_async_decision_is_awaited_and_answered() {
        use tower::ServiceExt;
        let router: axum::Router = axum::Router::new().route(
            "/validate",
            review_async(|request: AdmissionRequest<DynamicObject>| async move {
                tokio::task::yield_now().await;
                forbidden(&request, "the name is taken")
            }),
        );
        let body = serde_json::to_vec(&api_server_review()).unwrap();
        let request = axum::http::Request::post("/validate")
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let review: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["response"]["status"]["message"], "the name is taken");
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let object_as_text = {
            let mut review = api_server_review();
            review["request"]["object"] = json!("text");
            serde_json::to_vec(&review).unwrap()
        };
        let cases: &[(&[u8], &str)] = &[
            (b"", "request body is not an AdmissionReview: the body is empty"),
            (b"  \n", "request body is not an AdmissionReview: the body is empty"),
            (b"{", "request body is not an AdmissionReview: EOF while parsing"),
            (b"[]", "request body is not an AdmissionReview: expected a JSON object"),
            (b"{}", r#"unsupported review ""/"""#),
            (b"\xff\xfe", "request body is not an AdmissionReview: expected value"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "AdmissionReview has no request",
            ),
            (
                br#"{"apiVersion":"v1","kind":"Pod","request":{}}"#,
                r#"unsupported review "v1"/"Pod""#,
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}"#,
                "request body is not an AdmissionReview: missing field `kind`",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":1}}"#,
                "request body is not an AdmissionReview: invalid type: integer `1`",
            ),
            // An object that is not a JSON object cannot be an Account (or any resource).
            (
                &object_as_text,
                "request body is not an AdmissionReview: invalid type: string \"text\"",
            ),
        ];
        for (body, expected) in cases {
            let error = parse_request(body).unwrap_err().to_string();
            assert!(
                error.starts_with(expected),
                "{:?}: {error:?} does not start with {expected:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
