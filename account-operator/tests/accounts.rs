//! The account-operator against a real kcp: org and account trees, AccountInfo contents and
//! propagation, deletion order, and waits explained in conditions. The
//! 200-account burst has its own binary (`bulk.rs`).

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo, ClientInfo, OidcInfo};
use harness::{account_condition as condition, is_ready};
use harness::{wait_for, wait_gone};
use kcp::types::tenancy::{
    Workspace, WorkspaceSpec, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference,
    WorkspaceTypeSpec,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use support::{account_info, new_account, platform, ready_account};

#[tokio::test]
async fn an_org_and_a_four_level_tree_become_ready_with_their_account_infos() {
    let platform = platform().await;
    let org = format!("tree{}", harness::unique_suffix());
    let (account, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;
    assert_eq!(
        account.status.as_ref().unwrap().observed_generation,
        account.metadata.generation
    );
    for step in [
        "WorkspaceTypeSubroutine",
        "WorkspaceSubroutine",
        "ManageAccountInfoSubroutine",
        "WorkspaceReadySubroutine",
    ] {
        let c = condition(&account, step).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "Complete"),
            "{step}"
        );
    }
    let mut finalizers = account.finalizers().to_vec();
    finalizers.sort();
    assert_eq!(
        finalizers,
        [
            "account.core.platform-mesh.io/finalizer",
            "workspacetype.core.platform-mesh.io/finalizer"
        ]
    );

    // The org's WorkspaceTypes exist in root:orgs, labelled with the org.
    let types: Api<WorkspaceType> = Api::all(platform.orgs().await.client());
    for name in [format!("{org}-org"), format!("{org}-account")] {
        let wt = types.get(&name).await.unwrap();
        assert_eq!(wt.labels().get("core.platform-mesh.io/org"), Some(&org));
    }
    let info = account_info(&org_ws).await;
    assert_eq!(info.spec.account.path, format!("root:orgs:{org}"));
    assert_eq!(info.spec.account.type_, "org");
    assert_eq!(
        info.spec.account.generated_cluster_id,
        org_ws.cluster.to_string()
    );
    assert_eq!(
        info.spec.account.origin_cluster_id,
        platform.orgs_cluster.to_string()
    );
    assert_eq!(info.spec.organization, info.spec.account);
    assert!(info.spec.parent_account.is_none());
    assert!(info.spec.cluster_info.ca.contains("BEGIN CERTIFICATE"));

    // Three more levels below the org.
    let mut parent = org_ws;
    let mut parent_info = info;
    for name in ["team", "squad", "pair"] {
        let (_, ws) = ready_account(&parent, name, "account").await;
        let info = account_info(&ws).await;
        assert_eq!(info.spec.account.path, format!("{}:{name}", parent.path));
        assert_eq!(
            info.spec.parent_account.as_ref(),
            Some(&parent_info.spec.account)
        );
        assert_eq!(info.spec.organization.name, org);
        let ws_type = Api::<Workspace>::all(parent.client())
            .get(name)
            .await
            .unwrap()
            .spec
            .type_
            .unwrap();
        assert_eq!(
            (ws_type.name, ws_type.path),
            (format!("{org}-account"), "root:orgs".to_owned())
        );
        parent = ws;
        parent_info = info;
    }
}

