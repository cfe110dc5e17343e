//! Who may publish where on the embedded MQTT server: an access-control
//! file in Mosquitto's format (`acl_file`), so operators use the rules
//! they know. isobar's server only takes publishes, so only the write
//! rights matter:
//!
//! ```text
//! # every station may publish its own readings, and nothing else
//! pattern write weather/%u/observations
//!
//! # a gateway that publishes for several stations
//! user gateway-north
//! topic write weather/+/observations
//! ```
//!
//! `topic` lines before any `user` line are for clients that did not log
//! in; after a `user NAME` line, for that user. `pattern` lines are for
//! everyone, with `%u` standing for the username and `%c` for the client
//! id. `deny` refuses what it matches whatever else allows it. A publish
//! no rule allows is refused.

use std::collections::HashMap;

/// What a rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Right {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Right {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "read" => Self::Read,
            "write" => Self::Write,
            "readwrite" => Self::ReadWrite,
            "deny" => Self::Deny,
            _ => return None,
        })
    }

    fn writes(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    right: Right,
    filter: String,
}

/// The rules of an ACL file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

impl Acl {
    /// Reads `text`; a bad line is named by its number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let (keyword, rest) = line
                .split_once(char::is_whitespace)
                .map(|(k, r)| (k, r.trim()))
                .unwrap_or((line, ""));
            match keyword {
                "user" => {
                    if rest.is_empty() {
                        return Err(bad("`user` needs a name"));
                    }
                    user = Some(rest.to_owned());
                    acl.users.entry(rest.to_owned()).or_default();
                }
                "topic" | "pattern" => {
                    // `topic [read|write|readwrite|deny] FILTER`; without
                    // a right, readwrite.
                    if Right::parse(rest).is_some() {
                        return Err(bad("a rule needs a topic filter"));
                    }
                    let (right, filter) = match rest.split_once(char::is_whitespace) {
                        Some((word, filter)) if Right::parse(word).is_some() => (
                            Right::parse(word).unwrap_or(Right::ReadWrite),
                            filter.trim(),
                        ),
                        _ => (Right::ReadWrite, rest),
                    };
                    if filter.is_empty() {
                        return Err(bad("a rule needs a topic filter"));
                    }
                    check_filter(filter).map_err(|why| bad(&why))?;
                    let rule = Rule {
                        right,
                        filter: filter.to_owned(),
                    };
                    if keyword == "pattern" {
                        acl.patterns.push(rule);
                    } else {
                        match &user {
                            Some(u) => acl.users.entry(u.clone()).or_default().push(rule),
                            None => acl.anonymous.push(rule),
                        }
                    }
                }
                other => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(bad(&format!(
                        "unknown keyword {shown:?}; expected user, topic or pattern"
                    )));
                }
            }
        }
        Ok(acl)
    }

    /// The rules for one client, logged in as `username` (`None`:
    /// anonymous) with `client_id`, its patterns filled in: worked out
    /// once per connection, not per publish.
    pub fn grants(&self, username: Option<&str>, client_id: &str) -> Grants {
        let own: &[Rule] = match username {
            Some(u) => self.users.get(u).map_or(&[], Vec::as_slice),
            None => &self.anonymous,
        };
        let patterns = self.patterns.iter().filter_map(|rule| {
            // Mosquitto applies patterns to anonymous clients only when
            // they name no `%u`.
            let filter = match username {
                Some(u) => rule.filter.replace("%u", &escape(u)),
                None if rule.filter.contains("%u") => return None,
                None => rule.filter.clone(),
            };
            Some(Rule {
                right: rule.right,
                filter: filter.replace("%c", &escape(client_id)),
            })
        });
        Grants(own.iter().cloned().chain(patterns).collect())
    }

    /// Whether a client logged in as `username` (`None`: anonymous) with
    /// `client_id` may publish to `topic`.
    pub fn may_publish(&self, username: Option<&str>, client_id: &str, topic: &str) -> bool {
        self.grants(username, client_id).may_publish(topic)
    }
}

