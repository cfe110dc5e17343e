//! Credentials that stations put in what they send, and that isobar never
//! keeps: not in the store, not in the quarantine, not in a log.
//!
//! The upload routes take them out of a form or query before anything
//! else sees it. A payload that reaches the quarantine from any source (an
//! MQTT publish in the wrong format, a JSON upload with a key in its body)
//! goes through [`redact`] as well, which works on bytes that need not
//! parse: a payload is quarantined precisely because it may not.

use std::borrow::Cow;

/// The names of credentials, compared without regard to case.
pub const SECRET_KEYS: [&str; 6] = [
    "password", "passkey", "api_key", "apikey", "token", "secret",
];

/// What a credential's value is replaced with.
pub const REDACTED: &str = "redacted";

/// Whether `key` names a credential.
pub fn is_secret(key: &str) -> bool {
    SECRET_KEYS.iter().any(|s| key.eq_ignore_ascii_case(s))
}

/// `payload` with the value of every credential replaced by `"redacted"`:
/// JSON members (`"password": "…"`, at any depth) and form fields
/// (`PASSKEY=…&`), whether or not the rest of the payload parses. Borrowed
/// when there is nothing to take out, which is nearly always.
pub fn redact(payload: &[u8]) -> Cow<'_, [u8]> {
    if !mentions_a_secret(payload) {
        return Cow::Borrowed(payload);
    }
    let mut out = Vec::with_capacity(payload.len());
    let mut i = 0;
    while i < payload.len() {
        if let Some((key_end, quoted)) = key_at(payload, i)
            && let Some(value) = value_after(payload, key_end, quoted)
        {
            out.extend_from_slice(&payload[i..value.start]);
            if quoted {
                out.extend_from_slice(b"\"");
                out.extend_from_slice(REDACTED.as_bytes());
                out.extend_from_slice(b"\"");
            } else {
                out.extend_from_slice(REDACTED.as_bytes());
            }
            i = value.end;
            continue;
        }
        out.push(payload[i]);
        i += 1;
    }
    Cow::Owned(out)
}

