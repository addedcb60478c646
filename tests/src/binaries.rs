//! The workspace's own binaries, for scenarios and benchmarks that run them as processes.
//!
//! Cargo names a package's binaries to its tests (`CARGO_BIN_EXE_<name>`), but not to its
//! examples, to other packages' tests or to other binaries, and `cargo run` builds only the
//! binary it runs: a benchmark or the demo builds the binaries it needs with [`build_binary`]
//! into its own profile directory, where [`binary`] finds them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary `name`: `cargo_names` (the caller's `option_env!("CARGO_BIN_EXE_<name>")`)
/// in a test, else `target/<profile>/<name>` of the running program.
pub fn binary(name: &str, cargo_names: Option<&str>) -> PathBuf {
    if let Some(path) = cargo_names {
        return PathBuf::from(path);
    }
    profile_dir()
        .map(|dir| dir.join(name))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The workspace binary `name` in the running program's profile directory, where a `cargo
/// build` of its package put it; `Err` says how to build it when it is not there.
pub fn next_to_this_program(name: &str) -> Result<PathBuf, String> {
    let path = profile_dir()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: `cargo xtask demo` builds it (or `cargo build -p {name}`)",
            path.display()
        ))
    }
}

/// Builds binary `name` of `package` into the running program's profile and target
/// directory, and returns its path.
pub fn build_binary(package: &str, name: &str) -> Result<PathBuf, String> {
    cargo_build(&["-p", package, "--bin", name])?;
    let binary = profile_dir()?.join(name);
    if !binary.is_file() {
        return Err(format!("{} was not built", binary.display()));
    }
    Ok(binary)
}

/// The binaries the demo runs, built as `cargo xtask demo` builds them (one command, so the
/// same features and no rebuild), next to the running program.
pub fn build_demo_binaries() -> Result<(), String> {
    let mut args = vec!["--bins"];
    args.extend(xtask::DEMO_PACKAGES.iter().flat_map(|p| ["-p", *p]));
    cargo_build(&args)
}

/// `cargo build --quiet <args>` of this workspace into the running program's profile and
/// target directory.
fn cargo_build(args: &[&str]) -> Result<(), String> {
    let profile_dir = profile_dir()?;
    let target_dir = profile_dir
        .parent()
        .ok_or("the profile directory has no parent")?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the profile directory has no name")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
        .args(args)
        .arg("--target-dir")
        .arg(target_dir);
    match profile {
        "debug" => {}
        "release" => {
            build.arg("--release");
        }
        other => {
            build.args(["--profile", other]);
        }
    }
    let status = build
        .status()
        .map_err(|e| format!("running {build:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{build:?} failed: {status}"))
    }
}

/// `target/<profile>`: where the running program is, or the parent of its `examples/` (an
/// example) or `deps/` (a test).
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this program: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    let profile = if dir
        .file_name()
        .is_some_and(|n| n == "examples" || n == "deps")
    {
        dir.parent()
    } else {
        Some(dir)
    };
    profile
        .filter(|d| d.parent().is_some_and(|t| t.join("CACHEDIR.TAG").is_file()))
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "{} is not in a cargo target directory; run it with cargo (`cargo xtask bench`, `cargo xtask demo`)",
                exe.display()
            )
        })
}
