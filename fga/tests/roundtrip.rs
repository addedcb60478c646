//! Property test: models built with the builder, printed as DSL and parsed
//! back, give exactly the model the builder describes.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use fga::builder::{ConditionDef, Model, RelationDef, TypeDef, computed, direct, from};
use fga::model::{ConditionParamTypeRef, ParamTypeName, RelationReference};
use proptest::prelude::*;

const RESERVED: &[&str] = &[
    "and",
    "or",
    "from",
    "with",
    "in",
    "true",
    "false",
    "null",
    "define",
    "relations",
    "relation",
    "condition",
    "type",
    "extend",
    "model",
    "module",
    "schema",
    "map",
    "list",
    "bool",
    "string",
    "int",
    "uint",
    "double",
    "duration",
    "timestamp",
    "ipaddress",
];

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,6}".prop_filter("reserved word", |n| !RESERVED.contains(&n.as_str()))
}

fn type_name() -> impl Strategy<Value = String> {
    prop_oneof![
        name(),
        (name(), name()).prop_map(|(a, b)| format!("{a}-{b}"))
    ]
}

fn reference() -> impl Strategy<Value = RelationReference> {
    (type_name(), 0..3u8, name(), proptest::option::of(name())).prop_map(
        |(type_name, kind, relation, condition)| {
            let reference = match kind {
                0 => RelationReference::new(type_name),
                1 => RelationReference::wildcard(type_name),
                _ => RelationReference::userset(type_name, relation),
            };
            reference.with_condition(condition.unwrap_or_default())
        },
    )
}

fn rewrite() -> impl Strategy<Value = RelationDef> {
    let leaf = prop_oneof![
        name().prop_map(computed),
        (name(), name()).prop_map(|(relation, tupleset)| from(relation, tupleset)),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        (inner.clone(), inner, 0..3u8).prop_map(|(a, b, operator)| match operator {
            0 => a.or(b),
            1 => a.and(b),
            _ => a.but_not(b),
        })
    })
}

fn relation_def() -> impl Strategy<Value = RelationDef> {
    let direct_types = || proptest::collection::vec(reference(), 1..4);
    prop_oneof![
        rewrite(),
        direct_types().prop_map(direct),
        (direct_types(), rewrite(), 0..3u8).prop_map(|(types, rest, operator)| match operator {
            0 => direct(types).or(rest),
            1 => direct(types).and(rest),
            _ => direct(types).but_not(rest),
        }),
    ]
}

fn type_def() -> impl Strategy<Value = TypeDef> {
    (
        type_name(),
        proptest::collection::btree_map(name(), relation_def(), 0..5),
    )
        .prop_map(|(name, relations)| {
            relations
                .into_iter()
                .fold(TypeDef::new(name), |t, (relation, def)| {
                    t.relation(relation, def)
                })
        })
}

fn param_type() -> impl Strategy<Value = ConditionParamTypeRef> {
    let scalar = prop_oneof![
        Just(ParamTypeName::Bool),
        Just(ParamTypeName::String),
        Just(ParamTypeName::Int),
        Just(ParamTypeName::Uint),
        Just(ParamTypeName::Double),
        Just(ParamTypeName::Duration),
        Just(ParamTypeName::Timestamp),
        Just(ParamTypeName::IpAddress),
    ];
    (scalar, 0..3u8).prop_map(|(element, container)| match container {
        0 => ConditionParamTypeRef::scalar(element),
        1 => ConditionParamTypeRef::container(ParamTypeName::Map, element),
        _ => ConditionParamTypeRef::container(ParamTypeName::List, element),
    })
}

fn condition() -> impl Strategy<Value = ConditionDef> {
    (
        name(),
        proptest::collection::btree_map(name(), param_type(), 1..4),
        "[a-z]{1,5} (<|==|>=) [0-9]{1,3}( && [a-z]{1,4}\\.size\\(\\) > 0)?",
    )
        .prop_map(|(name, parameters, expression)| {
            parameters
                .into_iter()
                .fold(ConditionDef::new(name, expression), |c, (p, t)| {
                    c.parameter(p, t)
                })
        })
}

fn model() -> impl Strategy<Value = Model> {
    (
        proptest::collection::vec(type_def(), 0..6),
        proptest::collection::btree_map(name(), condition(), 0..3),
    )
        .prop_map(|(types, conditions)| {
            let model = types.into_iter().fold(Model::new(), Model::type_def);
            // The map key is the name, so names are unique (as the DSL requires).
            conditions
                .into_iter()
                .map(|(name, condition)| ConditionDef { name, ..condition })
                .fold(model, Model::condition)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn printed_models_parse_back_to_the_same_model(model in model()) {
        let text = model.to_dsl().expect("builder models are printable");
        let parsed = fga::dsl::parse_model(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, model.to_authorization_model(), "{}", text);
    }

    #[test]
    fn json_models_print_to_semantically_equal_dsl(model in model()) {
        let json = model.to_authorization_model();
        let text = fga::builder::model_to_dsl(&json).expect("printable");
        let parsed = fga::dsl::parse_model(&text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert!(fga::diff::semantically_equal(&parsed, &json), "{}", text);
    }
}
