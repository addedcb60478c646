//! account-operator: parses flags and runs [`account_operator::app::run`] until SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use account_operator::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = kit::telemetry::init_tracing(&config.log_level, !config.no_json) {
        eprintln!("account-operator: {e}");
        return ExitCode::FAILURE;
    }
    let stop = CancellationToken::new();
    if let Err(e) = kit::shutdown::cancel_on_signal(stop.clone()) {
        eprintln!("account-operator: cannot listen for SIGTERM: {e}");
        return ExitCode::FAILURE;
    }
    match account_operator::app::run(config, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "account-operator failed");
            eprintln!("account-operator: {e}");
            ExitCode::FAILURE
        }
    }
}
