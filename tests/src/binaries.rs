//! The workspace's own binaries, for scenarios and benchmarks that run them as processes.
//!
//! Cargo names a package's binaries to its tests (`CARGO_BIN_EXE_<name>`), but not to its
//! examples, and `cargo run --example` builds no binary: a benchmark builds the binary it
//! needs with [`build_binary`] into its own profile directory, where [`binary`] finds it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary `name`: `cargo_names` (the caller's `option_env!("CARGO_BIN_EXE_<name>")`)
/// in a test, else `target/<profile>/<name>` next to the running example's `examples/`.
pub fn binary(name: &str, cargo_names: Option<&str>) -> PathBuf {
    if let Some(path) = cargo_names {
        return PathBuf::from(path);
    }
    profile_dir()
        .map(|dir| dir.join(name))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Builds binary `name` of `package` into the running example's profile and target
/// directory, and returns its path.
pub fn build_binary(package: &str, name: &str) -> Result<PathBuf, String> {
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
        .args(["-p", package, "--bin", name])
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
    if !status.success() {
        return Err(format!("{build:?} failed: {status}"));
    }
    let binary = profile_dir.join(name);
    if !binary.is_file() {
        return Err(format!("{} was not built", binary.display()));
    }
    Ok(binary)
}

/// `target/<profile>`: the parent of the running example's `examples/`.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this program: {e}"))?;
    exe.parent()
        .filter(|d| d.file_name().is_some_and(|n| n == "examples"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            format!(
                "{} is not in target/<profile>/examples; run benchmarks with `cargo xtask bench`",
                exe.display()
            )
        })
}
