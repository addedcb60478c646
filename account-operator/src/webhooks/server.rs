//! The two admission endpoints at the upstream (controller-runtime) paths, registered on the
//! kit's webhook server.

use std::sync::Arc;

use axum::Router;
use kit::admission::{WebhookError, WebhookServer, review};
use kit::net::BindAddress;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use super::WebhookConfig;
use super::metrics::WebhookMetrics;
use super::policy::Policy;

pub use crds::account::webhook::{MUTATE_PATH, VALIDATE_PATH};

/// The admission handlers, independent of transport: a request in, an answer out, logged and
/// counted.
#[derive(Clone, Debug)]
pub struct Webhooks {
    policy: Arc<Policy>,
    metrics: WebhookMetrics,
}

impl Webhooks {
    /// The handlers for `config`, counting validations in `metrics`.
    pub fn new(config: &WebhookConfig, metrics: WebhookMetrics) -> Self {
        Self {
            policy: Arc::new(Policy::new(
                &config.deny_list,
                &config.additional_account_types,
                config.creator_only_when_empty,
            )),
            metrics,
        }
    }

    /// Answers a review for the mutating webhook.
    pub fn mutate(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = self.policy.mutate(request);
        if response.patch.is_some() {
            tracing::debug!(
                uid = %request.uid,
                name = request.name,
                creator = request.user_info.username.as_deref().unwrap_or_default(),
                "setting the Account's creator"
            );
        } else if !response.allowed {
            tracing::info!(
                uid = %request.uid,
                reason = response.result.message,
                "refusing an Account"
            );
        }
        response
    }

    /// Answers a review for the validating webhook, counting the validation.
    pub fn validate(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let (response, validation) = self.policy.validate(request);
        if let Some(validation) = &validation {
            self.metrics.record(validation);
        }
        if !response.allowed {
            tracing::info!(
                uid = %request.uid,
                operation = ?request.operation,
                name = request.name,
                reason = response.result.message,
                "refusing an Account"
            );
        }
        response
    }

    /// The HTTP routes: `POST` [`MUTATE_PATH`] and [`VALIDATE_PATH`].
    pub fn router(&self) -> Router {
        let (mutating, validating) = (self.clone(), self.clone());
        Router::new()
            .route(MUTATE_PATH, review(move |request| mutating.mutate(request)))
            .route(
                VALIDATE_PATH,
                review(move |request| validating.validate(request)),
            )
    }
}

