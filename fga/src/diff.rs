//! Semantic comparison of authorization models.
//!
//! Two models are semantically equal when they authorize the same requests and
//! accept the same tuples. The comparison therefore ignores:
//!
//! * order: of type definitions, of relations, of union and intersection
//!   operands, of directly related user types, and of conditions;
//! * grouping of one operator: `a or (b or c)` equals `(a or b) or c`, because
//!   nested unions (and nested intersections) are flattened;
//! * bookkeeping: `metadata.module`, every `source_info`, condition metadata,
//!   and the difference between absent and empty metadata.
//!
//! It keeps the schema version, every rewrite, every directly related user
//! type (with its condition) and every condition's parameters and expression
//! text (compared verbatim, as the server stores it).

use std::collections::BTreeMap;

use crate::model::{AuthorizationModel, Condition, RelationReference, Userset, Usersets};

/// True when `a` and `b` are semantically equal (see the module docs).
pub fn semantically_equal(a: &AuthorizationModel, b: &AuthorizationModel) -> bool {
    first_difference(a, b).is_none()
}

/// A description of the first semantic difference, or `None` when equal.
pub fn first_difference(a: &AuthorizationModel, b: &AuthorizationModel) -> Option<String> {
    if a.schema_version != b.schema_version {
        return Some(format!(
            "schema version {:?} vs {:?}",
            a.schema_version, b.schema_version
        ));
    }
    let (types_a, types_b) = (canonical_types(a), canonical_types(b));
    for name in types_a.keys().chain(types_b.keys()) {
        let (Some(left), Some(right)) = (types_a.get(name), types_b.get(name)) else {
            let side = if types_a.contains_key(name) {
                "first"
            } else {
                "second"
            };
            return Some(format!("type '{name}' only in the {side} model"));
        };
        if left.len() != right.len() {
            return Some(format!(
                "type '{name}' defined {} vs {} times",
                left.len(),
                right.len()
            ));
        }
        for (relations_a, relations_b) in left.iter().zip(right) {
            if let Some(difference) = relations_difference(relations_a, relations_b) {
                return Some(format!("type '{name}': {difference}"));
            }
        }
    }
    let (conditions_a, conditions_b) = (canonical_conditions(a), canonical_conditions(b));
    for name in conditions_a.keys().chain(conditions_b.keys()) {
        match (conditions_a.get(name), conditions_b.get(name)) {
            (Some(left), Some(right)) if left == right => {}
            (Some(left), Some(right)) => {
                return Some(format!("condition '{name}': {left:?} vs {right:?}"));
            }
            (left, _) => {
                let side = if left.is_some() { "first" } else { "second" };
                return Some(format!("condition '{name}' only in the {side} model"));
            }
        }
    }
    None
}

/// A relation in canonical form: rewrite and sorted direct types.
type CanonicalRelation = (Userset, Vec<RelationReference>);

fn canonical_types(
    model: &AuthorizationModel,
) -> BTreeMap<&str, Vec<BTreeMap<&str, CanonicalRelation>>> {
    let mut types: BTreeMap<&str, Vec<BTreeMap<&str, CanonicalRelation>>> = BTreeMap::new();
    for definition in &model.type_definitions {
        let metadata = definition.metadata.as_ref();
        let relations = definition
            .relations
            .iter()
            .map(|(name, rewrite)| {
                let mut direct: Vec<RelationReference> = metadata
                    .and_then(|m| m.relations.get(name))
                    .map(|m| m.directly_related_user_types.clone())
                    .unwrap_or_default();
                direct.sort();
                direct.dedup();
                (name.as_str(), (canonical_userset(rewrite), direct))
            })
            .collect();
        types
            .entry(&definition.type_name)
            .or_default()
            .push(relations);
    }
    types
}

fn relations_difference(
    a: &BTreeMap<&str, CanonicalRelation>,
    b: &BTreeMap<&str, CanonicalRelation>,
) -> Option<String> {
    for name in a.keys().chain(b.keys()) {
        match (a.get(name), b.get(name)) {
            (Some((rewrite_a, direct_a)), Some((rewrite_b, direct_b))) => {
                if rewrite_a != rewrite_b {
                    return Some(format!(
                        "relation '{name}' rewrite {} vs {}",
                        to_json(rewrite_a),
                        to_json(rewrite_b)
                    ));
                }
                if direct_a != direct_b {
                    return Some(format!(
                        "relation '{name}' directly related types {} vs {}",
                        to_json(direct_a),
                        to_json(direct_b)
                    ));
                }
            }
            (left, _) => {
                let side = if left.is_some() { "first" } else { "second" };
                return Some(format!("relation '{name}' only in the {side} model"));
            }
        }
    }
    None
}

fn canonical_conditions(model: &AuthorizationModel) -> BTreeMap<&str, Condition> {
    model
        .conditions
        .iter()
        .map(|(name, condition)| {
            let mut condition = condition.clone();
            condition.metadata = None;
            (name.as_str(), condition)
        })
        .collect()
}

