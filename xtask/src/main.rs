//! `cargo xtask <task>`: the project's developer tasks.
//!
//! - `deps`: build the pinned Go programs (kcp, OpenFGA, helm, upstream's account-operator)
//!   and fetch and build Keycloak, into the machine-wide cache.
//! - `crds`: regenerate `crds/generated/` from the Rust API types.
//! - `ci`:   what CI runs: deps, format check, clippy with `-D warnings`, every test (the demo's
//!   check mode among them).
//! - `bench`: our account-operator side by side with upstream's and kcp's floor
//!   (`platform-mesh-bench`, in release mode, flags passed on); `bench components`: the
//!   component benchmarks. They print figures and assert nothing.
//! - `demo`: the whole platform on this machine, until Ctrl-C (`--check`: to the end, then stop).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use xtask::{
    ALL, COMPLETE_MARKER, DEMO_PACKAGES, Distribution, KCP, KEYCLOAK, Tool, cache_root, repo_root,
};

const USAGE: &str = "usage: cargo xtask <deps|crds|ci|bench [flags|components]|demo [--check]>
  deps  build kcp, OpenFGA, helm and upstream's account-operator from the Go module proxy,
        and Keycloak from Maven Central, into the machine-wide cache
  crds  regenerate crds/generated/ from the Rust API types
  ci    deps, cargo fmt --check, cargo clippy -D warnings, cargo test (what .ci/run runs)
  bench our account-operator side by side with upstream's and kcp's floor, release builds
        (flags go to platform-mesh-bench: `bench --help` lists them); `bench components`:
        the component benchmarks (fga, runtime, security-operator, webhook, first org)
  demo  kcp, OpenFGA and the operators on this machine, an org and an account made with
        kubectl, until Ctrl-C; --check runs every step to the end and stops";

type TaskResult = Result<(), String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("deps") => deps(),
        Some("crds") => crds(),
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?}\n{USAGE}")),
        None => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> TaskResult {
    let started = Instant::now();
    step("build the pinned Go programs", deps)?;
    step("cargo fmt --check", || {
        cargo(&["fmt", "--all", "--", "--check"])
    })?;
    step("cargo clippy -D warnings", || {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    let mut totals = TestTotals::default();
    step("cargo test", || cargo_test(&mut totals))?;
    println!("xtask ci: all steps passed in {}", human(started.elapsed()));
    println!("{}", totals.summary());
    Ok(())
}

/// Passed, failed and ignored counts over every test binary of a `cargo test` run.
#[derive(Debug, Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds the counts of a libtest line `test result: ok. 3 passed; 0 failed; 1 ignored; …`.
    fn add_result_line(&mut self, line: &str) {
        let Some(counts) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }

    /// The closing line CI reads: `tests: N passed, N failed, N skipped`.
    fn summary(&self) -> String {
        format!(
            "tests: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.ignored
        )
    }
}

/// Every test of the workspace: the test binaries built at once, then run [`test_jobs`] at
/// a time (most tests wait on kcp, not on the CPU), each one's output printed whole when it
/// ends; then the doc tests. Every binary runs even after one fails, as with
/// `--no-fail-fast`, so that one CI run reports every failure.
fn cargo_test(totals: &mut TestTotals) -> TaskResult {
    let binaries = build_test_binaries()?;
    let jobs = test_jobs();
    println!("running {} test binaries, {jobs} at a time", binaries.len());
    let queue = std::sync::Mutex::new(binaries.into_iter());
    let results = std::sync::Mutex::new((TestTotals::default(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().map(|mut q| q.next()).ok().flatten();
                    let Some(binary) = next else { break };
                    let outcome = binary.run();
                    // Printed under the lock, so that two binaries' outputs never interleave.
                    let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
                    println!("     Running {}", binary.label);
                    let output = match &outcome {
                        Ok(output) => output.as_str(),
                        Err(error) => error.as_str(),
                    };
                    for line in output.lines() {
                        println!("{line}");
                        results.0.add_result_line(line);
                    }
                    if outcome.is_err() {
                        results.1.push(binary.label.clone());
                    }
                }
            });
        }
    });
    let (binary_totals, failed) = results.into_inner().unwrap_or_else(|p| p.into_inner());
    *totals = binary_totals;
    let doc = doc_tests(totals);
    if failed.is_empty() && doc.is_ok() {
        return Ok(());
    }
    println!("{}", totals.summary());
    let mut why: Vec<String> = failed.iter().map(|f| format!("{f} failed")).collect();
    why.extend(doc.err());
    Err(why.join("; "))
}

