//! Foundation scenario against a real OpenFGA: store, model, chunked writes, paginated reads,
//! checks.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use harness::{OpenFga, unique_suffix};
use openfga_client::client::{
    AuthorizationModel, CheckRequestTupleKey, CreateStoreRequest, OpenFgaClient, ReadRequest,
    TupleKey, WriteAuthorizationModelRequest,
};

/// The server's default `--max-tuples-per-write`.
const MAX_TUPLES_PER_WRITE: usize = 100;

const MODEL: &str = r#"{
  "schema_version": "1.1",
  "type_definitions": [
    {"type": "user"},
    {"type": "document",
     "relations": {"viewer": {"this": {}}},
     "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}}}
  ]
}"#;

#[tokio::test]
async fn store_model_chunked_writes_paginated_reads_and_checks() {
    let fga = OpenFga::shared().await;
    eprintln!(
        "OpenFGA ready after {:.2}s, RSS {:.0} MiB",
        fga.startup.as_secs_f64(),
        fga.rss_mib().unwrap_or_default()
    );
    let mut service = fga.client().await;

    let store = service
        .create_store(CreateStoreRequest {
            name: format!("foundation-{}", unique_suffix()),
        })
        .await
        .unwrap()
        .into_inner();
    let model: AuthorizationModel = serde_json::from_str(MODEL).unwrap();
    let model_id = service
        .write_authorization_model(WriteAuthorizationModelRequest {
            store_id: store.id.clone(),
            type_definitions: model.type_definitions,
            schema_version: model.schema_version,
            conditions: model.conditions,
        })
        .await
        .unwrap()
        .into_inner()
        .authorization_model_id;
    let client = OpenFgaClient::new(service.clone(), &store.id, &model_id);

    // 250 tuples do not fit one write; the server refuses more than its limit at once.
    let tuples: Vec<TupleKey> = (0..250)
        .map(|i| TupleKey {
            user: format!("user:u{i}"),
            relation: "viewer".into(),
            object: format!("document:d{i}"),
            condition: None,
        })
        .collect();
    let too_many = service
        .write(openfga_client::client::WriteRequest {
            store_id: store.id.clone(),
            writes: Some(openfga_client::client::WriteRequestWrites {
                tuple_keys: tuples[..MAX_TUPLES_PER_WRITE + 1].to_vec(),
                on_duplicate: String::new(),
            }),
            ..Default::default()
        })
        .await;
    assert!(
        too_many.is_err(),
        "the server accepted more than {MAX_TUPLES_PER_WRITE} tuples in one write"
    );
    for chunk in tuples.chunks(MAX_TUPLES_PER_WRITE) {
        client.write(chunk.to_vec(), None).await.unwrap();
    }

    // Read them back page by page, following continuation tokens to the end.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = service
            .read(ReadRequest {
                store_id: store.id.clone(),
                page_size: Some(MAX_TUPLES_PER_WRITE as i32),
                continuation_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.tuples.len());
        let mut read: Vec<String> = page
            .tuples
            .iter()
            .filter_map(|t| t.key.as_ref().map(|k| k.object.clone()))
            .collect();
        read.retain(|o| o.starts_with("document:d"));
        assert_eq!(read.len(), page.tuples.len());
        token = page.continuation_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [100, 100, 50]);

    let check = |user: &str, object: &str| CheckRequestTupleKey {
        user: user.into(),
        relation: "viewer".into(),
        object: object.into(),
    };
    assert!(
        client
            .check_simple(check("user:u7", "document:d7"))
            .await
            .unwrap()
    );
    assert!(
        !client
            .check_simple(check("user:u7", "document:d8"))
            .await
            .unwrap()
    );
}
