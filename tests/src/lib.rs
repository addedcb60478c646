//! End-to-end test harness: a real `kcp start` and a real `openfga run`, each started once per
//! test binary as a child process on free loopback ports, and stopped when the test binary
//! exits, whether the tests passed, panicked, or the binary was killed.
//!
//! Tests share the servers and isolate themselves: each kcp test works in its own private
//! workspace subtree ([`Kcp::private_workspace`]), each OpenFGA test in its own store.

mod accounts;
mod authz;
mod binaries;
mod child;
pub mod demo;
mod kcp;
pub mod keycloak;
mod kill;
mod openfga;
mod pki;
mod platform_mesh;
mod process;
mod proxy;
pub mod scoped;
pub mod sharded;
pub mod smtp;
mod widgets;

pub use accounts::{
    account_condition, assert_one_workspace_each, create_accounts, delete_account, is_ready,
    new_account, ready_account, workspace_of,
};
pub use authz::{AuthorizingKcp, USERS};
pub use binaries::{binary, build_binary, build_demo_binaries, next_to_this_program};
pub use child::OperatorChild;
pub use kcp::{
    Kcp, TestWorkspace, create_workspace, names, universal, wait_for, wait_for_within, wait_gone,
    when_found, when_served,
};
pub use kill::{random_in, until_count};
pub use openfga::OpenFga;
pub use platform_mesh::{
    PlatformExport, SECURITY_TYPE, SYSTEM_PATH, root_type, set_up_platform, set_up_platform_on,
};
pub use process::{ServerProcess, free_port, memory_mib};
pub use proxy::TcpProxy;
pub use widgets::{
    WIDGETS_EXPORT, bind_widgets, create_widgets_export, widget_provider, widgets_binding,
};

/// A self-signed serving certificate for 127.0.0.1 written into `dir` as `tls.crt` and
/// `tls.key`, as a webhook serves it; returns its PEM (its own CA).
pub fn serving_cert(dir: &std::path::Path) -> Result<String, String> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .map_err(|e| format!("a serving certificate: {e}"))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    for (file, pem) in [
        ("tls.crt", cert.cert.pem()),
        ("tls.key", cert.signing_key.serialize_pem()),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(cert.cert.pem())
}

/// The Secret cert-manager writes for a certificate, reduced to what its readers take: the
/// CA (`ca.crt`) as PEM.
pub fn ca_secret(name: &str, pem: &str) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::core::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            "ca.crt".to_owned(),
            k8s_openapi::ByteString(pem.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Sends the code under test's logs to the test output, filtered by `RUST_LOG` (default:
/// warnings, without kube's line for each non-2xx answer: the caller gets that answer as an
/// error anyway, and kcp's `/readyz` answers 500 a few dozen times while it starts). Called by
/// the server fixtures; harmless to call again.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Runs `task` on a thread and Tokio runtime of its own, so that it outlives the test that
/// started it (every test has its own runtime); it stops with the test binary.
pub fn run_detached<F, Fut>(task: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("building a Tokio runtime: {e}"));
        runtime.block_on(task());
    });
}

/// A plain HTTP/1.1 GET on loopback; the status code and the body, or `None` while nothing
/// listens (probes of an operator's ops server).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

/// Polls `probe` every 250 ms until it returns `Some`, for at most two minutes; panics naming
/// `what` after that. For waits no watch can express (OpenFGA's answers, HTTP status codes).
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// A unique suffix for names of objects a test creates (lowercase, DNS-safe).
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // The counter makes names unique within this process, the time and pid across processes;
    // the `x`, which no hex digit is, keeps the two apart (without it, `…f09` then counter 6
    // and `…f0` then counter 0x66 would read the same).
    format!(
        "{:x}x{:x}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos ^ std::process::id()
    )
}
