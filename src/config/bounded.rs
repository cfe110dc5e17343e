//! Whole numbers the settings bound: a value out of its bounds does not
//! parse, and the error names the key and the bounds, so whoever uses the
//! setting can rely on it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `T` within `MIN..=MAX` (`MAX = u64::MAX`: no upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bounded<T, const MIN: u64, const MAX: u64>(T);

impl<T: Copy, const MIN: u64, const MAX: u64> Bounded<T, MIN, MAX> {
    pub fn get(self) -> T {
        self.0
    }
}

impl<T: TryFrom<u64>, const MIN: u64, const MAX: u64> Bounded<T, MIN, MAX> {
    /// `value`, or what it must be.
    pub fn new(value: u64) -> Result<Self, String> {
        if (MIN..=MAX).contains(&value)
            && let Ok(value) = T::try_from(value)
        {
            return Ok(Self(value));
        }
        Err(Self::bounds())
    }

    /// What a value must be, as the error says it.
    pub fn bounds() -> String {
        match (MIN, MAX) {
            (min, u64::MAX) => format!("must be at least {min}"),
            (0, max) => format!("must be at most {max}"),
            (min, max) => format!("must be between {min} and {max}"),
        }
    }
}

impl<T: Serialize, const MIN: u64, const MAX: u64> Serialize for Bounded<T, MIN, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: TryFrom<u64>, const MIN: u64, const MAX: u64> Deserialize<'de>
    for Bounded<T, MIN, MAX>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// Whether a parse error is a bound's (its message is final: it does not
/// say where the value came from, as a check's does not).
pub(super) fn is_bound_message(message: &str) -> bool {
    message.starts_with("must be ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_its_bounds_says_what_it_must_be() {
        type Writers = Bounded<usize, 1, 16>;
        assert_eq!(Writers::new(16).unwrap().get(), 16);
        assert_eq!(Writers::new(0).unwrap_err(), "must be between 1 and 16");
        assert_eq!(Writers::new(17).unwrap_err(), "must be between 1 and 16");
        assert_eq!(
            Bounded::<usize, 1, { u64::MAX }>::new(0).unwrap_err(),
            "must be at least 1"
        );
        assert_eq!(
            Bounded::<u32, 0, 10_000>::new(10_001).unwrap_err(),
            "must be at most 10000"
        );
        // Within the bounds but not in the type: refused, with the bounds.
        assert!(Bounded::<u8, 0, { u64::MAX }>::new(256).is_err());
    }
}
