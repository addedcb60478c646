//! The flags every operator binary takes, as one group flattened into each binary's own
//! (`#[command(flatten)] operator: OperatorArgs`), with the upstream names and defaults so
//! existing charts keep working.
//!
//! Every flag without an environment variable of its own also reads `<PREFIX>_<FLAG>`
//! (`ACCOUNT_OPERATOR_LOG_LEVEL` for `--log-level`), the prefix being the binary's: [`parse`]
//! sets it, since clap's derive fixes `env` names at compile time and the group is shared.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};

use crate::net::BindAddress;

/// The generic flags of an operator binary.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// kubeconfig for kcp; its server is the workspace holding the endpoint source (for
    /// example `root:platform-mesh-system`). Defaults to $KUBECONFIG, then in-cluster.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Context in the kubeconfig to use (default: the current context).
    #[arg(long)]
    pub kubeconfig_context: Option<String>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Log text instead of JSON.
    #[arg(long)]
    pub no_json: bool,

    /// Address of the metrics endpoint (`/metrics`); `:PORT` listens on every interface.
    #[arg(long, default_value = ":9090")]
    pub metrics_bind_address: BindAddress,

    /// Address of the health endpoints (`/healthz`, `/readyz`); `:PORT` listens on every
    /// interface.
    #[arg(long, default_value = ":8090")]
    pub health_probe_bind_address: BindAddress,

    /// Elect a leader on a Lease in the hosting cluster (in-cluster config), so that only one
    /// replica writes.
    #[arg(long)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (set POD_NAMESPACE from the downward API to use
    /// the pod's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "platform-mesh-system")]
    pub leader_election_namespace: String,

    /// How long shutdown waits for running reconciles.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long after its last successful reconcile every object is reconciled again without
    /// an event: the safety net for what no watch shows (a missed event; an OpenFGA store
    /// lost behind the operator's back). `0s`: never.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub resync_period: Duration,

    /// Reconciles running at once, per controller.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// Only reconcile objects whose `debug.platform-mesh.io` label has this value (objects
    /// without the label have the value "").
    #[arg(long, default_value = "")]
    pub debug_label_value: String,

    #[command(flatten)]
    pub upstream: UpstreamArgs,
}

/// The flags of a binary's admission webhook server, with upstream's names; flattened into
/// each binary that serves webhooks, beside the flags of its own decisions.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Serve the admission webhooks.
    #[arg(long)]
    pub webhooks_enabled: bool,

    /// Directory holding the webhook serving certificate (`tls.crt`, `tls.key`).
    #[arg(long, default_value = "certs")]
    pub webhooks_cert_dir: PathBuf,

    /// Port of the webhook server.
    #[arg(long, default_value_t = 9443)]
    pub webhooks_port: u16,
}

/// Flags of upstream's shared Go command line (golang-commons) that upstream's charts pass to
/// every operator. They are accepted so that those charts' arguments keep working, and have no
/// effect here: the servers speak HTTP/1.1 only (what `--enable-http2=false` asks for),
/// metrics are plain HTTP, and traces are not exported (a process asked to export them says so
/// in its log at start).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Accepted for upstream compatibility, without effect")]
pub struct UpstreamArgs {
    /// Deployment environment label (upstream: Sentry and logs).
    #[arg(long, default_value = "")]
    pub environment: String,

    /// Region label (upstream: Sentry and logs).
    #[arg(long, default_value = "local")]
    pub region: String,

    /// Upstream's local-development switch.
    #[arg(long)]
    pub is_local: bool,

    /// Image name label (upstream: Sentry).
    #[arg(long, default_value = "")]
    pub image_name: String,

    /// Image tag label (upstream: Sentry).
    #[arg(long, default_value = "")]
    pub image_tag: String,

    /// Upstream serves metrics over HTTPS when true; metrics here are plain HTTP.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub metrics_secure: bool,

    /// Upstream restricts its servers to HTTP/1.1 when false; the servers here speak HTTP/1.1
    /// only.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_http2: bool,

    /// Upstream exports OpenTelemetry traces when true; not implemented here.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tracing_enabled: bool,

    /// Upstream's trace service name.
    #[arg(long, default_value = "")]
    pub tracing_config_service_name: String,

    /// Upstream's trace service version.
    #[arg(long, default_value = "")]
    pub tracing_config_service_version: String,

