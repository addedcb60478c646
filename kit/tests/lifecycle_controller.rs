//! The lifecycle controller and the process against a real kcp: a namespaced kind reconciled
//! through an APIExport's virtual workspace, and a process that ends with the name of the part
//! that failed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Args, FromArgMatches};
use crds::PlatformMesh;
use crds::export::{api_export, schemas};
use harness::{Kcp, TestWorkspace, universal, wait_for, wait_gone, when_served};
use k8s_openapi::api::core::v1::Namespace;
use kcp::runtime::{ControllerConfig, EndpointSource, RuntimeMetrics};
use kcp::types::apis::{
    ApiBinding, ApiBindingSpec, ApiExport, ApiResourceSchema, BindingReference,
    ExportBindingReference,
};
use kit::cli::{OperatorArgs, UpstreamArgs};
use kit::controller::{LifecycleController, Setup};
use kit::process::{Binary, Process, ProcessError};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{CustomResourceExt, ResourceExt};
use lifecycle::{Outcome, Subroutine, SubroutineError, async_trait};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "test.platform-mesh.io/tagged";

/// What the subroutine did, as its context.
#[derive(Debug, Default)]
struct Counts {
    processed: AtomicUsize,
    finalized: AtomicUsize,
}

/// Holds a finalizer and counts its runs.
#[derive(Debug)]
struct Tag;

#[async_trait]
impl Subroutine<PlatformMesh, Arc<Counts>> for Tag {
    fn name(&self) -> &str {
        "TagSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        vec![FINALIZER.to_owned()]
    }

    async fn process(
        &self,
        _: &PlatformMesh,
        ctx: &Arc<Counts>,
    ) -> Result<Outcome, SubroutineError> {
        ctx.processed.fetch_add(1, Ordering::SeqCst);
        Ok(Outcome::Ok)
    }

    async fn finalize(
        &self,
        _: &PlatformMesh,
        ctx: &Arc<Counts>,
    ) -> Result<Outcome, SubroutineError> {
        ctx.finalized.fetch_add(1, Ordering::SeqCst);
        Ok(Outcome::Ok)
    }
}

/// An export of PlatformMesh (namespaced) in `provider`, bound in a child of it.
async fn export_platform_meshes(provider: &TestWorkspace) -> (String, TestWorkspace) {
    let apply = PatchParams::apply("kit-tests").force();
    let schemas = schemas(&[PlatformMesh::crd()]);
    for schema in &schemas {
        Api::<ApiResourceSchema>::all(provider.client())
            .patch(&schema.name_any(), &apply, &Patch::Apply(schema))
            .await
            .unwrap();
    }
    let name = "platformmeshes.kit-test".to_owned();
    let mut export = api_export(&name, &schemas, "unused");
    export.spec.permission_claims.clear();
    Api::<ApiExport>::all(provider.client())
        .patch(&name, &apply, &Patch::Apply(&export))
        .await
        .unwrap();

    let consumer = provider.child("consumer", universal()).await;
    let bindings: Api<ApiBinding> = Api::all(consumer.client());
    let binding = ApiBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: ApiBindingSpec {
            reference: BindingReference {
                export: Some(ExportBindingReference {
                    path: provider.path.to_string(),
                    name: name.clone(),
                }),
            },
            permission_claims: Vec::new(),
        },
        status: None,
    };
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    wait_for(&bindings, &name, "Ready", ApiBinding::is_ready).await;
    (name, consumer)
}

fn setup(factory: kcp::ClientFactory, source: EndpointSource, registry: &mut Registry) -> Setup {
    Setup {
        factory,
        source,
        config: ControllerConfig::default(),
        runtime_metrics: RuntimeMetrics::new(registry),
        lifecycle_metrics: lifecycle::Metrics::register(registry),
        field_manager: "kit-tests".to_owned(),
        debug_label_value: String::new(),
    }
}

