use std::fmt;

use serde::{Serialize, Serializer};

/// A station identifier: 1 to 64 characters of `[A-Za-z0-9_-]`.
///
/// The only way to get one is [`StationId::parse`], so code holding a
/// `StationId` never checks it again (it is safe in topics, keys and paths).
///
/// Shared, not copied: every reading, map key and message of a station
/// holds the same text, so a clone costs a reference count, not an
/// allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StationId(std::sync::Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StationIdError {
    #[error("station id is empty")]
    Empty,
    #[error("station id is {len} characters long; at most 64 are allowed")]
    TooLong { len: usize },
    #[error("station id contains {ch:?}; only letters, digits, '_' and '-' are allowed")]
    InvalidCharacter { ch: char },
}

impl StationId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, StationIdError> {
        if raw.is_empty() {
            return Err(StationIdError::Empty);
        }
        if let Some(ch) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(StationIdError::InvalidCharacter { ch });
        }
        // Only ASCII is left, so bytes are characters.
        if raw.len() > Self::MAX_LEN {
            return Err(StationIdError::TooLong { len: raw.len() });
        }
        Ok(Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StationId({})", self.0)
    }
}

impl AsRef<str> for StationId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for StationId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// In the OpenAPI document: a string of the allowed characters.
impl utoipa::PartialSchema for StationId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some("^[A-Za-z0-9_-]{1,64}$"))
            .examples(["WS001"])
            .into()
    }
}

impl utoipa::ToSchema for StationId {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["WS001", "a", "station_7-b", &"x".repeat(64)] {
            assert_eq!(StationId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(StationId::parse(""), Err(StationIdError::Empty));
        assert_eq!(
            StationId::parse(&"x".repeat(65)),
            Err(StationIdError::TooLong { len: 65 })
        );
        assert_eq!(
            StationId::parse("WS/001"),
            Err(StationIdError::InvalidCharacter { ch: '/' })
        );
        assert_eq!(
            StationId::parse("WS+"),
            Err(StationIdError::InvalidCharacter { ch: '+' })
        );
        assert_eq!(
            StationId::parse("wé"),
            Err(StationIdError::InvalidCharacter { ch: 'é' })
        );
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_valid_ids(s in "\\PC{0,80}") {
            let valid = !s.is_empty()
                && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            prop_assert_eq!(StationId::parse(&s).is_ok(), valid);
        }
    }
}