    /// Upstream's OTLP gRPC collector endpoint.
    #[arg(long, default_value = "")]
    pub tracing_config_collector_endpoint: String,
}

/// Parses the process's arguments into `T`, giving every flag without an environment variable
/// of its own the variable `<env_prefix>_<FLAG>`; on a bad flag prints clap's message (naming
/// the flag) and exits with status 2, as clap's `parse` does.
pub fn parse<T: CommandFactory + FromArgMatches>(env_prefix: &str) -> T {
    parse_from(env_prefix, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse`] over the given arguments, returning clap's error instead of exiting.
pub fn parse_from<T, I, A>(env_prefix: &str, args: I) -> Result<T, clap::Error>
where
    T: CommandFactory + FromArgMatches,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    let mut command = with_env_prefix(T::command(), env_prefix);
    let matches = command.try_get_matches_from_mut(args)?;
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// Gives every `--flag` of `command` without an environment variable the variable
/// `<env_prefix>_<FLAG>` (dashes become underscores).
pub fn with_env_prefix(command: clap::Command, env_prefix: &str) -> clap::Command {
    command.mut_args(|arg| {
        let builtin = matches!(arg.get_id().as_str(), "help" | "version");
        if arg.get_env().is_some() || arg.get_long().is_none() || builtin {
            return arg;
        }
        let name = format!(
            "{env_prefix}_{}",
            arg.get_id().as_str().to_uppercase().replace('-', "_")
        );
        arg.env(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Binary {
        #[command(flatten)]
        operator: OperatorArgs,
        /// A flag of the binary's own.
        #[arg(long, default_value = "x")]
        own_flag: String,
    }

    #[test]
    fn defaults_are_upstreams() {
        let b: Binary = parse_from("TEST_KIT", ["bin"]).unwrap();
        assert_eq!(
            b.operator.metrics_bind_address,
            BindAddress::AnyInterface(9090)
        );
        assert_eq!(
            b.operator.health_probe_bind_address,
            BindAddress::AnyInterface(8090)
        );
        assert_eq!(b.operator.max_concurrent_reconciles, 10);
        assert_eq!(b.operator.shutdown_timeout, Duration::from_secs(60));
        assert_eq!(b.operator.resync_period, Duration::from_secs(600));
        assert_eq!(b.operator.leader_election_namespace, "platform-mesh-system");
        assert!(!b.operator.leader_elect);
    }

    #[test]
    fn every_flag_reads_the_binarys_environment_prefix() {
        let command = with_env_prefix(Binary::command(), "TEST_KIT");
        let env = |flag: &str| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        assert_eq!(env("log-level").as_deref(), Some("TEST_KIT_LOG_LEVEL"));
        assert_eq!(
            env("max-concurrent-reconciles").as_deref(),
            Some("TEST_KIT_MAX_CONCURRENT_RECONCILES")
        );
        assert_eq!(env("own-flag").as_deref(), Some("TEST_KIT_OWN_FLAG"));
        // Flags with a variable of their own keep it.
        assert_eq!(env("kubeconfig").as_deref(), Some("KUBECONFIG"));
        assert_eq!(
            env("leader-election-namespace").as_deref(),
            Some("POD_NAMESPACE")
        );
        assert_eq!(env("help"), None);
    }

    #[test]
    fn upstreams_shared_flags_are_accepted() {
        // As upstream's common chart renders them.
        let b: Binary = parse_from(
            "TEST_KIT",
            [
                "bin",
                "--region=eu10",
                "--environment=prod",
                "--image-tag=v0.15.5",
                "--image-name=account-operator",
                "--enable-http2=false",
                "--metrics-secure",
                "--tracing-enabled=false",
                "--tracing-config-collector-endpoint=otel:4317",
                "--is-local",
            ],
        )
        .unwrap();
        assert_eq!(b.operator.upstream.region, "eu10");
        assert!(!b.operator.upstream.enable_http2 && b.operator.upstream.metrics_secure);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (flag, value) in [
            ("--metrics-bind-address", "nine"),
            ("--max-concurrent-reconciles", "0"),
            ("--shutdown-timeout", "soon"),
        ] {
            let error = parse_from::<Binary, _, _>("TEST_KIT", ["bin", &format!("{flag}={value}")])
                .unwrap_err()
                .to_string();
            assert!(error.contains(flag), "{error}");
        }
    }
}