fn condition_true(pm: &PlatformMesh, type_: &str) -> bool {
    pm.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

#[tokio::test]
async fn a_namespaced_kind_reconciles_through_the_lifecycle_controller() {
    let kcp = Kcp::shared().await;
    let provider = kcp.private_workspace("namespaced").await;
    let (export, consumer) = export_platform_meshes(&provider).await;

    // Same-named objects in two namespaces: keys and writes carry the namespace.
    for namespace in ["team-a", "team-b"] {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(consumer.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let api: Api<PlatformMesh> = Api::namespaced(consumer.client(), namespace);
        let list = Default::default();
        when_served(|| api.list(&list)).await.unwrap();
        api.create(
            &PostParams::default(),
            &PlatformMesh::new("mesh", Default::default()),
        )
        .await
        .unwrap();
    }

    let admin = kcp.admin().await;
    let source = EndpointSource::ApiExport {
        client: provider.client(),
        slice: export,
    };
    let counts = Arc::new(Counts::default());
    let mut registry = Registry::default();
    let ctx = counts.clone();
    let controller = LifecycleController::new(
        "namespaced",
        &setup(admin, source, &mut registry),
        vec![Box::new(Tag) as Box<dyn Subroutine<PlatformMesh, Arc<Counts>>>],
        move |_| ctx.clone(),
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(stop.clone()));

    for namespace in ["team-a", "team-b"] {
        let api: Api<PlatformMesh> = Api::namespaced(consumer.client(), namespace);
        let pm = wait_for(&api, "mesh", "Ready with its finalizer", |pm| {
            condition_true(pm, "Ready") && pm.finalizers().iter().any(|f| f == FINALIZER)
        })
        .await;
        assert!(condition_true(&pm, "TagSubroutine"), "{namespace}");
        assert_eq!(
            pm.status.as_ref().unwrap().observed_generation,
            pm.metadata.generation
        );
    }
    assert!(counts.processed.load(Ordering::SeqCst) >= 2);

    // Deleting one finalizes it through the namespaced API; the other stays.
    let team_a: Api<PlatformMesh> = Api::namespaced(consumer.client(), "team-a");
    team_a
        .delete("mesh", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&team_a, "mesh").await;
    assert_eq!(counts.finalized.load(Ordering::SeqCst), 1);
    let team_b: Api<PlatformMesh> = Api::namespaced(consumer.client(), "team-b");
    assert!(team_b.get_opt("mesh").await.unwrap().is_some());

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_failing_server_ends_the_process_with_its_name() {
    let kcp = Kcp::shared().await;
    let args = OperatorArgs {
        kubeconfig: Some(kcp.kubeconfig().to_owned()),
        kubeconfig_context: Some("root".into()),
        log_level: "info".into(),
        no_json: true,
        metrics_bind_address: "127.0.0.1:0".parse().unwrap(),
        health_probe_bind_address: "127.0.0.1:0".parse().unwrap(),
        leader_elect: false,
        leader_election_namespace: "default".into(),
        shutdown_timeout: Duration::from_secs(5),
        resync_period: Duration::from_secs(600),
        max_concurrent_reconciles: 1,
        debug_label_value: String::new(),
        upstream: UpstreamArgs::from_arg_matches(
            &UpstreamArgs::augment_args(clap::Command::new("kit-test"))
                .get_matches_from(["kit-test"]),
        )
        .unwrap(),
    };
    let binary = Binary {
        name: "kit-test",
        env_prefix: "KIT_TEST",
        leader_election_id: "kit-test",
    };
    let mut process = Process::connect(binary, &args).await.unwrap();
    process.add_server("webhook server", |_stop| async {
        Err::<(), _>("reading the webhook TLS file certs/tls.crt: No such file or directory")
    });
    let stop = CancellationToken::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), process.run(stop.clone()))
        .await
        .expect("the process ends by itself when a part fails");
    match ended {
        Err(ProcessError::Failed { component, error }) => {
            assert_eq!(component, "webhook server");
            assert!(error.contains("tls.crt"), "{error}");
        }
        other => panic!("expected the webhook server's failure, got {other:?}"),
    }
    assert!(
        !stop.is_cancelled(),
        "it stopped by itself, not by the caller"
    );
}