/// How many test binaries run at once: the machine's cores, at most 4 (each binary may run
/// its own kcp), `PM_TEST_JOBS` to choose.
fn test_jobs() -> usize {
    std::env::var("PM_TEST_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        })
        .max(1)
}

/// A built test binary and how cargo would run it.
struct TestBinary {
    executable: PathBuf,
    /// The package's directory: the working directory cargo runs its tests in.
    package_dir: PathBuf,
    package: String,
    /// `tests/kcp.rs (target/debug/deps/kcp-…)`, as cargo names it.
    label: String,
}

impl TestBinary {
    /// Runs the binary as `cargo test` would (its package's directory, cargo's variables),
    /// and returns its output, stdout and stderr together; an error carries the output too.
    fn run(&self) -> Result<String, String> {
        let log = self.executable.with_extension("xtask-output");
        let file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let stderr = file
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let status = Command::new(&self.executable)
            .current_dir(&self.package_dir)
            .env("CARGO_MANIFEST_DIR", &self.package_dir)
            .env("CARGO_PKG_NAME", &self.package)
            .stdout(file)
            .stderr(stderr)
            .status();
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        match status {
            Ok(status) if status.success() => Ok(output),
            Ok(status) => Err(format!("{output}\n{} exited with {status}", self.label)),
            Err(e) => Err(format!("cannot start {}: {e}", self.executable.display())),
        }
    }
}

/// `cargo test --workspace --no-run`: builds every test binary and returns them, from
/// cargo's JSON messages (its human-readable progress goes to stderr as usual).
fn build_test_binaries() -> Result<Vec<TestBinary>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["test", "--workspace", "--locked", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .current_dir(repo_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start cargo test --no-run: {e}"))?;
    if !output.status.success() {
        return Err(format!("building the tests failed: {}", output.status));
    }
    let root = repo_root();
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(executable), Some(manifest), Some(source)) = (
            message["executable"].as_str(),
            message["manifest_path"].as_str(),
            message["target"]["src_path"].as_str(),
        ) else {
            continue;
        };
        if message["profile"]["test"] != serde_json::Value::Bool(true) {
            continue;
        }
        let package_dir = Path::new(manifest)
            .parent()
            .ok_or_else(|| format!("{manifest} has no directory"))?
            .to_path_buf();
        let source = Path::new(source);
        let kind = if message["target"]["kind"][0] == "test" {
            source
                .strip_prefix(&package_dir)
                .unwrap_or(source)
                .display()
                .to_string()
        } else {
            format!(
                "unittests {}",
                source
                    .strip_prefix(&package_dir)
                    .unwrap_or(source)
                    .display()
            )
        };
        let executable = PathBuf::from(executable);
        let shown = executable.strip_prefix(&root).unwrap_or(&executable);
        binaries.push(TestBinary {
            label: format!("{kind} ({})", shown.display()),
            package: message["package_id"]
                .as_str()
                .and_then(package_name)
                .unwrap_or_default(),
            executable,
            package_dir,
        });
    }
    Ok(binaries)
}

/// The package name in a cargo package id: `path+file:///…/tests#platform-mesh-tests@0.1.0`
/// or `…/xtask#0.1.0` (where the directory is the name).
fn package_name(id: &str) -> Option<String> {
    let (path, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name.to_owned()),
        None => path.rsplit('/').next().map(str::to_owned),
    }
}

/// `cargo test --doc`, echoing its output and adding up its results.
fn doc_tests(totals: &mut TestTotals) -> TaskResult {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut child = Command::new(cargo)
        .args(["test", "--workspace", "--locked", "--doc"])
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start cargo test --doc: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("cargo test --doc has no stdout")?;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        totals.add_result_line(&line);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo test --doc: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the doc tests failed: {status}"))
    }
}

/// The component benchmarks `cargo xtask bench components` runs, in release mode: (package,
/// example, what it shows).
const BENCHMARKS: &[(&str, &str, &str)] = &[
    (
        "platform-mesh-fga",
        "parse_speed",
        "DSL parse time of the largest models",
    ),
    (
        "platform-mesh-tests",
        "reconcile_latency",
        "change-to-reconcile latency of the runtime on a real kcp",
    ),
    (
        "platform-mesh-fga",
        "sync_throughput",
        "tuple-sync throughput on a real OpenFGA, next to a plain write loop",
    ),
    // Builds and starts the security-operator binary itself (`cargo run --example` builds
    // the package's library only).
    (
        "security-operator",
        "initializer_latency",
        "time the security initializer adds to Ready; org teardown with 50 accounts",
    ),
    (
        "rebac-authz-webhook",
        "decision_throughput",
        "authorization decisions per second and p50/p99 through the webhook, next to OpenFGA's Check",
    ),
    (
        "platform-mesh-operator",
        "first_org",
        "fresh kcp to the first org Account Ready, with the platform-mesh-operator doing the setup",
    ),
];