/// One client's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(Vec<Rule>);

impl Grants {
    /// Whether a rule allows publishing to `topic` and none denies it.
    pub fn may_publish(&self, topic: &str) -> bool {
        let mut allowed = false;
        for rule in &self.0 {
            if topic_matches(&rule.filter, topic) {
                if rule.right == Right::Deny {
                    return false;
                }
                allowed |= rule.right.writes();
            }
        }
        allowed
    }
}

/// A name put into a filter must stand for itself: one that holds a
/// wildcard or a level separator matches nothing.
fn escape(name: &str) -> String {
    if name.contains(['+', '#', '/']) || name.is_empty() {
        "\u{0}".into()
    } else {
        name.to_owned()
    }
}

fn check_filter(filter: &str) -> Result<(), String> {
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("{filter:?}: '#' may only be a whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("{filter:?}: '+' may only be a whole level"));
        }
    }
    Ok(())
}

/// Whether an MQTT topic filter matches a topic (MQTT 3.1.1 §4.7): `+`
/// is one level, `#` the rest; a filter starting with a wildcard does not
/// match a `$` topic.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        if part == "#" {
            return true;
        }
        match levels.next() {
            Some(level) if part == "+" || part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_as_mqtt_says() {
        assert!(topic_matches(
            "weather/+/observations",
            "weather/WS1/observations"
        ));
        assert!(!topic_matches(
            "weather/+/observations",
            "weather/WS1/status"
        ));
        assert!(!topic_matches(
            "weather/+/observations",
            "weather/a/b/observations"
        ));
        assert!(topic_matches("weather/#", "weather/a/b"));
        assert!(topic_matches("weather/#", "weather"));
        assert!(!topic_matches("#", "$SYS/broker"));
        assert!(!topic_matches("+/x", "$SYS/x"));
        assert!(topic_matches("$SYS/#", "$SYS/x"));
        assert!(!topic_matches("a/b", "a/b/c"));
    }

    #[test]
    fn users_write_where_their_rules_say() {
        let acl = Acl::parse(
            "# stations publish their own readings\n\
             pattern write weather/%u/observations\n\
             topic write public/+/observations\n\
             \n\
             user gateway\n\
             topic write weather/+/observations\n\
             topic deny weather/secret/observations\n\
             user reader\n\
             topic read weather/#\n",
        )
        .unwrap();
        let t = |station: &str| format!("weather/{station}/observations");
        assert!(acl.may_publish(Some("WS1"), "c", &t("WS1")));
        assert!(
            !acl.may_publish(Some("WS1"), "c", &t("WS2")),
            "another station"
        );
        assert!(acl.may_publish(Some("gateway"), "c", &t("WS2")));
        assert!(
            !acl.may_publish(Some("gateway"), "c", &t("secret")),
            "deny wins"
        );
        assert!(
            !acl.may_publish(Some("reader"), "c", &t("WS2")),
            "read only"
        );
        assert!(acl.may_publish(None, "c", "public/x/observations"));
        assert!(!acl.may_publish(None, "c", &t("WS1")), "%u is no one's");
        assert!(
            !acl.may_publish(Some("+"), "c", &t("WS1")),
            "a wildcard name matches nothing"
        );
        let by_client = Acl::parse("pattern write weather/%c/observations").unwrap();
        assert!(by_client.may_publish(Some("u"), "WS9", &t("WS9")));
        assert!(!by_client.may_publish(Some("u"), "WS9", &t("WS8")));
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, wanted) in [
            ("user\n", "line 1: `user` needs a name"),
            ("\ntopic write\n", "line 2: a rule needs a topic filter"),
            (
                "topic write a/#/b",
                "line 1: \"a/#/b\": '#' may only be a whole last level",
            ),
            ("acl x", "line 1: unknown keyword \"acl\""),
        ] {
            let err = Acl::parse(text).unwrap_err();
            assert!(err.starts_with(wanted), "{err}");
        }
    }
}
