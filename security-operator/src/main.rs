//! security-operator: parses flags and runs [`security_operator::app::run`] until SIGTERM.

use std::process::ExitCode;

use security_operator::app::{ENV_PREFIX, binary, run};
use security_operator::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = kit::cli::parse::<Config>(ENV_PREFIX).with_kcp_kubeconfig();
    let operator = config.operator.clone();
    kit::process::main(binary(&config.roles), &operator, |stop| run(config, stop)).await
}