fn bench(args: &[String]) -> TaskResult {
    let started = Instant::now();
    step(
        "build kcp, OpenFGA and upstream's account-operator (once per machine)",
        deps,
    )?;
    if args.first().map(String::as_str) == Some("components") {
        if let Some(other) = args.get(1) {
            return Err(format!(
                "bench components takes no flags, not {other:?}\n{USAGE}"
            ));
        }
        for (package, example, what) in BENCHMARKS {
            step(what, || {
                cargo(&[
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    package,
                    "--example",
                    example,
                ])
            })?;
        }
    } else {
        step(
            "side by side: our account-operator, upstream's and kcp's floor on one kcp",
            || {
                let mut run = vec![
                    "run",
                    "--release",
                    "--quiet",
                    "-p",
                    "platform-mesh-bench",
                    "--",
                ];
                run.extend(args.iter().map(String::as_str));
                cargo(&run)
            },
        )?;
    }
    println!("benchmarks done in {}", human(started.elapsed()));
    Ok(())
}

/// `cargo build` of [`DEMO_PACKAGES`]' binaries.
fn demo_build() -> TaskResult {
    let mut args = vec!["build", "--bins"];
    args.extend(DEMO_PACKAGES.iter().flat_map(|p| ["-p", p]));
    cargo(&args)
}

/// `cargo run` of the demo with `args`.
fn demo_command(args: &[String]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args([
            "run",
            "--quiet",
            "-p",
            "platform-mesh-tests",
            "--bin",
            "platform-mesh-demo",
            "--",
        ])
        .args(args)
        .current_dir(repo_root());
    command
}

/// Builds what the demo needs (the Go programs, the operators, the demo), then becomes the
/// demo (`exec`), so that Ctrl-C reaches it alone and it stops what it started.
fn demo(args: &[String]) -> TaskResult {
    if let Some(other) = args.iter().find(|a| *a != "--check") {
        return Err(format!("demo takes only --check, not {other:?}\n{USAGE}"));
    }
    step("build kcp, OpenFGA and kubectl (once per machine)", deps)?;
    step("build the operators and the demo", demo_build)?;
    let error = std::os::unix::process::CommandExt::exec(&mut demo_command(args));
    Err(format!("cannot start the demo: {error}"))
}

fn crds() -> TaskResult {
    cargo(&[
        "run",
        "--quiet",
        "-p",
        "platform-mesh-crds",
        "--bin",
        "crdgen",
        "--",
        "write",
    ])
}

fn step(name: &str, run: impl FnOnce() -> TaskResult) -> TaskResult {
    println!("==> {name}");
    let started = Instant::now();
    let result = run();
    let verdict = if result.is_ok() { "ok" } else { "FAILED" };
    println!("<== {name}: {verdict} in {}", human(started.elapsed()));
    result.map_err(|e| format!("{name}: {e}"))
}

fn cargo(args: &[&str]) -> TaskResult {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo).args(args).current_dir(repo_root()))
}

fn run(command: &mut Command) -> TaskResult {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{:?} failed: {status}", command.get_program()))
    }
}

fn deps() -> TaskResult {
    check_go()?;
    for tool in ALL {
        build_tool(tool)?;
    }
    install_distribution(&KEYCLOAK)
}

