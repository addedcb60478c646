//! account-operator: parses flags and runs [`account_operator::app::run`] until SIGTERM.

use std::process::ExitCode;

use account_operator::app::{BINARY, run};
use account_operator::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = kit::cli::parse(BINARY.env_prefix);
    let operator = config.operator.clone();
    kit::process::main(BINARY, &operator, |stop| run(config, stop)).await
}
