//! The `admission.k8s.io/v1` AdmissionReview wire format: only the fields the Account webhooks
//! read or write. Unknown fields are ignored on input, so newer API servers keep working.

use k8s_openapi::ByteString;
use serde::{Deserialize, Serialize};

/// The API version kcp and Kubernetes send with `admissionReviewVersions: [v1]`.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
/// The older version, same shape; accepted and answered in kind, as controller-runtime does.
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
/// The kind of every review.
pub const ADMISSION_REVIEW_KIND: &str = "AdmissionReview";

/// An AdmissionReview: the API server sends one with `request`, the webhook answers with the
/// same `apiVersion`/`kind` and a `response`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1` (or `v1beta1`).
    #[serde(default)]
    pub api_version: String,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: String,
    /// The request, set by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// The answer, set by the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

/// The part of an admission request the webhooks use.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Identifies this call; echoed in the response.
    pub uid: String,
    /// The kind of the object (`core.platform-mesh.io/v1alpha1`, `Account`).
    pub kind: GroupVersionKind,
    /// The resource (`accounts`), when the server sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<GroupVersionResource>,
    /// The subresource (`status` …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The object's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// Who makes the request.
    #[serde(default)]
    pub user_info: UserInfo,
    /// The new object (CREATE, UPDATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
    /// The existing object (UPDATE, DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_object: Option<serde_json::Value>,
    /// Whether the request is a dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

/// An API group, version and kind. The core group is the empty string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionKind {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// An API group, version and resource (plural).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionResource {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// API version.
    #[serde(default)]
    pub version: String,
    /// Resource (plural).
    #[serde(default)]
    pub resource: String,
}

/// The requesting user, as authenticated by the API server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct UserInfo {
    /// The user name, e.g. `kcp-admin` or an OIDC subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The user's UID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// The webhook's answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not (code, reason, message), for a refused request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// A JSON patch (RFC 6902) to apply to the object; base64 on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<ByteString>,
    /// `JSONPatch` when `patch` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Warnings the client shows to the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The subset of `metav1.Status` a webhook answer carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResponseStatus {
    /// HTTP-style code: 403 for a policy refusal, 400 for an object that cannot be read.
    #[serde(default)]
    pub code: u16,
    /// `Forbidden`, `BadRequest`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The human-readable message the API server passes on to the client.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl AdmissionResponse {
    /// Admits the request unchanged.
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: true,
            ..Self::default()
        }
    }

    /// Refuses the request by policy (403 Forbidden), as controller-runtime's validators do.
    pub fn deny(uid: &str, message: impl Into<String>) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(ResponseStatus {
                code: 403,
                reason: "Forbidden".to_owned(),
                message: message.into(),
            }),
            ..Self::default()
        }
    }

    /// Refuses a request whose object cannot be understood (400 Bad Request).
    pub fn bad_request(uid: &str, message: impl Into<String>) -> Self {
        Self {
            uid: uid.to_owned(),
            allowed: false,
            status: Some(ResponseStatus {
                code: 400,
                reason: "BadRequest".to_owned(),
                message: message.into(),
            }),
            ..Self::default()
        }
    }

    /// Admits the request with a JSON patch (none if `patch` is empty).
    pub fn patch(uid: &str, patch: &serde_json::Value) -> Self {
        let empty = patch.as_array().is_some_and(Vec::is_empty);
        if empty {
            return Self::allow(uid);
        }
        Self {
            uid: uid.to_owned(),
            allowed: true,
            // Serialising a `Value` cannot fail.
            patch: Some(ByteString(serde_json::to_vec(patch).unwrap_or_default())),
            patch_type: Some("JSONPatch".to_owned()),
            ..Self::default()
        }
    }
}