/// Downloads `dist` from Maven Central, checks its SHA-256, unpacks it and runs its build,
/// into its install directory; nothing to do when that is complete already.
fn install_distribution(dist: &Distribution) -> TaskResult {
    let dir = dist.install_dir();
    if dir.join(COMPLETE_MARKER).is_file() {
        println!(
            "{} {}: up to date in {}",
            dist.name,
            dist.version,
            dir.display()
        );
        return Ok(());
    }
    check_java()?;
    let started = Instant::now();
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .map_err(|e| format!("removing {}: {e}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .map_err(|e| format!("creating {}: {e}", partial.display()))?;
    let archive = partial.join("download.zip");
    download(dist, &archive)?;
    unpack(dist, &archive, &partial)?;
    std::fs::remove_file(&archive).map_err(|e| format!("removing {}: {e}", archive.display()))?;
    println!(
        "{}: its one-time configuration build (a few minutes on two cores)",
        dist.name
    );
    let (program, args) = dist.build.split_first().ok_or("empty build command")?;
    run(Command::new(partial.join(program))
        .args(args)
        .current_dir(&partial))?;
    std::fs::write(partial.join(COMPLETE_MARKER), format!("{}\n", dist.version))
        .map_err(|e| format!("writing the completion marker: {e}"))?;
    std::fs::rename(&partial, &dir).map_err(|e| format!("moving the build into place: {e}"))?;
    println!(
        "{} {}: built in {} into {}",
        dist.name,
        dist.version,
        human(started.elapsed()),
        dir.display()
    );
    Ok(())
}

fn check_java() -> TaskResult {
    let output = Command::new("java").arg("-version").output().map_err(|e| {
        format!(
            "`java` is not on PATH ({e}); Keycloak needs Java 17 or newer (your distribution's \
             OpenJDK package), then run `cargo xtask deps` again"
        )
    })?;
    // `java -version` writes to stderr.
    let version = String::from_utf8_lossy(&output.stderr);
    println!("using {}", version.lines().next().unwrap_or("java"));
    Ok(())
}

/// Streams `dist`'s archive into `to`, showing progress every tenth, and refuses it unless
/// its SHA-256 is the pinned one.
fn download(dist: &Distribution, to: &Path) -> TaskResult {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Write};

    let url = dist.url();
    // The machine's trust store: egress may go through a proxy with a CA of its own.
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent = ureq::Agent::new_with_config(ureq::Agent::config_builder().tls_config(tls).build());
    let mut response = agent
        .get(&url)
        .call()
        .map_err(|e| format!("downloading {url}: {e}"))?;
    let total = response.body().content_length();
    let size = total.map_or_else(String::new, |t| format!(" ({} MB)", t / 1_000_000));
    println!("{}: downloading {url}{size}", dist.name);
    let mut body = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut file =
        std::fs::File::create(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let mut hasher = Sha256::new();
    let (mut done, mut shown) = (0u64, 0u64);
    let mut buffer = vec![0; 1 << 16];
    loop {
        let n = body
            .read(&mut buffer)
            .map_err(|e| format!("downloading {url}: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(|e| format!("writing {}: {e}", to.display()))?;
        done += n as u64;
        if let Some(total) = total.filter(|t| *t > 0) {
            let tenth = done * 10 / total;
            if tenth > shown {
                shown = tenth;
                println!("{}: downloaded {}%", dist.name, tenth * 10);
            }
        }
    }
    let sha256: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sha256 == dist.sha256 {
        Ok(())
    } else {
        Err(format!(
            "{url} has SHA-256 {sha256}, not the pinned {}: refusing it",
            dist.sha256
        ))
    }
}

/// Unpacks the archive's `top_dir` into `into`, keeping each file's Unix mode (the start
/// scripts are executable).
fn unpack(dist: &Distribution, archive: &Path, into: &Path) -> TaskResult {
    use std::os::unix::fs::PermissionsExt;

    let file =
        std::fs::File::open(archive).map_err(|e| format!("opening {}: {e}", archive.display()))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| format!("reading {}: {e}", archive.display()))?;
    println!("{}: unpacking {} files", dist.name, zip.len());
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| format!("reading {}: {e}", archive.display()))?;
        // `enclosed_name` refuses absolute paths and `..`.
        let name = entry.enclosed_name().ok_or_else(|| {
            format!(
                "{} holds an unsafe path {:?}",
                archive.display(),
                entry.name()
            )
        })?;
        let Ok(relative) = name.strip_prefix(dist.top_dir) else {
            return Err(format!(
                "{} holds {} outside {}",
                archive.display(),
                name.display(),
                dist.top_dir
            ));
        };
        let target = into.join(relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&target)
                .map_err(|e| format!("creating {}: {e}", target.display()))?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let mut out = std::fs::File::create(&target)
            .map_err(|e| format!("creating {}: {e}", target.display()))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| format!("unpacking {}: {e}", target.display()))?;
        if let Some(mode) = entry.unix_mode() {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777))
                .map_err(|e| format!("setting the mode of {}: {e}", target.display()))?;
        }
    }
    Ok(())
}