/// Loads the certificate from `config.cert_dir` and binds `address` for both webhooks
/// (`config.port` is not used here, so tests can bind a loopback port).
pub async fn bind(
    address: BindAddress,
    config: &WebhookConfig,
    metrics: WebhookMetrics,
) -> Result<WebhookServer, WebhookError> {
    let router = Webhooks::new(config, metrics).router();
    WebhookServer::bind(address, &config.cert_dir, router).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::SocketAddr;

    use axum::http::Method;
    use kit::admission::testing::send;
    use prometheus_client::registry::Registry;
    use rustls::pki_types::CertificateDer;
    use serde_json::{Value, json};
    use tokio_util::sync::CancellationToken;

    use super::*;

    struct Running {
        addr: SocketAddr,
        ca: CertificateDer<'static>,
        metrics: WebhookMetrics,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<Result<(), WebhookError>>,
        _certs: tempfile::TempDir,
    }

    async fn start(config: WebhookConfig) -> Running {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let certs = tempfile::tempdir().unwrap();
        std::fs::write(certs.path().join("tls.crt"), cert.cert.pem()).unwrap();
        std::fs::write(
            certs.path().join("tls.key"),
            cert.signing_key.serialize_pem(),
        )
        .unwrap();
        let config = WebhookConfig {
            cert_dir: certs.path().to_owned(),
            ..config
        };
        let metrics = WebhookMetrics::register(&mut Registry::default());
        let loopback = BindAddress::Exact(([127, 0, 0, 1], 0).into());
        let server = bind(loopback, &config, metrics.clone()).await.unwrap();
        let addr = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Running {
            addr,
            ca: cert.cert.der().clone(),
            metrics,
            shutdown,
            task,
            _certs: certs,
        }
    }

    /// One HTTPS request, verifying the server certificate; (status, body).
    async fn request(server: &Running, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = send(server.addr, &server.ca, method, path, body)
            .await
            .unwrap();
        (status.as_u16(), body)
    }

    fn review(operation: &str, name: &str, type_: &str, creator: Option<&str>) -> Vec<u8> {
        let mut spec = json!({ "type": type_, "displayName": name });
        if let Some(creator) = creator {
            spec["creator"] = json!(creator);
        }
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": format!("uid-{name}"),
                "kind": { "group": "core.platform-mesh.io", "version": "v1alpha1", "kind": "Account" },
                "resource": { "group": "core.platform-mesh.io", "version": "v1alpha1", "resource": "accounts" },
                "name": name,
                "operation": operation,
                "userInfo": { "username": "kcp-admin", "groups": ["system:kcp:admin"] },
                "object": {
                    "apiVersion": "core.platform-mesh.io/v1alpha1",
                    "kind": "Account",
                    "metadata": { "name": name },
                    "spec": spec
                }
            }
        }))
        .unwrap()
    }

    fn response(body: &str) -> Value {
        let review: Value = serde_json::from_str(body).unwrap();
        assert_eq!(review["apiVersion"], "admission.k8s.io/v1", "{body}");
        assert_eq!(review["kind"], "AdmissionReview", "{body}");
        review["response"].clone()
    }

    fn config() -> WebhookConfig {
        WebhookConfig {
            deny_list: vec!["admin".to_owned(), "root".to_owned()],
            additional_account_types: vec!["account".to_owned()],
            ..WebhookConfig::default()
        }
    }

    #[tokio::test]
    async fn validates_over_https_and_counts() {
        let server = start(config()).await;

        let (status, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("CREATE", "admin", "org", None),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let answer = response(&body);
        assert_eq!(answer["uid"], "uid-admin");
        assert_eq!(answer["allowed"], false);
        assert_eq!(answer["status"]["code"], 403);
        assert_eq!(
            answer["status"]["message"],
            r#"organization name "admin" is not allowed"#
        );

        let (_, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("CREATE", "ab", "org", None),
        )
        .await;
        assert_eq!(
            response(&body)["status"]["message"],
            r#"organization name "ab" is too short, must be at least 3 characters"#
        );
        let (_, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("UPDATE", "t", "team", None),
        )
        .await;
        assert_eq!(
            response(&body)["status"]["message"],
            "account type team not in allowlist"
        );
        let (_, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("UPDATE", "acme", "org", None),
        )
        .await;
        assert_eq!(response(&body)["allowed"], true);
        let (_, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("CREATE", "ab", "account", None),
        )
        .await;
        assert_eq!(response(&body)["allowed"], true);
        let (_, body) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("DELETE", "admin", "org", None),
        )
        .await;
        assert_eq!(response(&body)["allowed"], true);

        let metrics = &server.metrics;
        assert_eq!(metrics.validations("create", "denied", "org"), 2);
        assert_eq!(metrics.validations("update", "denied", "team"), 1);
        assert_eq!(metrics.validations("update", "allowed", "org"), 1);
        assert_eq!(metrics.validations("create", "allowed", "account"), 1);
        // DELETE is not a validation.
        assert_eq!(metrics.validations("delete", "allowed", "org"), 0);

        server.shutdown.cancel();
        server.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn mutates_over_https_overwriting_or_defaulting() {
        let server = start(config()).await;
        let (status, body) = request(
            &server,
            "POST",
            MUTATE_PATH,
            &review("CREATE", "acme", "org", Some("mallory")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let answer = response(&body);
        assert_eq!(answer["allowed"], true);
        assert_eq!(answer["patchType"], "JSONPatch");
        let patch: k8s_openapi::ByteString =
            serde_json::from_value(answer["patch"].clone()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch.0).unwrap(),
            json!([{ "op": "replace", "path": "/spec/creator", "value": "kcp-admin" }])
        );
        // Mutation is not counted as a validation.
        assert_eq!(server.metrics.validations("create", "allowed", "org"), 0);

        let defaulting = start(WebhookConfig {
            creator_only_when_empty: true,
            ..config()
        })
        .await;
        let (_, body) = request(
            &defaulting,
            "POST",
            MUTATE_PATH,
            &review("CREATE", "acme", "org", Some("mallory")),
        )
        .await;
        let answer = response(&body);
        assert_eq!(answer["allowed"], true);
        assert!(answer.get("patch").is_none(), "{answer}");
        let (_, body) = request(
            &defaulting,
            "POST",
            MUTATE_PATH,
            &review("CREATE", "acme", "org", None),
        )
        .await;
        let patch: k8s_openapi::ByteString =
            serde_json::from_value(response(&body)["patch"].clone()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch.0).unwrap(),
            json!([{ "op": "add", "path": "/spec/creator", "value": "kcp-admin" }])
        );
    }

    #[tokio::test]
    async fn malformed_requests_get_a_400_and_the_server_keeps_serving() {
        let server = start(config()).await;
        for (body, expected) in [
            (
                &b""[..],
                "request body is not an AdmissionReview: the body is empty",
            ),
            (
                b"{not json",
                "request body is not an AdmissionReview: key must be a string",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "AdmissionReview has no request",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{}}"#,
                "unsupported review",
            ),
        ] {
            for path in [MUTATE_PATH, VALIDATE_PATH] {
                let (status, text) = request(&server, "POST", path, body).await;
                assert_eq!(status, 400, "{path} {text}");
                assert!(
                    text.starts_with(expected),
                    "{path}: {text:?} should start with {expected:?}"
                );
            }
        }
        let (status, _) = request(&server, "POST", "/validate-something-else", b"{}").await;
        assert_eq!(status, 404);
        let (status, _) = request(&server, "GET", VALIDATE_PATH, b"").await;
        assert_eq!(status, 405);
        // Still answering.
        let (status, _) = request(
            &server,
            "POST",
            VALIDATE_PATH,
            &review("CREATE", "acme", "org", None),
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn a_missing_certificate_names_the_file() {
        let empty = tempfile::tempdir().unwrap();
        let config = WebhookConfig {
            cert_dir: empty.path().to_owned(),
            port: 0,
            ..WebhookConfig::default()
        };
        let metrics = WebhookMetrics::default();
        let error = super::super::serve(config, metrics, CancellationToken::new())
            .await
            .unwrap_err();
        let expected = format!(
            "reading the webhook TLS file {}",
            empty.path().join("tls.crt").display()
        );
        assert!(error.to_string().starts_with(&expected), "{error}");
    }
}
