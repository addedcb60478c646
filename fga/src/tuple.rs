//! The relationship tuple the operators manage, and its conversions to and from
//! the `openfga-client` proto types.
//!
//! A [`Tuple`] carries an optional condition **name** only; a condition context
//! is not modelled. Tuples read back from the server keep the condition name and
//! drop any context.

use std::fmt;

use openfga_client::client::{
    ReadRequestTupleKey, RelationshipCondition, TupleKey, TupleKeyWithoutCondition,
};

/// One relationship tuple: `object#relation@user`, optionally `with condition`.
///
/// Ordering and equality cover all four fields, so two tuples that differ only
/// in their condition are different tuples (but share a [`Tuple::key`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// The object, `type:id`, e.g. `core_platform-mesh_io_account:c1/acme`.
    pub object: String,
    /// The relation, e.g. `owner`.
    pub relation: String,
    /// The user: `type:id`, `type:*` or a userset `type:id#relation`.
    pub user: String,
    /// The condition name, when the tuple is conditional.
    pub condition: Option<String>,
}

/// The identity of a tuple on the server: object, relation and user.
/// The server holds at most one tuple per key.
pub type TupleKeyRef<'a> = (&'a str, &'a str, &'a str);

impl Tuple {
    /// An unconditional tuple.
    pub fn new(
        object: impl Into<String>,
        relation: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        Self {
            object: object.into(),
            relation: relation.into(),
            user: user.into(),
            condition: None,
        }
    }

    /// The same tuple with a condition name.
    pub fn with_condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    /// The server-side identity (object, relation, user), without the condition.
    pub fn key(&self) -> TupleKeyRef<'_> {
        (&self.object, &self.relation, &self.user)
    }
}

impl fmt::Display for Tuple {
    /// `object#relation@user`, plus ` (condition name)` when conditional.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)?;
        if let Some(condition) = &self.condition {
            write!(f, " (condition {condition})")?;
        }
        Ok(())
    }
}

impl From<&Tuple> for TupleKey {
    fn from(tuple: &Tuple) -> Self {
        TupleKey {
            user: tuple.user.clone(),
            relation: tuple.relation.clone(),
            object: tuple.object.clone(),
            condition: tuple.condition.as_ref().map(|name| RelationshipCondition {
                name: name.clone(),
                context: None,
            }),
        }
    }
}

impl From<Tuple> for TupleKey {
    fn from(tuple: Tuple) -> Self {
        TupleKey {
            user: tuple.user,
            relation: tuple.relation,
            object: tuple.object,
            condition: tuple.condition.map(|name| RelationshipCondition {
                name,
                context: None,
            }),
        }
    }
}

impl From<&Tuple> for TupleKeyWithoutCondition {
    fn from(tuple: &Tuple) -> Self {
        TupleKeyWithoutCondition {
            user: tuple.user.clone(),
            relation: tuple.relation.clone(),
            object: tuple.object.clone(),
        }
    }
}

impl From<TupleKey> for Tuple {
    /// Keeps the condition name; a condition context is dropped.
    fn from(key: TupleKey) -> Self {
        Tuple {
            object: key.object,
            relation: key.relation,
            user: key.user,
            condition: key
                .condition
                .map(|c| c.name)
                .filter(|name| !name.is_empty()),
        }
    }
}

impl From<TupleKeyWithoutCondition> for Tuple {
    fn from(key: TupleKeyWithoutCondition) -> Self {
        Tuple::new(key.object, key.relation, key.user)
    }
}

/// A server-side Read filter. `object` is required by the server: either
/// `type:id`, or `type:` together with a non-empty `user`. `relation` and
/// `user` may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// `type:id` or `type:`.
    pub object: String,
    /// A relation, or empty for all.
    pub relation: String,
    /// A user, or empty for all.
    pub user: String,
}

impl ReadFilter {
    /// Every tuple of one object (`type:id`).
    pub fn object(object: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            ..Self::default()
        }
    }
}

impl From<&ReadFilter> for ReadRequestTupleKey {
    fn from(filter: &ReadFilter) -> Self {
        ReadRequestTupleKey {
            user: filter.user.clone(),
            relation: filter.relation.clone(),
            object: filter.object.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_proto_keys() {
        let tuple = Tuple::new("doc:1", "viewer", "user:anne").with_condition("in_office");
        let key = TupleKey::from(&tuple);
        assert_eq!(key.object, "doc:1");
        assert_eq!(
            key.condition.as_ref().map(|c| c.name.as_str()),
            Some("in_office")
        );
        assert_eq!(Tuple::from(key), tuple);
        let plain = TupleKeyWithoutCondition::from(&tuple);
        assert_eq!(
            Tuple::from(plain),
            Tuple::new("doc:1", "viewer", "user:anne")
        );
        assert_eq!(
            tuple.to_string(),
            "doc:1#viewer@user:anne (condition in_office)"
        );
    }

    #[test]
    fn an_empty_condition_name_is_no_condition() {
        let key = TupleKey {
            user: "user:a".into(),
            relation: "r".into(),
            object: "o:1".into(),
            condition: Some(RelationshipCondition::default()),
        };
        assert_eq!(Tuple::from(key).condition, None);
    }
}
