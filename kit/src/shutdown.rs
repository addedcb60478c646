//! Graceful shutdown on SIGTERM or SIGINT.
//!
//! The pattern: one root [`CancellationToken`] per process, cancelled by
//! [`cancel_on_signal`]; every long-running task takes a child token (`token.child_token()`)
//! and returns when it is cancelled; `main` awaits the tasks, bounded by the shutdown timeout.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let token = tokio_util::sync::CancellationToken::new();
//! kit::shutdown::cancel_on_signal(token.clone())?;
//! let worker = tokio::spawn({
//!     let token = token.child_token();
//!     async move { token.cancelled().await /* stop watching, drain the queue */ }
//! });
//! token.cancelled().await;
//! let _ = tokio::time::timeout(std::time::Duration::from_secs(60), worker).await;
//! # Ok(()) }
//! ```

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (Kubernetes stopping the pod).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

/// Handlers for SIGTERM and SIGINT, installed when created: from then on these signals no
/// longer kill the process, they complete [`ShutdownSignal::recv`].
#[derive(Debug)]
pub struct ShutdownSignal {
    terminate: Signal,
    interrupt: Signal,
}

impl ShutdownSignal {
    /// Installs the handlers (needs a Tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Completes on the next SIGTERM or SIGINT.
    pub async fn recv(mut self) -> StopSignal {
        tokio::select! {
            _ = self.terminate.recv() => StopSignal::Terminate,
            _ = self.interrupt.recv() => StopSignal::Interrupt,
        }
    }
}

/// Installs the handlers now and cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let signal = ShutdownSignal::new()?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            received = signal.recv() => {
                tracing::info!(signal = ?received, "shutting down");
                token.cancel();
            }
            () = token.cancelled() => {}
        }
    }))
}