fn check_go() -> TaskResult {
    let output = Command::new("go").arg("version").output().map_err(|e| {
        format!(
            "`go` is not on PATH ({e}); install Go 1.26 or newer (https://go.dev/doc/install, \
             or your distribution's package), then run `cargo xtask deps` again"
        )
    })?;
    println!("using {}", String::from_utf8_lossy(&output.stdout).trim());
    Ok(())
}

fn build_tool(tool: &Tool) -> TaskResult {
    let version = tool.version().map_err(|e| e.to_string())?;
    let dir = tool.install_dir().map_err(|e| e.to_string())?;
    if dir.join(COMPLETE_MARKER).is_file() {
        print_binaries(tool, &version, &dir, "up to date");
        return Ok(());
    }
    let started = Instant::now();
    println!("{} {version}: building into {}", tool.name, dir.display());
    let work = cache_root()
        .join("build")
        .join(dir.file_name().unwrap_or_default());
    let partial = dir.with_extension("partial");
    for stale in [&work, &partial] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .map_err(|e| format!("removing {}: {e}", stale.display()))?;
        }
    }
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;

    let module_dir = tool.module_dir();
    // Only kcp's is large; the others share much of its module cache.
    let size = if tool.name == KCP.name {
        " (the first build fetches about 1 GB)"
    } else {
        ""
    };
    println!("{}: downloading Go modules{size}", tool.name);
    run(go(&module_dir).args(["mod", "download"]))?;

    let mut flags = Vec::new();
    if tool.name == KCP.name {
        flags.push(format!(
            "-modfile={}",
            patched_kcp_modfile(tool, &work)?.display()
        ));
        flags.push(format!("-ldflags={}", kcp_version_ldflags(tool, &version)?));
    }

    let total = count_packages(tool, &module_dir, &flags)?;
    let mut build = go(&module_dir);
    build
        .arg("build")
        .args(&flags)
        .arg("-v")
        .arg("-trimpath")
        .arg("-o")
        .arg(format!("{}/", partial.display()))
        .args(tool.packages);
    run_with_progress(tool.name, build, total)?;

    std::fs::write(partial.join(COMPLETE_MARKER), format!("{version}\n"))
        .map_err(|e| format!("writing the completion marker: {e}"))?;
    std::fs::rename(&partial, &dir).map_err(|e| format!("moving the build into place: {e}"))?;
    let _ = std::fs::remove_dir_all(&work);
    print_binaries(
        tool,
        &version,
        &dir,
        &format!("built in {}", human(started.elapsed())),
    );
    Ok(())
}

fn print_binaries(tool: &Tool, version: &str, dir: &Path, what: &str) {
    for package in tool.packages {
        let name = package.rsplit('/').next().unwrap_or(package);
        println!(
            "{} {version} ({what}): {}",
            tool.name,
            dir.join(name).display()
        );
    }
}

/// A `go` command in the pinning module, built statically and checked against `go.sum`.
fn go(module_dir: &Path) -> Command {
    let mut command = Command::new("go");
    command.current_dir(module_dir).env("CGO_ENABLED", "0");
    // The checksum database does not know every kcp-dev module version the proxy serves;
    // go.sum pins each hash, and is what `go` checks downloads against.
    let nosumdb = match std::env::var("GONOSUMDB") {
        Ok(existing) if !existing.is_empty() => format!("{existing},github.com/kcp-dev/*"),
        _ => "github.com/kcp-dev/*".to_owned(),
    };
    command.env("GONOSUMDB", nosumdb);
    command
}

/// kcp v0.32.3 needs `forwardingregistry.ValidatePathSegmentName` from its staging module
/// virtual-workspace-framework, whose v0.32 tags the module proxy does not serve. This copies
/// the pinned v0.31.2 out of the module cache (checked against go.sum by `go mod download`)
/// into the build directory, adds the one-line shim from `tools/kcp/shim/`, and returns a
/// build-time copy of go.mod that points the module at that copy. See tools/README.md.
fn patched_kcp_modfile(tool: &Tool, work: &Path) -> Result<PathBuf, String> {
    const VWF: &str = "github.com/kcp-dev/virtual-workspace-framework";
    let module_dir = tool.module_dir();
    let output = go(&module_dir)
        .args(["mod", "download", "-json", VWF])
        .output()
        .map_err(|e| format!("go mod download {VWF}: {e}"))?;
    let json = String::from_utf8_lossy(&output.stdout);
    let source = json_string_field(&json, "Dir")
        .ok_or_else(|| format!("go mod download {VWF} gave no directory: {json}"))?;
    let copy = work.join("virtual-workspace-framework");
    run(Command::new("cp").arg("-R").arg(&source).arg(&copy))?;
    run(Command::new("chmod").arg("-R").arg("u+w").arg(&copy))?;
    std::fs::copy(
        module_dir.join("shim/forwardingregistry_validate_name.go"),
        copy.join("pkg/forwardingregistry/zz_platform_mesh_rs_shim.go"),
    )
    .map_err(|e| format!("adding the shim: {e}"))?;

    let modfile = work.join("build.mod");
    for (from, to) in [("go.mod", "build.mod"), ("go.sum", "build.sum")] {
        std::fs::copy(module_dir.join(from), work.join(to))
            .map_err(|e| format!("copying {from}: {e}"))?;
    }
    run(go(&module_dir).args([
        "mod".to_owned(),
        "edit".to_owned(),
        format!("-modfile={}", modfile.display()),
        format!("-replace={VWF}={}", copy.display()),
    ]))?;
    Ok(modfile)
}

