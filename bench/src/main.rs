//! `platform-mesh-bench`: see the library docs; `cargo xtask bench` runs it in release mode.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Our account-operator, upstream's Go operator and kcp's floor, side by side")]
struct Args {
    #[command(flatten)]
    plan: bench::Plan,
    /// Tiny counts (overrides the counts above): the test suite's run, so the harness cannot rot.
    #[arg(long)]
    smoke: bool,
    /// Where the table, the JSON, the SVG and the operators' logs go.
    #[arg(long, default_value = "target/bench")]
    out: std::path::PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let plan = if args.smoke {
        bench::Plan::smoke()
    } else {
        args.plan
    };
    match bench::write(plan, &args.out).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
