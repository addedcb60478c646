//! rebac-authz-webhook: parses flags and runs [`rebac_authz_webhook::app::run`] until SIGTERM.

use std::process::ExitCode;

use rebac_authz_webhook::app::{BINARY, run};
use rebac_authz_webhook::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = kit::cli::parse(BINARY.env_prefix);
    let operator = config.operator.clone();
    kit::process::main(BINARY, &operator, |stop| run(config, stop)).await
}
