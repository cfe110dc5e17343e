//! Input formats. Each turns what a station sends into [`Observation`]s in
//! canonical units, then applies the shared checks.
//!
//! The HTTP uploads have their own entry points: [`wunderground::parse`]
//! and [`ecowitt::parse`].
//!
//! [`Observation`]: super::Observation

pub mod ecowitt;
mod form;
pub mod json;
pub mod weewx;
pub mod wunderground;

use super::observation::{MAX_PAYLOAD_BYTES, RejectReason};

fn check_size(payload: &[u8]) -> Result<(), RejectReason> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(RejectReason::PayloadTooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

fn malformed_json(error: serde_json::Error) -> RejectReason {
    RejectReason::MalformedJson {
        detail: error.to_string(),
    }
}

/// Values quoted in a rejection are cut to this many characters, so that
/// a rejection stays one readable line whatever a station sent.
const QUOTED_CHARS: usize = 64;

fn excerpt(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

fn invalid_value(field: &str, value: &str, expected: &'static str) -> RejectReason {
    RejectReason::InvalidValue {
        field: excerpt(field),
        value: excerpt(value),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_long_values_on_a_character_boundary() {
        assert_eq!(excerpt("72.5"), "72.5");
        let long = "é".repeat(QUOTED_CHARS + 10);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), QUOTED_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
