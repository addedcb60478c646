//! platform-mesh-operator: parses flags and runs [`platform_mesh_operator::app::run`] until
//! SIGTERM.

use std::process::ExitCode;

use platform_mesh_operator::app::{BINARY, run};
use platform_mesh_operator::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = kit::cli::parse(BINARY.env_prefix);
    let operator = config.operator.clone();
    kit::process::main(BINARY, &operator, |stop| run(config, stop)).await
}