/// The version stamp kcp's Makefile sets, so `kcp --version` and `/version` tell the truth.
fn kcp_version_ldflags(tool: &Tool, kcp_version: &str) -> Result<String, String> {
    // The Kubernetes version kcp is built on (kcp's require of k8s.io/kubernetes, e.g.
    // v1.36.0), asked of the module graph rather than parsed from kcp's go.mod by hand.
    let output = go(&tool.module_dir())
        .args(["list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes"])
        .output()
        .map_err(|e| format!("go list k8s.io/kubernetes: {e}"))?;
    let kube = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut parts = kube.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    let git_version = format!("v{major}.{minor}.0+kcp-{kcp_version}");
    let flags = [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ]
    .iter()
    .map(|pkg| {
        format!(
            "-X {pkg}.gitVersion={git_version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
        )
    })
    .collect::<Vec<_>>()
    .join(" ");
    Ok(flags)
}

fn count_packages(tool: &Tool, module_dir: &Path, flags: &[String]) -> Result<usize, String> {
    let output = go(module_dir)
        .arg("list")
        .args(flags.iter().filter(|f| f.starts_with("-modfile")))
        .arg("-deps")
        .args(tool.packages)
        .output()
        .map_err(|e| format!("go list: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "go list -deps failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout.iter().filter(|b| **b == b'\n').count())
}

/// Runs `go build -v`, turning its one-line-per-compiled-package output into a progress line
/// every few seconds (a cold kcp build compiles a few thousand packages).
fn run_with_progress(name: &str, mut command: Command, total: usize) -> TaskResult {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start go build: {e}"))?;
    let stderr = child.stderr.take().ok_or("go build has no stderr")?;
    let mut compiled = 0usize;
    let mut last_report = Instant::now();
    let mut errors = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        // Package paths have no spaces; anything else is a diagnostic worth keeping.
        if line.contains(' ') || line.starts_with('#') {
            eprintln!("{line}");
            errors.push(line);
            continue;
        }
        compiled += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "{name}: compiled {compiled} of at most {total} packages ({})",
                human(started.elapsed())
            );
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for go build: {e}"))?;
    if status.success() {
        println!(
            "{name}: compiled {compiled} packages in {}",
            human(started.elapsed())
        );
        Ok(())
    } else {
        Err(format!(
            "go build of {name} failed ({status}): {}",
            errors.join("\n")
        ))
    }
}

/// The string value of `"field": "..."` in `go ... -json` output (no escapes in paths here).
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":");
    let rest = json.split_once(&key)?.1.trim_start().strip_prefix('"')?;
    Some(rest.split_once('"')?.0.to_owned())
}

fn human(elapsed: Duration) -> String {
    let secs = elapsed.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", elapsed.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_come_from_cargo_package_ids() {
        let named = "path+file:///work/main/tests#platform-mesh-tests@0.1.0";
        assert_eq!(package_name(named).as_deref(), Some("platform-mesh-tests"));
        let unnamed = "path+file:///work/main/xtask#0.1.0";
        assert_eq!(package_name(unnamed).as_deref(), Some("xtask"));
        assert_eq!(package_name("no fragment"), None);
    }

    #[test]
    fn totals_add_up_libtest_result_lines() {
        let mut totals = TestTotals::default();
        totals.add_result_line("test result: ok. 16 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        totals.add_result_line(
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        totals.add_result_line("running 3 tests");
        assert_eq!(totals.summary(), "tests: 17 passed, 2 failed, 2 skipped");
    }
}