/// Flattens same-operator nesting and sorts operands by their JSON text.
pub fn canonical_userset(rewrite: &Userset) -> Userset {
    fn flatten(rewrite: &Userset, is_union: bool, into: &mut Vec<Userset>) {
        match rewrite {
            Userset::Union(set) if is_union => {
                set.child.iter().for_each(|c| flatten(c, true, into))
            }
            Userset::Intersection(set) if !is_union => {
                set.child.iter().for_each(|c| flatten(c, false, into));
            }
            other => into.push(canonical_userset(other)),
        }
    }
    match rewrite {
        Userset::Union(_) | Userset::Intersection(_) => {
            let is_union = matches!(rewrite, Userset::Union(_));
            let mut child = Vec::new();
            flatten(rewrite, is_union, &mut child);
            child.sort_by_cached_key(to_json);
            let set = Usersets { child };
            if is_union {
                Userset::Union(set)
            } else {
                Userset::Intersection(set)
            }
        }
        Userset::Difference(difference) => Userset::difference(
            canonical_userset(&difference.base),
            canonical_userset(&difference.subtract),
        ),
        leaf => leaf.clone(),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("model values always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Metadata, RelationMetadata, SourceInfo, TypeDefinition};

    fn model_with(rewrite: Userset, direct: Vec<RelationReference>) -> AuthorizationModel {
        AuthorizationModel {
            schema_version: "1.2".into(),
            type_definitions: vec![TypeDefinition {
                type_name: "doc".into(),
                relations: [("viewer".to_owned(), rewrite)].into(),
                metadata: Some(Metadata {
                    relations: [(
                        "viewer".to_owned(),
                        RelationMetadata {
                            directly_related_user_types: direct,
                            ..Default::default()
                        },
                    )]
                    .into(),
                    ..Default::default()
                }),
            }],
            conditions: BTreeMap::new(),
        }
    }

    #[test]
    fn operand_order_and_grouping_do_not_matter() {
        let a = model_with(
            Userset::union(vec![
                Userset::computed("a"),
                Userset::union(vec![Userset::computed("b"), Userset::computed("c")]),
            ]),
            vec![],
        );
        let b = model_with(
            Userset::union(vec![
                Userset::union(vec![Userset::computed("c"), Userset::computed("a")]),
                Userset::computed("b"),
            ]),
            vec![],
        );
        assert!(semantically_equal(&a, &b), "{:?}", first_difference(&a, &b));
    }

    #[test]
    fn difference_operands_do_not_commute() {
        let a = model_with(
            Userset::difference(Userset::computed("a"), Userset::computed("b")),
            vec![],
        );
        let b = model_with(
            Userset::difference(Userset::computed("b"), Userset::computed("a")),
            vec![],
        );
        let difference = first_difference(&a, &b).unwrap();
        assert!(
            difference.contains("relation 'viewer' rewrite"),
            "{difference}"
        );
    }

    #[test]
    fn union_and_intersection_are_not_mixed_up() {
        let children = vec![Userset::computed("a"), Userset::computed("b")];
        let a = model_with(Userset::union(children.clone()), vec![]);
        let b = model_with(Userset::intersection(children), vec![]);
        assert!(!semantically_equal(&a, &b));
    }

    #[test]
    fn direct_type_order_is_ignored_but_content_is_not() {
        let user = RelationReference::new("user");
        let wildcard = RelationReference::wildcard("user");
        let a = model_with(Userset::this(), vec![user.clone(), wildcard.clone()]);
        let b = model_with(Userset::this(), vec![wildcard, user.clone()]);
        assert!(semantically_equal(&a, &b));
        let c = model_with(Userset::this(), vec![user.with_condition("c")]);
        assert!(
            first_difference(&a, &c)
                .unwrap()
                .contains("directly related types")
        );
    }

    #[test]
    fn bookkeeping_and_type_order_are_ignored() {
        let mut a = model_with(Userset::this(), vec![RelationReference::new("user")]);
        a.type_definitions.push(TypeDefinition {
            type_name: "user".into(),
            ..Default::default()
        });
        let mut b = a.clone();
        b.type_definitions.reverse();
        let metadata = b.type_definitions[1].metadata.as_mut().unwrap();
        metadata.module = "core".into();
        metadata.source_info = Some(SourceInfo {
            file: "core.fga".into(),
        });
        b.type_definitions[0].metadata = Some(Metadata::default());
        assert!(semantically_equal(&a, &b), "{:?}", first_difference(&a, &b));
    }

    #[test]
    fn missing_types_and_schema_versions_are_reported() {
        let a = model_with(Userset::this(), vec![]);
        let mut b = a.clone();
        b.type_definitions.clear();
        assert_eq!(
            first_difference(&a, &b).unwrap(),
            "type 'doc' only in the first model"
        );
        b = a.clone();
        b.schema_version = "1.1".into();
        assert!(
            first_difference(&a, &b)
                .unwrap()
                .starts_with("schema version")
        );
    }
}
