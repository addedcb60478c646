//! A TCP proxy (to kcp, to OpenFGA) that a test can cut (every connection dropped, new ones
//! closed at once) and restore: an outage as a client sees it, without stopping the shared
//! server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::Kcp;

/// A proxy to a server on a free loopback port; it runs until the test binary ends.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where it listens.
    pub address: SocketAddr,
    upstream: SocketAddr,
    cut: Arc<AtomicBool>,
    cutting: Arc<Notify>,
}

impl TcpProxy {
    /// A proxy to the shared kcp (its TLS certificate names 127.0.0.1, so it stays valid).
    pub async fn to_kcp(kcp: &Kcp) -> Self {
        Self::to(kcp_address(kcp)).await
    }

    /// A proxy to `upstream`.
    pub async fn to(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding the proxy: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy's address: {e}"));
        let cut = Arc::new(AtomicBool::new(false));
        let cutting = Arc::new(Notify::new());
        let (cut_flag, cut_notify) = (cut.clone(), cutting.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut_flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let cutting = cut_notify.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cutting.notified() => {}
                    }
                });
            }
        });
        Self {
            address,
            upstream,
            cut,
            cutting,
        }
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through again.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.cutting.notify_waiters();
        }
    }

    /// The kubeconfig `from` (one of kcp's) with its server behind this proxy, written next
    /// to it as `file_name`.
    pub fn kubeconfig(&self, from: &Path, file_name: &str) -> PathBuf {
        let text = std::fs::read_to_string(from)
            .unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        let path = from.with_file_name(file_name);
        let proxied = text.replace(&self.upstream.to_string(), &self.address.to_string());
        std::fs::write(&path, proxied)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

/// The address of kcp's API server, from the `server:` lines of its kubeconfig.
fn kcp_address(kcp: &Kcp) -> SocketAddr {
    let text = std::fs::read_to_string(kcp.kubeconfig())
        .unwrap_or_else(|e| panic!("reading kcp's kubeconfig: {e}"));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("no server address in kcp's kubeconfig"))
}
