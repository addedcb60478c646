//! Each of the four binaries given a kubeconfig it cannot use. A kubeconfig file that does not
//! exist ends the process at once with status 1 and a message naming the flag and the file. A
//! kubeconfig whose server is a closed loopback port keeps the process running, alive
//! (`/healthz` 200) and not ready (`/readyz` 503), its log saying why, until the server
//! answers. No binary panics.
//!
//! Once a watch has been failing for longer than the grace of 15 s, `/readyz` names it and
//! the connection failure, as the log does.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{ServerProcess, free_port, http_get};

/// A binary, its flags besides the kubeconfig and the ops servers, and the first controller
/// its `/readyz` names.
struct Binary {
    name: &'static str,
    args: Vec<String>,
    controller: &'static str,
}

/// The four binaries, every other dependency of theirs on a closed port too, with what they
/// need to get as far as connecting (the webhook's serving certificate).
fn binaries(dir: &Path, closed: u16, usable_kubeconfig: &Path) -> Vec<Binary> {
    harness::serving_cert(&dir.join("webhook-certs")).unwrap();
    vec![
        Binary {
            name: "account-operator",
            args: Vec::new(),
            controller: "AccountReconciler",
        },
        Binary {
            name: "security-operator",
            args: vec![
                "fga,initializer,terminator,model-generator,system".to_owned(),
                format!("--fga-target=127.0.0.1:{closed}"),
            ],
            controller: "store",
        },
        Binary {
            name: "rebac-authz-webhook",
            args: vec![
                "serve".to_owned(),
                format!("--openfga-addr=127.0.0.1:{closed}"),
                format!("--webhook-cert-dir={}", dir.join("webhook-certs").display()),
                format!("--webhook-bind-address=127.0.0.1:{}", free_port()),
            ],
            controller: "logicalclusters",
        },
        Binary {
            name: "platform-mesh-operator",
            // Its second kubeconfig, for kcp, points nowhere too.
            args: vec![
                "operator".to_owned(),
                format!("--kcp-kubeconfig={}", usable_kubeconfig.display()),
            ],
            controller: "PlatformMeshReconciler",
        },
    ]
}

/// The four binaries, built as the demo builds them, next to this test.
fn built(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| harness::build_demo_binaries().unwrap());
    harness::binary(name, None)
}

/// A kubeconfig whose server is `https://127.0.0.1:<port>`, with a token and its CA inline (the
/// account-operator needs a CA, the platform-mesh-operator its data inline).
fn kubeconfig_to(dir: &Path, port: u16) -> PathBuf {
    let pem = harness::serving_cert(&dir.join("ca")).unwrap();
    // ByteString is base64 in JSON.
    let ca = serde_json::to_value(k8s_openapi::ByteString(pem.into_bytes())).unwrap();
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "nowhere", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": ca,
        }}],
        "users": [{"name": "nobody", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nobody"}}],
        "current-context": "nowhere",
    });
    let path = dir.join("nowhere.kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&kubeconfig).unwrap()).unwrap();
    path
}

/// The flags every binary gets: text logs, ops servers on loopback.
fn ops_flags(health_port: u16) -> Vec<String> {
    vec![
        "--no-json".to_owned(),
        "--metrics-bind-address=127.0.0.1:0".to_owned(),
        format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
    ]
}

/// Runs `binary` with `args` to its end (killed after two minutes, which fails the test):
/// its exit code and stderr.
fn run_to_the_end(binary: &Path, args: &[String]) -> (Option<i32>, String) {
    let mut child = Command::new(binary)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} did not exit", binary.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_kubeconfig_file_that_does_not_exist_ends_each_binary_naming_the_flag_and_the_file() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let nowhere = kubeconfig_to(dir.path(), free_port());
    let missing = dir.path().join("missing.kubeconfig");
    let mut cases = Vec::new();
    for binary in binaries(dir.path(), free_port(), &nowhere) {
        cases.push((binary.name, binary.args.clone(), "--kubeconfig"));
    }
    // The platform-mesh-operator's kcp kubeconfig, missing while its own is there.
    cases.push((
        "platform-mesh-operator",
        vec![
            "operator".to_owned(),
            format!("--kubeconfig={}", nowhere.display()),
        ],
        "--kcp-kubeconfig",
    ));
    for (name, mut args, flag) in cases {
        args.push(format!("{flag}={}", missing.display()));
        args.extend(ops_flags(0));
        let (code, stderr) = run_to_the_end(&built(name), &args);
        assert_eq!(code, Some(1), "{name} {flag}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name} {flag}: {stderr}");
        let path = missing.display();
        assert_eq!(
            stderr.lines().last(),
            Some(
                format!(
                    "{name}: {flag} {path}: failed to read kubeconfig from '\"{path}\"': No such \
                     file or directory (os error 2)"
                )
                .as_str()
            ),
            "{name} {flag}: {stderr}"
        );
    }
    eprintln!(
        "5 missing kubeconfig files, 4 binaries: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kubeconfig_pointing_at_a_closed_port_keeps_each_binary_alive_and_not_ready() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let nowhere = kubeconfig_to(dir.path(), closed);
    let mut running = Vec::new();
    for binary in binaries(dir.path(), closed, &nowhere) {
        let port = free_port();
        let mut args = binary.args.clone();
        args.push(format!("--kubeconfig={}", nowhere.display()));
        args.extend(ops_flags(port));
        let process =
            ServerProcess::start(binary.name, &built(binary.name), &args, dir.path(), false)
                .unwrap();
        running.push((binary, process, port));
    }
    for (binary, process, port) in &running {
        let name = binary.name;
        // It tried, failed and retried: its log says so, with the cause.
        harness::eventually(&format!("{name} retrying its watches"), || async {
            let log = process.log_tail(usize::MAX);
            assert!(
                !process.exited(),
                "{name} exited:\n{}",
                process.log_tail(20)
            );
            (log.matches("watch failed; retrying").count() >= 3).then_some(log)
        })
        .await;
        let log = process.log_tail(usize::MAX);
        assert!(log.contains("client error (Connect)"), "{name}:\n{log}");
        let prefix = format!("not ready: {}: the watch of ", binary.controller);
        let readyz = harness::eventually(&format!("{name}'s /readyz naming the failure"), || {
            let prefix = prefix.clone();
            async move {
                http_get(*port, "/readyz")
                    .await
                    .filter(|(code, body)| *code == 503 && body.starts_with(&prefix))
                    .map(|(_, body)| body)
            }
        })
        .await;
        assert!(
            readyz.contains("has been failing for") && readyz.contains("client error (Connect)"),
            "{name}: {readyz}"
        );
        assert_eq!(
            http_get(*port, "/healthz").await,
            Some((200, "ok".to_owned())),
            "{name}"
        );
        assert!(
            !process.exited(),
            "{name} exited:\n{}",
            process.log_tail(20)
        );
        assert!(!log.contains("panicked"), "{name}:\n{log}");
    }
    eprintln!(
        "4 binaries on a closed port: alive and not ready; {:?}",
        started.elapsed()
    );
}
