//! The embedded MQTT server's users: a password file in Mosquitto's format
//! (`mosquitto_passwd` writes it), so operators use the tool they know.
//! Each line is `name:hash`, the hash `$7$<iterations>$<salt>$<key>`
//! (PBKDF2-HMAC-SHA512, Mosquitto 2's default) or `$6$<salt>$<digest>`
//! (salted SHA-512, older Mosquitto), salt and key in base64.

use std::collections::HashMap;

use base64::Engine;
use sha2::{Digest, Sha512};

use super::same_bytes;

/// A password's stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hash {
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        key: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        digest: Vec<u8>,
    },
}

/// The users a password file names.
#[derive(Debug, Clone, Default)]
pub struct Users(HashMap<String, Hash>);

impl Users {
    /// Reads `text`; a bad line is named by its number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let (name, hash) = line.split_once(':').ok_or_else(|| bad("not name:hash"))?;
            let parts: Vec<&str> = hash.split('$').collect();
            let decode = |s: &str| b64.decode(s).map_err(|_| bad("the hash is not base64"));
            let hash = match parts.as_slice() {
                ["", "7", iterations, salt, key] => Hash::Pbkdf2 {
                    iterations: iterations
                        .parse()
                        .ok()
                        .filter(|i| *i > 0)
                        .ok_or_else(|| bad("the iteration count is not a number"))?,
                    salt: decode(salt)?,
                    key: decode(key)?,
                },
                ["", "6", salt, digest] => Hash::Sha512 {
                    salt: decode(salt)?,
                    digest: decode(digest)?,
                },
                _ => {
                    return Err(bad(
                        "not a $7$ or $6$ hash (write it with mosquitto_passwd)",
                    ));
                }
            };
            users.insert(name.to_owned(), hash);
        }
        Ok(Self(users))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `password` is `name`'s.
    pub fn check(&self, name: &str, password: &[u8]) -> bool {
        match self.0.get(name) {
            Some(Hash::Pbkdf2 {
                iterations,
                salt,
                key,
            }) => same_bytes(&pbkdf2_sha512(password, salt, *iterations), key),
            Some(Hash::Sha512 { salt, digest }) => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                same_bytes(&h.finalize(), digest)
            }
            None => false,
        }
    }
}

/// HMAC-SHA512 (RFC 2104).
fn hmac_sha512(key: &[u8], message: &[&[u8]]) -> [u8; 64] {
    const BLOCK: usize = 128;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..64].copy_from_slice(&Sha512::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha512::new();
    inner.update(k.map(|b| b ^ 0x36));
    for part in message {
        inner.update(part);
    }
    let mut outer = Sha512::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// PBKDF2-HMAC-SHA512 (RFC 8018), one 64-byte block: what Mosquitto
/// stores.
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut u = hmac_sha512(password, &[salt, &1u32.to_be_bytes()]);
    let mut key = u;
    for _ in 1..iterations {
        u = hmac_sha512(password, &[&u]);
        for (k, x) in key.iter_mut().zip(u) {
            *k ^= x;
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -b file station1 s3cret-pass`
    /// (Mosquitto 2.0.11).
    const MOSQUITTO_7: &str = "station1:$7$101$u66KaIyFFPAesF/w$NTTOKFx8Es3xkoWhYByxuMTTSBqVNe3KY2jGJyMTgRbFnLbkWopt9mN8cCKNX1Jgaj2LIfqc5kUbqagsMzNmaw==";

    #[test]
    fn a_mosquitto_password_file_is_read_and_checked() {
        let users = Users::parse(&format!("# stations\n{MOSQUITTO_7}\n\n")).unwrap();
        assert!(users.check("station1", b"s3cret-pass"));
        assert!(!users.check("station1", b"s3cret-pasS"));
        assert!(!users.check("station2", b"s3cret-pass"));
        // The older salted SHA-512 form.
        let salt = b"0123456789abcdef";
        let mut h = Sha512::new();
        h.update(b"old-pass");
        h.update(salt);
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!("old:$6${}${}", b64.encode(salt), b64.encode(h.finalize()));
        let users = Users::parse(&line).unwrap();
        assert!(users.check("old", b"old-pass"));
        assert!(!users.check("old", b"old-pas"));
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            Users::parse("a:$7$101$x$y\nb").unwrap_err(),
            "line 1: the hash is not base64"
        );
        assert_eq!(
            Users::parse("ok:$6$AA==$AA==\nb").unwrap_err(),
            "line 2: not name:hash"
        );
        assert!(
            Users::parse("c:plain")
                .unwrap_err()
                .contains("mosquitto_passwd")
        );
    }

    /// RFC 4231 test case 2.
    #[test]
    fn hmac_matches_the_rfc() {
        let mac = hmac_sha512(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }
}
