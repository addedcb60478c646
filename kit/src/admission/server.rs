//! The HTTPS server a webhook binary hands its routes to.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::WebhookError;
use super::tls::{TlsListener, server_config};
use crate::net::BindAddress;

/// A bound webhook server, not yet serving: the certificate is loaded and the port bound, so
/// a broken setup fails before anything is spawned, and a caller can learn the port (bind to
/// port 0 in tests) before requests arrive.
#[derive(Debug)]
pub struct WebhookServer {
    listener: TlsListener,
    router: Router,
}

impl WebhookServer {
    /// Loads the serving certificate from `cert_dir` ([`CERT_FILE`](super::CERT_FILE) and
    /// [`KEY_FILE`](super::KEY_FILE), reloaded when they change) and binds `address` for
    /// `router`.
    pub async fn bind(
        address: BindAddress,
        cert_dir: &Path,
        router: Router,
    ) -> Result<Self, WebhookError> {
        let tls = server_config(cert_dir)?;
        let bind_error = |source| WebhookError::Bind { address, source };
        let tcp = address.listen().await.map_err(bind_error)?;
        let listener = TlsListener::new(tcp, tls).map_err(bind_error)?;
        Ok(Self { listener, router })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled, then lets requests in flight finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WebhookError> {
        let address = self.local_addr();
        tracing::info!(%address, "serving the admission webhooks");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| WebhookError::Serve { address, source })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::net::Ipv4Addr;

    use axum::http::{Method, StatusCode};
    use axum::routing::post;
    use kube::core::admission::AdmissionResponse;
    use rustls::pki_types::CertificateDer;

    use super::*;
    use crate::admission::testing::send;
    use crate::admission::{CERT_FILE, KEY_FILE, forbidden, review};

    const LOOPBACK: BindAddress = BindAddress::Exact(SocketAddr::new(
        std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
        0,
    ));

    /// A cert dir with a fresh self-signed certificate for 127.0.0.1, and the certificate.
    fn certs() -> (tempfile::TempDir, CertificateDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CERT_FILE), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), cert.signing_key.serialize_pem()).unwrap();
        (dir, cert.cert.der().clone())
    }

    /// Serves `router` on a loopback port until the returned token is cancelled.
    async fn start(
        router: Router,
    ) -> (
        SocketAddr,
        CertificateDer<'static>,
        CancellationToken,
        tokio::task::JoinHandle<Result<(), WebhookError>>,
    ) {
        let (dir, ca) = certs();
        let server = WebhookServer::bind(LOOPBACK, dir.path(), router)
            .await
            .unwrap();
        let address = server.local_addr();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        (address, ca, shutdown, task)
    }

    #[tokio::test]
    async fn a_route_answers_over_https_until_shutdown() {
        let router = Router::new().route("/hello", post(|body: String| async move { body }));
        let (address, ca, shutdown, task) = start(router).await;
        let answer = send(address, &ca, Method::POST, "/hello", b"over TLS").await;
        assert_eq!(answer.unwrap(), (StatusCode::OK, "over TLS".to_owned()));
        let (status, _) = send(address, &ca, Method::POST, "/other", b"")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);

        shutdown.cancel();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn reviews_are_answered_and_malformed_bodies_get_a_400() {
        let router = Router::new().route(
            "/validate",
            review(|request| match request.name.as_str() {
                "admin" => forbidden(request, "not allowed"),
                _ => AdmissionResponse::from(request),
            }),
        );
        let (address, ca, shutdown, _task) = start(router).await;
        let review = |name: &str| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": format!("uid-{name}"),
                    "kind": { "group": "", "version": "v1", "kind": "ConfigMap" },
                    "resource": { "group": "", "version": "v1", "resource": "configmaps" },
                    "name": name,
                    "operation": "CREATE",
                    "userInfo": { "username": "alice" },
                    "object": { "metadata": { "name": name } }
                }
            }))
            .unwrap()
        };

        let (status, body) = send(address, &ca, Method::POST, "/validate", &review("admin"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["response"]["uid"], "uid-admin");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 403);

        for (body, expected) in [
            (
                &b""[..],
                "request body is not an AdmissionReview: the body is empty",
            ),
            (
                b"{not json",
                "request body is not an AdmissionReview: key must be a string",
            ),
            (b"{}", "unsupported review"),
        ] {
            let (status, text) = send(address, &ca, Method::POST, "/validate", body)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
            assert!(text.starts_with(expected), "{text:?}");
        }
        let (status, _) = send(address, &ca, Method::GET, "/validate", b"")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        // Still answering.
        let (status, body) = send(address, &ca, Method::POST, "/validate", &review("acme"))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["response"]["allowed"], true);

        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_missing_certificate_names_the_file() {
        let empty = tempfile::tempdir().unwrap();
        let error = WebhookServer::bind(LOOPBACK, empty.path(), Router::new())
            .await
            .unwrap_err();
        let expected = format!(
            "reading the webhook TLS file {}",
            empty.path().join(CERT_FILE).display()
        );
        assert!(error.to_string().starts_with(&expected), "{error}");
    }

    #[tokio::test]
    async fn a_taken_port_names_the_address() {
        let (dir, _) = certs();
        let taken = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let address = BindAddress::Exact(taken.local_addr().unwrap());
        let error = WebhookServer::bind(address, dir.path(), Router::new())
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("binding the webhook server to {address}: ")),
            "{error}"
        );
    }
}
