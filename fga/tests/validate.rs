//! Semantic validation against OpenFGA's own rules: one case per rule, the
//! real server agreeing case by case, and composition leaving out modules
//! the server would reject.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use fga::compose::{ModuleErrorKind, ModuleFile, compose};
use fga::model::{
    AuthorizationModel, Condition, ConditionParamTypeRef, ParamTypeName, RelationMetadata,
    RelationReference, TypeDefinition, Userset,
};
use fga::store::{StoreOptions, write_model};
use fga::validate::{MAX_TYPES_PER_MODEL, ValidationError as E, validate, validate_module};
use openfga_client::client::OpenFgaServiceClient;
use support::{Oracle, client, data_dir, new_store, sorted_entries};
use tonic::transport::Channel;

/// What a case expects of both the validator and the server.
enum Expect {
    Valid,
    /// Rejected: some error of ours matches, and the server's message contains the text.
    Invalid(fn(&E) -> bool, &'static str),
}

struct Case {
    name: &'static str,
    model: AuthorizationModel,
    expect: Expect,
}

/// A schema 1.1 model with `type user` and the given DSL after it.
fn dsl(body: &str) -> AuthorizationModel {
    let text = format!("model\n  schema 1.1\ntype user\n{body}");
    fga::dsl::parse_model(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn doc(relations: &str) -> AuthorizationModel {
    dsl(&format!("type doc\n  relations\n{relations}"))
}

fn with_types(
    model: AuthorizationModel,
    edit: impl FnOnce(&mut Vec<TypeDefinition>),
) -> AuthorizationModel {
    let mut model = model;
    edit(&mut model.type_definitions);
    model
}

fn relation_metadata(
    model: &mut AuthorizationModel,
    type_name: &str,
    relation: &str,
) -> RelationMetadata {
    model
        .type_definitions
        .iter_mut()
        .find(|t| t.type_name == type_name)
        .unwrap()
        .metadata
        .get_or_insert_with(Default::default)
        .relations
        .remove(relation)
        .unwrap_or_default()
}

fn condition(
    name: &str,
    expression: &str,
    parameters: &[(&str, ConditionParamTypeRef)],
) -> Condition {
    Condition {
        name: name.to_owned(),
        expression: expression.to_owned(),
        parameters: parameters
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.clone()))
            .collect(),
        metadata: None,
    }
}

fn with_condition(condition: Condition) -> AuthorizationModel {
    let mut model = doc("    define viewer: [user with c]\n");
    model.conditions.clear();
    model.conditions.insert("c".to_owned(), condition);
    model
}

fn int() -> ConditionParamTypeRef {
    ConditionParamTypeRef::scalar(ParamTypeName::Int)
}

fn cases() -> Vec<Case> {
    use Expect::{Invalid, Valid};
    let case = |name, model, expect| Case {
        name,
        model,
        expect,
    };
    let c_ok = condition("c", "x < 10", &[("x", int())]);
    vec![
        case(
            "valid: direct, computed, tupleset, operators",
            dsl(
                "type folder\n  relations\n    define viewer: [user, user:*]\ntype group\n  relations\n    define member: [user, group#member]\ntype doc\n  relations\n    define parent: [folder]\n    define owner: [user]\n    define editor: [user, group#member] or owner\n    define viewer: [user] or editor or viewer from parent\n    define both: owner and editor\n    define banned: [user]\n    define allowed: viewer but not banned\n",
            ),
            Valid,
        ),
        case(
            "empty schema version",
            {
                let mut model = doc("    define viewer: [user]\n");
                model.schema_version = String::new();
                model
            },
            Invalid(
                |e| matches!(e, E::InvalidSchemaVersion { .. }),
                "SchemaVersion: value must be in list",
            ),
        ),
        case(
            "valid: schema 1.2",
            {
                let mut model = doc("    define viewer: [user]\n");
                model.schema_version = "1.2".to_owned();
                model
            },
            Valid,
        ),
        case(
            "valid: condition, and an unused one",
            {
                let mut model = with_condition(c_ok.clone());
                model.conditions.insert(
                    "unused".to_owned(),
                    condition(
                        "unused",
                        "y",
                        &[("y", ConditionParamTypeRef::scalar(ParamTypeName::Bool))],
                    ),
                );
                model
            },
            Valid,
        ),
        case(
            "valid: 100 types",
            dsl(&(0..MAX_TYPES_PER_MODEL - 1)
                .map(|i| format!("type t{i}\n"))
                .collect::<String>()),
            Valid,
        ),
        case(
            "valid: 254-character type and 50-character relation",
            dsl(&format!(
                "type {}\n  relations\n    define {}: [user]\n",
                "t".repeat(254),
                "r".repeat(50)
            )),
            Valid,
        ),
        case(
            "valid: intersection with a userset entry point",
            dsl(
                "type group\n  relations\n    define member: [user]\ntype doc\n  relations\n    define viewer: [group#member] and allowed\n    define allowed: [user]\n",
            ),
            Valid,
        ),
        case(
            "no types",
            AuthorizationModel {
                schema_version: "1.1".into(),
                ..Default::default()
            },
            Invalid(
                |e| matches!(e, E::NoTypes),
                "TypeDefinitions: value must contain at least 1 item",
            ),
        ),
        case(
            "schema version 1.0",
            {
                let mut model = doc("    define viewer: [user]\n");
                model.schema_version = "1.0".to_owned();
                model
            },
            Invalid(
                |e| matches!(e, E::InvalidSchemaVersion { .. }),
                "invalid schema version",
            ),
        ),
        case(
            "101 types",
            dsl(&(0..MAX_TYPES_PER_MODEL)
                .map(|i| format!("type t{i}\n"))
                .collect::<String>()),
            Invalid(
                |e| matches!(e, E::TooManyTypes { count: 101, .. }),
                "exceeds the allowed limit of 100",
            ),
        ),
        case(
            "duplicate type",
            with_types(dsl("type doc\n"), |types| {
                types.push(TypeDefinition {
                    type_name: "doc".into(),
                    ..Default::default()
                })
            }),
            Invalid(
                |e| matches!(e, E::DuplicateType { type_name } if type_name == "doc"),
                "cannot contain duplicate types",
            ),
        ),
        case(
            "255-character type",
            dsl(&format!("type {}\n", "t".repeat(255))),
            Invalid(
                |e| matches!(e, E::InvalidTypeName { .. }),
                "TypeDefinition.Type",
            ),
        ),
        case(
            "type name with a colon",
            with_types(dsl(""), |types| {
                types.push(TypeDefinition {
                    type_name: "a:b".into(),
                    ..Default::default()
                })
            }),
            Invalid(
                |e| matches!(e, E::InvalidTypeName { .. }),
                "TypeDefinition.Type",
            ),
        ),
        case(
            "51-character relation",
            doc(&format!("    define {}: [user]\n", "r".repeat(51))),
            Invalid(
                |e| matches!(e, E::InvalidRelationName { .. }),
                "TypeDefinition.Relations",
            ),
        ),
        case(
            "type named self",
            with_types(dsl(""), |types| {
                types.push(TypeDefinition {
                    type_name: "self".into(),
                    ..Default::default()
                })
            }),
            Invalid(
                |e| matches!(e, E::ReservedTypeName { type_name } if type_name == "self"),
                "the definition of type 'self' is invalid",
            ),
        ),
        case(
            "relation named this",
            {
                let mut model = doc("    define viewer: [user]\n");
                let doc = model
                    .type_definitions
                    .iter_mut()
                    .find(|t| t.type_name == "doc")
                    .unwrap();
                let rewrite = doc.relations.remove("viewer").unwrap();
                doc.relations.insert("this".into(), rewrite);
                let metadata = doc.metadata.as_mut().unwrap();
                let types = metadata.relations.remove("viewer").unwrap();
                metadata.relations.insert("this".into(), types);
                model
            },
            Invalid(
                |e| matches!(e, E::ReservedRelationName { relation, .. } if relation == "this"),
                "self and this are reserved keywords",
            ),
        ),
        case(
            "relation is its own rewrite",
            doc("    define viewer: [user] or viewer\n"),
            Invalid(
                |e| matches!(e, E::SelfReference { .. }),
                "invalid userset rewrite definition",
            ),
        ),
        case(
            "undefined relation",
            doc("    define viewer: [user] or editor\n"),
            Invalid(
                |e| matches!(e, E::UndefinedRelation { undefined, .. } if undefined == "editor"),
                "'doc#editor' relation is undefined",
            ),
        ),
        case(
            "undefined tupleset",
            doc("    define viewer: [user] or viewer from parent\n"),
            Invalid(
                |e| matches!(e, E::UndefinedRelation { undefined, .. } if undefined == "parent"),
                "'doc#parent' relation is undefined",
            ),
        ),
        case(
            "tupleset not direct",
            dsl(
                "type folder\n  relations\n    define viewer: [user]\ntype doc\n  relations\n    define owner: [folder]\n    define parent: [folder] or owner\n    define viewer: viewer from parent\n",
            ),
            Invalid(
                |e| matches!(e, E::TuplesetNotDirect { tupleset, .. } if tupleset == "parent"),
                "must be a direct relation",
            ),
        ),
        case(
            "tupleset target relation undefined",
            dsl(
                "type folder\n  relations\n    define viewer: [user]\ntype doc\n  relations\n    define parent: [folder]\n    define viewer: reader from parent\n",
            ),
            Invalid(
                |e| matches!(e, E::UndefinedTuplesetRelation { computed, .. } if computed == "reader"),
                "does not appear as a relation in any of the directly related user types",
            ),
        ),
        case(
            "assignable relation without types",
            {
                let mut model = doc("    define viewer: [user]\n");
                relation_metadata(&mut model, "doc", "viewer");
                model
            },
            Invalid(
                |e| matches!(e, E::MissingRelationTypes { .. }),
                "must contain at least one relation type",
            ),
        ),
        case(
            "computed relation with types",
            {
                let mut model = doc("    define owner: [user]\n    define viewer: owner\n");
                let mut metadata = relation_metadata(&mut model, "doc", "viewer");
                metadata
                    .directly_related_user_types
                    .push(RelationReference::new("user"));
                model.type_definitions[1]
                    .metadata
                    .as_mut()
                    .unwrap()
                    .relations
                    .insert("viewer".into(), metadata);
                model
            },
            Invalid(
                |e| matches!(e, E::UnexpectedRelationTypes { .. }),
                "should not contain a relation type",
            ),
        ),
        case(
            "undefined type in restriction",
            doc("    define viewer: [user, group]\n"),
            Invalid(
                |e| matches!(e, E::UndefinedRelatedType { undefined, .. } if undefined == "group"),
                "the relation type 'group' on 'viewer' in object type 'doc' is not valid",
            ),
        ),
        case(
            "undefined type in userset restriction",
            doc("    define viewer: [user, group#member]\n"),
            Invalid(
                |e| matches!(e, E::UndefinedRelatedType { undefined, .. } if undefined == "group"),
                "the relation type 'group#member' on 'viewer' in object type 'doc' is not valid",
            ),
        ),
        case(
            "undefined relation in restriction",
            dsl("type group\ntype doc\n  relations\n    define viewer: [user, group#member]\n"),
            Invalid(
                |e| matches!(e, E::UndefinedRelatedRelation { .. }),
                "the relation type 'group#member' on 'viewer' in object type 'doc' is not valid",
            ),
        ),
        case(
            "tupleset allows a wildcard",
            dsl(
                "type folder\n  relations\n    define viewer: [user]\ntype doc\n  relations\n    define parent: [folder, folder:*]\n    define viewer: viewer from parent\n",
            ),
            Invalid(
                |e| matches!(e, E::TuplesetRelatedNotDirect { related, .. } if related == "folder:*"),
                "the relation type 'folder' on 'parent' in object type 'doc' is not valid",
            ),
        ),
        case(
            "tupleset allows a userset",
            dsl(
                "type folder\n  relations\n    define viewer: [user]\ntype doc\n  relations\n    define parent: [folder, folder#viewer]\n    define viewer: viewer from parent\n",
            ),
            Invalid(
                |e| matches!(e, E::TuplesetRelatedNotDirect { related, .. } if related == "folder#viewer"),
                "the relation type 'folder#viewer' on 'parent' in object type 'doc' is not valid",
            ),
        ),
        case(
            "undefined condition",
            doc("    define viewer: [user with missing]\n"),
            Invalid(
                |e| matches!(e, E::UndefinedCondition { condition, .. } if condition == "missing"),
                "condition missing is undefined for relation viewer",
            ),
        ),
        case(
            "no entry point: only itself as a userset",
            dsl("type group\n  relations\n    define member: [group#member]\n"),
            Invalid(
                |e| {
                    matches!(
                        e,
                        E::NoEntrypoints {
                            possible_loop: false,
                            ..
                        }
                    )
                },
                "no entrypoints defined",
            ),
        ),
        case(
            "no entry point: intersection with an unreachable side",
            dsl(
                "type group\n  relations\n    define member: [group#member]\ntype doc\n  relations\n    define viewer: [user] and blocked\n    define blocked: [group#member]\n",
            ),
            Invalid(
                |e| matches!(e, E::NoEntrypoints { .. }),
                "no entrypoints defined",
            ),
        ),
        case(
            "no entry point: computed loop",
            doc("    define a: b\n    define b: a\n"),
            Invalid(
                |e| {
                    matches!(
                        e,
                        E::NoEntrypoints {
                            possible_loop: true,
                            ..
                        }
                    )
                },
                "potential loop",
            ),
        ),
        case(
            "cycle",
            doc(
                "    define viewer: [user, user:*] or editor\n    define editor: [user] but not viewer\n",
            ),
            Invalid(
                |e| matches!(e, E::Cycle { .. }),
                "an authorization model cannot contain a cycle",
            ),
        ),
        case(
            "condition key differs from name",
            {
                let mut model = with_condition(c_ok.clone());
                model.conditions.insert(
                    "other".to_owned(),
                    condition("c2", "x < 1", &[("x", int())]),
                );
                model
            },
            Invalid(
                |e| matches!(e, E::ConditionNameMismatch { .. }),
                "does not match condition name",
            ),
        ),
        case(
            "51-character condition name",
            {
                let name = "c".repeat(51);
                let mut model = doc(&format!("    define viewer: [user with {name}]\n"));
                model
                    .conditions
                    .insert(name.clone(), condition(&name, "x < 1", &[("x", int())]));
                model
            },
            Invalid(
                |e| matches!(e, E::InvalidConditionName { .. }),
                "Conditions",
            ),
        ),
        case(
            "empty condition expression",
            with_condition(condition("c", "", &[("x", int())])),
            Invalid(
                |e| matches!(e, E::EmptyConditionExpression { .. }),
                "failed to compile expression on condition 'c'",
            ),
        ),
        case(
            "513-byte condition expression",
            with_condition(condition(
                "c",
                &format!("x < {}", "1".repeat(509)),
                &[("x", int())],
            )),
            Invalid(
                |e| matches!(e, E::ConditionExpressionTooLong { bytes: 513, .. }),
                "Expression",
            ),
        ),
        case(
            "26 condition parameters",
            with_condition(condition(
                "c",
                "p0 < 1",
                &(0..26)
                    .map(|i| (Box::leak(format!("p{i}").into_boxed_str()) as &str, int()))
                    .collect::<Vec<_>>(),
            )),
            Invalid(
                |e| matches!(e, E::TooManyConditionParameters { count: 26, .. }),
                "Parameters",
            ),
        ),
        case(
            "parameter name with whitespace",
            with_condition(condition("c", "x < 1", &[("x", int()), ("a b", int())])),
            Invalid(
                |e| matches!(e, E::InvalidParameterName { .. }),
                "Parameters",
            ),
        ),
        case(
            "map parameter without element type",
            with_condition(condition(
                "c",
                "x < 1",
                &[("x", ConditionParamTypeRef::scalar(ParamTypeName::Map))],
            )),
            Invalid(
                |e| matches!(e, E::InvalidParameterType { .. }),
                "requires 1 generic types; found 0",
            ),
        ),
        case(
            "rewrite names a relation over 50 bytes",
            {
                // The DSL has no non-ASCII names; the JSON model does.
                let json = doc("    define long: [user]\n    define viewer: long\n").to_json();
                AuthorizationModel::from_json(
                    &json.replace("\"long\"", &format!("\"{}\"", "é".repeat(30))),
                )
                .unwrap()
            },
            Invalid(
                |e| matches!(e, E::ReferenceTooLong { .. }),
                "ObjectRelation.Relation",
            ),
        ),
    ]
}

#[test]
fn each_rule_accepts_and_rejects() {
    let mut failures = Vec::new();
    for case in cases() {
        let errors = validate(&case.model);
        match case.expect {
            Expect::Valid if !errors.is_empty() => {
                failures.push(format!("{}: expected valid, got {errors:?}", case.name))
            }
            Expect::Invalid(matches, _) if !errors.iter().any(matches) => failures.push(format!(
                "{}: expected the rule's error, got {errors:?}",
                case.name
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The server's verdict: `Ok`, or its error message.
async fn server_verdict(
    service: &mut OpenFgaServiceClient<Channel>,
    store_id: &str,
    model: &AuthorizationModel,
) -> Result<(), String> {
    write_model(service, store_id, model, &StoreOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_server_agrees_rule_by_rule() {
    let mut service = client().await;
    let store = new_store(&mut service, "validate-rules").await;
    let mut failures = Vec::new();
    for case in cases() {
        let ours = validate(&case.model);
        let theirs = server_verdict(&mut service, &store, &case.model).await;
        match (&case.expect, theirs) {
            (Expect::Valid, Err(message)) => {
                failures.push(format!("{}: server rejects: {message}", case.name))
            }
            (Expect::Invalid(..), Ok(())) => {
                failures.push(format!("{}: server accepts, we report {ours:?}", case.name))
            }
            (Expect::Invalid(_, text), Err(message)) if !message.contains(text) => failures.push(
                format!("{}: server says {message:?}, expected {text:?}", case.name),
            ),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn read_modules(dir: &std::path::Path) -> Vec<ModuleFile> {
    sorted_entries(dir)
        .iter()
        .map(|p| {
            ModuleFile::new(
                p.file_name().unwrap().to_string_lossy(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect()
}

/// Every parseable model of the corpora, and every composed module set.
fn corpus() -> Vec<(String, AuthorizationModel)> {
    let mut models = Vec::new();
    for dir in ["models", "platform-mesh"] {
        for path in sorted_entries(&data_dir().join(dir)) {
            if path.extension().is_some_and(|e| e == "fga") {
                let text = std::fs::read_to_string(&path).unwrap();
                if let Ok(parsed) = fga::dsl::parse(&text)
                    && parsed.module_name().is_none()
                {
                    models.push((path.display().to_string(), parsed.into_model()));
                }
            }
        }
    }
    for dir in sorted_entries(&data_dir().join("modules")) {
        let (model, _) = compose(&read_modules(&dir));
        models.push((dir.display().to_string(), model));
    }
    models
}

/// Corpus models the server rejects only because of CEL type checking,
/// which needs a CEL compiler this crate does not have (see `fga::validate`).
const CEL_ONLY: &[&str] = &["models/conditions.fga"];

#[tokio::test]
async fn the_server_agrees_on_the_corpora() {
    let mut service = client().await;
    let store = new_store(&mut service, "validate-corpus").await;
    let models = corpus();
    assert!(models.len() >= 40, "only {} models", models.len());
    let mut failures = Vec::new();
    let mut cel_only = Vec::new();
    for (name, model) in models {
        let ours = validate(&model);
        let theirs = server_verdict(&mut service, &store, &model).await;
        match &theirs {
            Err(message) if ours.is_empty() && message.contains("failed to compile expression") => {
                cel_only.push(name)
            }
            _ if ours.is_empty() != theirs.is_ok() => failures.push(format!(
                "{name}: we report {ours:?}, server says {theirs:?}"
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(cel_only.len(), CEL_ONLY.len(), "{cel_only:?}");
    for (found, known) in cel_only.iter().zip(CEL_ONLY) {
        assert!(
            found.ends_with(known),
            "{found} is not a known CEL-only case"
        );
    }
}

/// The first position the official transformer reports, made 1-based like ours.
fn oracle_position(message: &str) -> (usize, usize) {
    let number = |key: &str| -> usize {
        let start = message.find(key).unwrap() + key.len();
        let digits: String = message[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().unwrap()
    };
    (number("line=") + 1, number("column=") + 1)
}

#[test]
fn mixed_operator_errors_point_where_the_official_parser_points() {
    let oracle = Oracle::get();
    let bodies = [
        "a or b and c",
        "a and b or c",
        "a but not b or c",
        "a or b but not c",
        "a but not b but not c",
        "[user] or b and c",
        "a from b or c and d",
        "(a or b) and c or d",
        "a or b  and c",
        "(a or b and c)",
        "( a or b and c )",
        "a or (b and c or d)",
        "((a or b and c))",
        "(a but not b but not c)",
    ];
    let dir = std::env::temp_dir().join(format!("fga-columns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    for (index, body) in bodies.iter().enumerate() {
        let text = format!(
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user]\n    define b: [user]\n    define c: [user]\n    define d: [user]\n    define v: {body}\n"
        );
        let path = dir.join(format!("{index}.fga"));
        std::fs::write(&path, &text).unwrap();
        let theirs = oracle_position(&oracle.transform_dsl(&path).unwrap_err());
        let ours = fga::dsl::parse(&text).unwrap_err();
        if (ours.line(), ours.column()) != theirs {
            failures.push(format!("{body:?}: official {theirs:?}, ours {ours}"));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const CORE: &str = "module core

type user

type doc
  relations
    define owner: [user]
";

/// Four problems: an undefined relation, type and condition in its own type,
/// and an undefined relation in its extension of core's `doc`.
const BAD: &str = "module bad

type folder
  relations
    define viewer: [user] or editor
    define parent: [group]
    define limited: [user with nope]

extend type doc
  relations
    define viewer: [user] or nothing
";

/// Fine on its own, but uses a type of the bad module.
const USES_BAD: &str = "module usesbad

extend type doc
  relations
    define parent: [folder]
";

/// Uses core's types and relations from another file.
const GOOD_EXTENSION: &str = "module share

extend type doc
  relations
    define editor: [user] or owner
";

#[test]
fn a_semantically_bad_module_is_left_out_with_all_its_problems() {
    let files = [
        ModuleFile::new("core.fga", CORE),
        ModuleFile::new("bad.fga", BAD),
        ModuleFile::new("share.fga", GOOD_EXTENSION),
    ];
    let (model, errors) = compose(&files);
    assert!(validate(&model).is_empty());
    let types: Vec<&str> = model
        .type_definitions
        .iter()
        .map(|t| t.type_name.as_str())
        .collect();
    assert_eq!(types, ["user", "doc"]);
    let doc = model.type_definition("doc").unwrap();
    assert_eq!(
        doc.relations.keys().collect::<Vec<_>>(),
        ["editor", "owner"]
    );

    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.file == "bad.fga" && e.module.as_deref() == Some("bad"))
    );
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expected = [
        "'doc#nothing' relation is undefined (used by relation 'viewer') (at line 11, column 12)",
        "the relation type 'group' on 'parent' in object type 'folder' is not valid: type 'group' is undefined (at line 6, column 12)",
        "condition nope is undefined for relation limited (in object type 'folder') (at line 7, column 12)",
        "'folder#editor' relation is undefined (used by relation 'viewer') (at line 5, column 12)",
    ];
    for text in expected {
        assert!(
            messages.iter().any(|m| m.contains(text)),
            "missing {text:?} in {messages:#?}"
        );
    }
    assert!(errors.iter().all(|e| matches!(
        e.kind,
        ModuleErrorKind::Semantic {
            position: Some(_),
            ..
        }
    )));
}

#[test]
fn modules_that_use_a_left_out_module_are_left_out_next() {
    let files = [
        ModuleFile::new("core.fga", CORE),
        ModuleFile::new("bad.fga", BAD),
        ModuleFile::new("uses-bad.fga", USES_BAD),
    ];
    let (model, errors) = compose(&files);
    assert!(validate(&model).is_empty());
    assert_eq!(model.type_definitions.len(), 2);
    let rejected: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(rejected[..4], ["bad.fga"; 4]);
    assert_eq!(rejected[4..], ["uses-bad.fga"]);
    assert!(matches!(
        &errors[4].kind,
        ModuleErrorKind::Semantic { error: E::UndefinedRelatedType { undefined, .. }, .. } if undefined == "folder"
    ));
}

#[test]
fn validate_module_blames_only_what_the_module_wrote() {
    // Compose without isolation: the bad module is in the model.
    let mut files = vec![
        ModuleFile::new("core.fga", CORE),
        ModuleFile::new("share.fga", GOOD_EXTENSION),
    ];
    let (mut model, errors) = compose(&files);
    assert!(errors.is_empty());
    files.push(ModuleFile::new("bad.fga", BAD));
    let bad = fga::dsl::parse(BAD).unwrap();
    for parsed in bad.types {
        let mut definition = parsed.definition;
        if parsed.is_extension {
            let doc = model
                .type_definitions
                .iter_mut()
                .find(|t| t.type_name == "doc")
                .unwrap();
            doc.relations.extend(definition.relations);
            doc.metadata
                .as_mut()
                .unwrap()
                .relations
                .extend(definition.metadata.unwrap().relations);
        } else {
            definition.metadata.as_mut().unwrap().source_info = None;
            model.type_definitions.push(definition);
        }
    }
    assert_eq!(validate(&model).len(), 4);
    assert_eq!(validate_module(&model, "bad").len(), 4);
    assert!(validate_module(&model, "core").is_empty());
    assert!(validate_module(&model, "share").is_empty());
}

#[tokio::test]
async fn the_server_accepts_what_composition_keeps() {
    let files = [
        ModuleFile::new("core.fga", CORE),
        ModuleFile::new("bad.fga", BAD),
        ModuleFile::new("share.fga", GOOD_EXTENSION),
        ModuleFile::new("uses-bad.fga", USES_BAD),
    ];
    let (model, errors) = compose(&files);
    assert_eq!(errors.len(), 5);
    let mut service = client().await;
    let store = new_store(&mut service, "validate-compose").await;
    server_verdict(&mut service, &store, &model).await.unwrap();

    // Without isolation the server rejects the lot, for the first of the problems.
    let mut unisolated = model.clone();
    unisolated.type_definitions.push(TypeDefinition {
        type_name: "folder".into(),
        relations: [(
            "viewer".to_owned(),
            Userset::union(vec![Userset::this(), Userset::computed("editor")]),
        )]
        .into(),
        metadata: Some(fga::model::Metadata {
            relations: [(
                "viewer".to_owned(),
                RelationMetadata {
                    directly_related_user_types: vec![RelationReference::new("user")],
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        }),
    });
    let message = server_verdict(&mut service, &store, &unisolated)
        .await
        .unwrap_err();
    assert!(
        message.contains("'folder#editor' relation is undefined"),
        "{message}"
    );
    assert!(matches!(
        &validate(&unisolated)[..],
        [E::UndefinedRelation { .. }]
    ));
}

/// Whatever subset and order of modules composes, the result is valid.
#[test]
fn composed_models_always_validate() {
    let mut pool: Vec<ModuleFile> = vec![
        ModuleFile::new("core.fga", CORE),
        ModuleFile::new("bad.fga", BAD),
        ModuleFile::new("share.fga", GOOD_EXTENSION),
        ModuleFile::new("uses-bad.fga", USES_BAD),
    ];
    for dir in sorted_entries(&data_dir().join("modules")) {
        pool.extend(read_modules(&dir).into_iter().map(|mut f| {
            f.name = format!("{}-{}", dir.file_name().unwrap().to_string_lossy(), f.name);
            f
        }));
    }
    // A small deterministic generator: no extra dependency, reproducible runs.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300 {
        let count = 1 + (next() % 8) as usize;
        let files: Vec<ModuleFile> = (0..count)
            .map(|_| pool[(next() % pool.len() as u64) as usize].clone())
            .collect();
        let (model, _) = compose(&files);
        let mut errors = validate(&model);
        if model.type_definitions.is_empty() {
            // Every module picked was left out.
            errors.retain(|e| *e != E::NoTypes);
        }
        assert!(
            errors.is_empty(),
            "round {round}: {:?} composed to an invalid model: {errors:?}",
            files.iter().map(|f| &f.name).collect::<Vec<_>>()
        );
    }
}
