//! For the tests of webhook binaries: one HTTPS request to a [`WebhookServer`], verifying its
//! certificate. In the library rather than in each crate's tests so that every webhook
//! binary checks its routes over the same real TLS path with one client.
//!
//! [`WebhookServer`]: super::WebhookServer

use std::net::SocketAddr;

use axum::http::{Method, Request, StatusCode};
use kube::client::Body;
use rustls::pki_types::CertificateDer;

/// Sends `method path` with the JSON `body` to the server at `address`, trusting `ca` (the
/// server's self-signed certificate in tests). Returns the status and the body as text, whatever the
/// status; fails only when no HTTP answer arrives.
pub async fn send(
    address: SocketAddr,
    ca: &CertificateDer<'_>,
    method: Method,
    path: &str,
    body: &[u8],
) -> Result<(StatusCode, String), kube::Error> {
    // kube's client builds its TLS configuration on the process-wide rustls provider.
    kcp::client::install_crypto_provider();
    let url = format!("https://{address}")
        .parse()
        .map_err(|e: axum::http::uri::InvalidUri| kube::Error::HttpError(e.into()))?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(vec![ca.to_vec()]);
    // Each answer as the server sent it: kube's client would retry a 503 by itself.
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .map_err(kube::Error::HttpError)?;
    let response = client.send(request).await?;
    let status = response.status();
    let text = response.into_body().collect_bytes().await?;
    Ok((status, String::from_utf8_lossy(&text).into_owned()))
}