/// Why a request body is not an AdmissionReview the webhook can answer (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    /// The body is not JSON of the AdmissionReview shape.
    #[error("request body is not an AdmissionReview: {0}")]
    Malformed(String),
    /// Another `apiVersion`/`kind`.
    #[error(
        "unsupported review {api_version:?}/{kind:?}: expected {ADMISSION_V1:?} (or {ADMISSION_V1BETA1:?}) {ADMISSION_REVIEW_KIND:?}"
    )]
    Unsupported { api_version: String, kind: String },
    /// No `request` in the review.
    #[error("AdmissionReview has no request")]
    NoRequest,
}

impl AdmissionReview {
    /// Parses a review the API server sent, checking its version and that it has a request.
    pub fn parse_request(body: &[u8]) -> Result<(Self, AdmissionRequest), ReviewError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ReviewError::Malformed("the body is empty".to_owned()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(ReviewError::Malformed("expected a JSON object".to_owned()));
        };
        let field = |name: &str| {
            object
                .get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        let version_ok = api_version == ADMISSION_V1 || api_version == ADMISSION_V1BETA1;
        if !version_ok || kind != ADMISSION_REVIEW_KIND {
            return Err(ReviewError::Unsupported { api_version, kind });
        }
        let mut review: AdmissionReview =
            serde_json::from_value(value).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        let request = review.request.take().ok_or(ReviewError::NoRequest)?;
        Ok((review, request))
    }

    /// The answer to this review: same `apiVersion` and `kind`, with `response`.
    pub fn answer(&self, response: AdmissionResponse) -> AdmissionReview {
        AdmissionReview {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            request: None,
            response: Some(response),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// A review as kube-apiserver (and kcp) sends it, trimmed.
    fn api_server_review() -> serde_json::Value {
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

    #[test]
    fn parses_what_the_api_server_sends() {
        let body = serde_json::to_vec(&api_server_review()).unwrap();
        let (review, request) = AdmissionReview::parse_request(&body).unwrap();
        assert_eq!(review.api_version, ADMISSION_V1);
        assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(request.kind.kind, "Account");
        assert_eq!(request.operation, "CREATE");
        assert_eq!(request.user_info.username.as_deref(), Some("kcp-admin"));
        assert_eq!(request.name.as_deref(), Some("acme"));
        assert_eq!(request.old_object, None);
        assert_eq!(request.object.unwrap()["spec"]["type"], "org");
    }

    #[test]
    fn answers_in_the_reviews_version_with_a_base64_patch() {
        let body = serde_json::to_vec(&api_server_review()).unwrap();
        let (review, request) = AdmissionReview::parse_request(&body).unwrap();
        let patch = json!([{ "op": "add", "path": "/spec/creator", "value": "kcp-admin" }]);
        let answer = review.answer(AdmissionResponse::patch(&request.uid, &patch));
        let wire = serde_json::to_value(&answer).unwrap();
        assert_eq!(wire["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(wire["kind"], "AdmissionReview");
        assert!(wire.get("request").is_none());
        let response = &wire["response"];
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], true);
        assert_eq!(response["patchType"], "JSONPatch");
        // base64 of the JSON patch, as the API server expects.
        let encoded = response["patch"].as_str().unwrap();
        let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(encoded)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&decoded.0).unwrap(),
            patch
        );
    }

    #[test]
    fn a_denial_carries_code_reason_and_message() {
        let wire = serde_json::to_value(AdmissionResponse::deny("u", "no")).unwrap();
        assert_eq!(
            wire,
            json!({
                "uid": "u",
                "allowed": false,
                "status": { "code": 403, "reason": "Forbidden", "message": "no" }
            })
        );
    }

    #[test]
    fn v1beta1_is_answered_in_kind() {
        let mut review = api_server_review();
        review["apiVersion"] = json!(ADMISSION_V1BETA1);
        let body = serde_json::to_vec(&review).unwrap();
        let (review, _) = AdmissionReview::parse_request(&body).unwrap();
        assert_eq!(
            review.answer(AdmissionResponse::allow("u")).api_version,
            ADMISSION_V1BETA1
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
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
        ];
        for (body, expected) in cases {
            let error = AdmissionReview::parse_request(body)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(expected),
                "{:?}: {error:?} does not start with {expected:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