#[tokio::test]
async fn an_oidc_change_on_the_org_reaches_a_grandchild() {
    let platform = platform().await;
    let org = format!("oidc{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;
    let (_, child) = ready_account(&org_ws, "child", "account").await;
    let (_, grandchild) = ready_account(&child, "grandchild", "account").await;
    assert_eq!(account_info(&grandchild).await.spec.oidc, None);

    // The security-operator writes OIDC clients on the org's AccountInfo; nobody touches the
    // Accounts.
    let oidc = OidcInfo {
        issuer_url: "https://idp.example.com/realms/acme".into(),
        clients: [(
            "portal".to_owned(),
            ClientInfo {
                client_id: "abc-123".into(),
            },
        )]
        .into(),
    };
    let patch = serde_json::json!({"spec": {"oidc": oidc}});
    Api::<AccountInfo>::all(org_ws.client())
        .patch(
            ACCOUNT_INFO_NAME,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let infos: Api<AccountInfo> = Api::all(grandchild.client());
    let expected = oidc.clone();
    wait_for(
        &infos,
        ACCOUNT_INFO_NAME,
        "to carry the org's OIDC clients",
        move |i| i.spec.oidc.as_ref() == Some(&expected),
    )
    .await;
}

#[tokio::test]
async fn deleting_an_org_removes_every_workspace_below_and_then_its_workspace_types() {
    let platform = platform().await;
    let org = format!("gone{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;
    let (_, child) = ready_account(&org_ws, "child", "account").await;
    ready_account(&child, "grandchild", "account").await;

    let accounts: Api<Account> = Api::all(platform.orgs().await.client());
    accounts
        .delete(&org, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&accounts, &org).await;
    let workspaces: Api<Workspace> = Api::all(platform.orgs().await.client());
    assert!(
        workspaces.get_opt(&org).await.unwrap().is_none(),
        "the org workspace is gone"
    );
    let types: Api<WorkspaceType> = Api::all(platform.orgs().await.client());
    for name in [format!("{org}-org"), format!("{org}-account")] {
        assert!(
            types.get_opt(&name).await.unwrap().is_none(),
            "{name} is gone"
        );
    }
}

/// An administrator's WorkspaceType `<org>-<name>` in `root:orgs` for a custom account type:
/// kcp lets an org workspace hold only children that implement the org's account type, so it
/// extends `<org>-account`.
fn custom_type(org: &str, name: &str) -> WorkspaceType {
    WorkspaceType {
        metadata: ObjectMeta {
            name: Some(format!("{org}-{name}")),
            ..Default::default()
        },
        spec: WorkspaceTypeSpec {
            extend: Some(WorkspaceTypeExtension {
                with: vec![WorkspaceTypeReference {
                    name: format!("{org}-account"),
                    path: "root:orgs".into(),
                }],
            }),
            ..Default::default()
        },
        status: None,
    }
}

#[tokio::test]
async fn a_custom_type_without_its_workspace_type_says_so_and_proceeds_once_it_exists() {
    let platform = platform().await;
    let org = format!("custom{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    accounts
        .create(&PostParams::default(), &new_account("box", "team-folder"))
        .await
        .unwrap();
    let waiting = wait_for(
        &accounts,
        "box",
        "to explain the missing WorkspaceType",
        |a| {
            condition(a, "WorkspaceSubroutine")
                .is_some_and(|c| c.reason == "Pending" && c.message.contains("does not exist"))
        },
    )
    .await;
    let message = &condition(&waiting, "WorkspaceSubroutine").unwrap().message;
    assert!(
        message.contains(&format!("root:orgs:{org}-team-folder")),
        "{message}"
    );
    assert!(!is_ready(&waiting));

    // An administrator creates the type. The Account proceeds without being touched, woken by
    // the type's watch (the hyphen in the type's name once
    // hid it from that, leaving the Account to the 10-minute resync).
    let types: Api<WorkspaceType> = Api::all(platform.orgs().await.client());
    types
        .create(&PostParams::default(), &custom_type(&org, "team-folder"))
        .await
        .unwrap();
    wait_for(&accounts, "box", "Ready", is_ready).await;
}

#[tokio::test]
async fn an_administrators_fields_on_the_org_types_survive_and_the_operators_come_back() {
    let platform = platform().await;
    let org = format!("keep{}", harness::unique_suffix());
    ready_account(&platform.orgs().await, &org, "org").await;
    let types: Api<WorkspaceType> = Api::all(platform.orgs().await.client());
    let name = format!("{org}-org");

    // An administrator points the org's type at an authentication configuration (as the
    // security-operator does) and, by mistake, changes the label the operator sets.
    let tamper = serde_json::json!({
        "metadata": {"labels": {"core.platform-mesh.io/org": "tampered"}},
        "spec": {"authenticationConfigurations": [{"name": "corp-sso"}]},
    });
    types
        .patch(&name, &PatchParams::default(), &Patch::Merge(&tamper))
        .await
        .unwrap();

    // The change wakes the org through the WorkspaceType watch (not the 10-minute resync):
    // its forced apply takes back its label and leaves the administrator's field alone.
    let restored = wait_for(&types, &name, "the operator's label back", |wt| {
        wt.labels().get("core.platform-mesh.io/org") == Some(&org)
    })
    .await;
    let kept: Vec<&str> = restored
        .spec
        .authentication_configurations
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(kept, ["corp-sso"]);
}

#[tokio::test]
async fn a_workspace_of_another_type_is_not_adopted_and_one_going_away_is_waited_for() {
    let platform = platform().await;
    let org = format!("adopt{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;

    // Someone made a workspace `team` of another type before the Account existed (kcp lets
    // an org workspace hold only types that extend the org's account type).
    let types: Api<WorkspaceType> = Api::all(platform.orgs().await.client());
    types
        .create(&PostParams::default(), &custom_type(&org, "other"))
        .await
        .unwrap();
    wait_for(&types, &format!("{org}-other"), "Ready", |wt| wt.is_ready()).await;
    let workspaces: Api<Workspace> = Api::all(org_ws.client());
    let foreign = Workspace {
        metadata: ObjectMeta {
            name: Some("team".to_owned()),
            ..Default::default()
        },
        spec: WorkspaceSpec {
            type_: Some(WorkspaceTypeReference {
                name: format!("{org}-other"),
                path: "root:orgs".into(),
            }),
            ..Default::default()
        },
        status: None,
    };
    workspaces
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    // Made before, so in use: kcp v0.32.3 never finishes deleting a workspace deleted while
    // it is still being scheduled (it keeps its logicalcluster finalizer).
    wait_for(&workspaces, "team", "Ready", Workspace::is_ready).await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    accounts
        .create(&PostParams::default(), &new_account("team", "account"))
        .await
        .unwrap();
    let refused = wait_for(&accounts, "team", "to refuse the foreign workspace", |a| {
        condition(a, "WorkspaceSubroutine").is_some_and(|c| c.reason == "WorkspaceTypeMismatch")
    })
    .await;
    let message = &condition(&refused, "WorkspaceSubroutine").unwrap().message;
    assert_eq!(
        message,
        &format!(
            "Workspace team already exists with type root:orgs:{org}-other, not \
             root:orgs:{org}-account, so it is not adopted: delete it, or give the Account \
             another name (not retried until the object changes)"
        )
    );
    let foreign = workspaces.get("team").await.unwrap();
    assert!(
        !foreign
            .owner_references()
            .iter()
            .any(|o| o.kind == "Account"),
        "the foreign workspace was not taken over"
    );

    // Once it is deleted, the Account gets a workspace of its own type.
    workspaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(&accounts, "team", "Ready", is_ready).await;
    let own = workspaces.get("team").await.unwrap();
    assert_eq!(
        own.spec.type_.as_ref().unwrap().name,
        format!("{org}-account")
    );
    assert_ne!(own.uid(), foreign.uid());
}
