//! platform-mesh-demo: the whole platform on this machine (`cargo xtask demo`); see
//! [`harness::demo`]. `--check` runs it to the end and exits 0 only if every step held.

use std::process::ExitCode;

use clap::Parser;

/// Runs kcp, OpenFGA and the Platform Mesh operators locally, and shows them at work.
#[derive(Debug, Parser)]
#[command(name = "platform-mesh-demo", version, about)]
struct Args {
    /// Run every step to the end, then stop everything; exit 0 only if every step held.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The servers' start-up noise (kcp answering 500 until it is ready) is not the demo's
    // story; RUST_LOG shows it.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match harness::demo::run(harness::demo::Options { check: args.check }).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("platform-mesh-demo: {e}");
            ExitCode::FAILURE
        }
    }
}