/// A query string or form body with the value of every credential
/// replaced by `redacted`. It parses the form, so a name written with
/// percent-escapes (`pass%6Bey=…`) is caught as well.
pub fn redact_form(query: &str) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if is_secret(&k) {
            out.append_pair(&k, REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// A cheap first look: does any credential's name occur at all?
fn mentions_a_secret(payload: &[u8]) -> bool {
    SECRET_KEYS.iter().any(|key| {
        payload
            .windows(key.len())
            .any(|w| w.eq_ignore_ascii_case(key.as_bytes()))
    })
}

/// A credential's name starting at `at`: `"name"` (JSON, `quoted`) or a
/// form field's `name` at the start or after `&`, `?`, `;` or white
/// space. Returns where the name ends.
fn key_at(p: &[u8], at: usize) -> Option<(usize, bool)> {
    let quoted = p[at] == b'"';
    let start = if quoted { at + 1 } else { at };
    if !quoted && at > 0 && !matches!(p[at - 1], b'&' | b'?' | b';' | b' ' | b'\n' | b'\r' | b'\t')
    {
        return None;
    }
    SECRET_KEYS.iter().find_map(|key| {
        let end = start + key.len();
        let name = p.get(start..end)?;
        if !name.eq_ignore_ascii_case(key.as_bytes()) {
            return None;
        }
        if quoted {
            (p.get(end) == Some(&b'"')).then_some((end + 1, true))
        } else {
            (p.get(end) == Some(&b'=')).then_some((end, false))
        }
    })
}

/// The span of the value after a name ending at `from`: for JSON, after
/// the colon, a string (with its quotes) or a bare token; for a form, after
/// the `=`, up to the next `&`, `;` or white space.
fn value_after(p: &[u8], from: usize, quoted: bool) -> Option<std::ops::Range<usize>> {
    let skip_space = |mut i: usize| {
        while i < p.len() && p[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    if !quoted {
        let start = from + 1;
        let end = p[start..]
            .iter()
            .position(|b| matches!(b, b'&' | b';' | b' ' | b'\n' | b'\r' | b'\t'))
            .map_or(p.len(), |n| start + n);
        return Some(start..end);
    }
    let colon = skip_space(from);
    if p.get(colon) != Some(&b':') {
        return None;
    }
    let start = skip_space(colon + 1);
    match p.get(start) {
        None => Some(start..start),
        Some(b'"') => {
            let mut i = start + 1;
            while i < p.len() {
                match p[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(start..i + 1),
                    _ => i += 1,
                }
            }
            // Cut off inside the string: everything after the quote goes.
            Some(start..p.len())
        }
        // An object or an array: the names inside are looked at in turn.
        Some(b'{' | b'[') => None,
        Some(_) => {
            let end = p[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .map_or(p.len(), |n| start + n);
            Some(start..end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(s: &str) -> String {
        String::from_utf8(redact(s.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn json_members_are_redacted_at_any_depth_and_in_any_case() {
        assert_eq!(
            r(r#"{"station_id":"WS1","Password" : "hunter2","temperature":1}"#),
            r#"{"station_id":"WS1","Password" : "redacted","temperature":1}"#
        );
        assert_eq!(
            r(r#"[{"auth":{"api_key":"k\"ey"}},{"token":12345}]"#),
            r#"[{"auth":{"api_key":"redacted"}},{"token":"redacted"}]"#
        );
    }

    #[test]
    fn form_fields_are_redacted_wherever_they_are() {
        assert_eq!(
            r("ID=WS1&PASSWORD=hunter2&tempf=70"),
            "ID=WS1&PASSWORD=redacted&tempf=70"
        );
        assert_eq!(r("PASSKEY=ABC&dateutc=now"), "PASSKEY=redacted&dateutc=now");
        // Part of another word is not a credential.
        assert_eq!(r("mytoken=1&notpassword=2"), "mytoken=1&notpassword=2");
    }

    #[test]
    fn a_payload_cut_off_or_malformed_loses_its_secret_all_the_same() {
        assert_eq!(
            r(r#"{"station_id":"WS1","passkey":"0123456789AB"#),
            r#"{"station_id":"WS1","passkey":"redacted""#
        );
        assert_eq!(r(r#"{"secret": oops, }"#), r#"{"secret": "redacted", }"#);
    }

    #[test]
    fn a_payload_without_credentials_is_not_copied() {
        let p = br#"{"station_id":"WS1","temperature":1.5}"#;
        assert!(matches!(redact(p), Cow::Borrowed(_)));
        // A name alone, not as a key, stays.
        assert_eq!(r(r#"{"note":"password"}"#), r#"{"note":"password"}"#);
    }

    proptest! {
        /// Whatever surrounds it, a credential's value never survives.
        #[test]
        fn no_value_survives(
            before in "[ -~]{0,40}",
            value in "[A-Za-z0-9]{8,24}",
            after in "[ -~]{0,40}",
            key in prop::sample::select(SECRET_KEYS.to_vec()),
            json in any::<bool>(),
        ) {
            let payload = if json {
                format!("{before}{{\"{key}\": \"{value}\"}}{after}")
            } else {
                format!("{before}&{key}={value}&{after}")
            };
            let out = r(&payload);
            let leaked = out.contains(&value) && !before.contains(&value) && !after.contains(&value);
            prop_assert!(!leaked, "{payload} -> {out}");
        }
    }

    #[test]
    fn the_passkey_is_redacted_whatever_its_case() {
        let r = redact_form("PASSKEY=0123ABCD&tempf=70.1&passkey=x&PassWord=y");
        assert_eq!(
            r,
            "PASSKEY=redacted&tempf=70.1&passkey=redacted&PassWord=redacted"
        );
    }

    #[test]
    fn an_api_key_in_the_query_is_redacted() {
        let r = redact_form("ID=WS001&api_key=0123456789abcdef&tempf=70.1&API_KEY=x");
        assert_eq!(r, "ID=WS001&api_key=redacted&tempf=70.1&API_KEY=redacted");
    }

    #[test]
    fn the_password_is_redacted() {
        let q = "ID=WS001&PASSWORD=hunter2&tempf=70.1&dateutc=now";
        let r = redact_form(q);
        assert!(!r.contains("hunter2"));
        assert!(
            r.contains("PASSWORD=redacted") && r.contains("ID=WS001") && r.contains("tempf=70.1")
        );
    }

    #[test]
    fn a_percent_escaped_name_is_caught() {
        let r = redact_form("ID=WS001&pass%6Bey=0123ABCD&tempf=70.1");
        assert!(!r.contains("0123ABCD"), "{r}");
        assert_eq!(r, "ID=WS001&passkey=redacted&tempf=70.1");
    }
}
