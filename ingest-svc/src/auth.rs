//! Tascomi's request authentication: `X-Public` and `X-Hash` on every request.
//!
//! `hash = base64( hex( HMAC-SHA256( key = private key, msg = hex( SHA-256( public key ++ T ) ) ) ) )`
//! where `T` is the minute of the request in Europe/London wall-clock time, `YYYYMMDDHHMM`. The
//! hash is only valid around that minute, so it is computed afresh for every request (never
//! cached across minutes), and it follows British Summer Time because the vendor's servers do.
//!
//! Both keys and the hash are secrets: [`Credentials`] and [`AuthHeaders`] never print them.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::London;
use common::config::Secret;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The header carrying the public key.
pub const PUBLIC_HEADER: &str = "X-Public";
/// The header carrying the hash.
pub const HASH_HEADER: &str = "X-Hash";

/// The API key pair. `Debug` shows neither key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    public_key: Secret,
    private_key: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    pub fn new(public_key: Secret, private_key: Secret) -> Self {
        Self {
            public_key,
            private_key,
        }
    }

    pub fn public_key(&self) -> &Secret {
        &self.public_key
    }

    /// The headers for a request sent at `at`.
    pub fn headers_at(&self, at: DateTime<Utc>) -> AuthHeaders {
        AuthHeaders {
            public: self.public_key.clone(),
            hash: Secret::new(x_hash(
                self.public_key.expose(),
                self.private_key.expose(),
                &london_minute(at),
            )),
        }
    }

    /// True when `hash` is the hash of this key pair for the London minute of `at` or the
    /// minute before or after it (the tolerance the vendor's servers allow for clock skew).
    pub fn accepts(&self, hash: &str, at: DateTime<Utc>) -> bool {
        [-1i64, 0, 1].into_iter().any(|offset| {
            let minute = at + chrono::Duration::minutes(offset);
            constant_time_eq(
                self.headers_at(minute).hash.expose().as_bytes(),
                hash.as_bytes(),
            )
        })
    }
}

/// The authentication headers of one request. `Debug` shows neither value.
#[derive(Clone)]
pub struct AuthHeaders {
    pub public: Secret,
    pub hash: Secret,
}

impl fmt::Debug for AuthHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthHeaders(<redacted>)")
    }
}

/// `YYYYMMDDHHMM` of the instant's Europe/London wall-clock minute.
pub fn london_minute(at: DateTime<Utc>) -> String {
    at.with_timezone(&London).format("%Y%m%d%H%M").to_string()
}

/// The hash for a key pair and a London minute `YYYYMMDDHHMM` (see the module docs).
pub fn x_hash(public_key: &str, private_key: &str, minute: &str) -> String {
    let digest = Sha256::digest(format!("{public_key}{minute}").as_bytes());
    let message = hex::encode(digest);
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(private_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn matches_the_briefs_known_answers() {
        assert_eq!(
            x_hash("pubkey123", "privkey456", "202611212330"),
            "YTE0ODQ4M2QxYmU1NzgzYjcxMDQxMDQwOWNhODdlNmYwYzZjZTRkNWQ1YTY0NWQ5NzlkNjg3OWU5NjA1OWRjOA=="
        );
        assert_eq!(
            x_hash("A", "B", "202601010000"),
            "MTZiNzg2YzhmYzM4Mzc5YmRmYzZmNmNlOGFjZTk1ZmZlNDJhZDRhMjZlNTdhMDcxMzc0MmZhYzdlZDM0ZmY4ZA=="
        );
    }

    #[test]
    fn uses_london_time_in_winter_and_summer() {
        // Winter: London is UTC.
        assert_eq!(london_minute(utc("2026-11-21T23:30:59Z")), "202611212330");
        // British Summer Time: 23:30 UTC on 21 June is 00:30 on 22 June in London.
        assert_eq!(london_minute(utc("2026-06-21T23:30:00Z")), "202606220030");
        let credentials = Credentials::new(
            Secret::new("pubkey123".into()),
            Secret::new("privkey456".into()),
        );
        let summer = credentials.headers_at(utc("2026-06-21T23:30:00Z"));
        assert_eq!(
            summer.hash.expose(),
            x_hash("pubkey123", "privkey456", "202606220030")
        );
        assert_ne!(
            summer.hash.expose(),
            x_hash("pubkey123", "privkey456", "202606212330"),
            "a UTC minute would be an hour off in summer"
        );
        // The brief's known answer, computed from an instant (winter, so UTC = London).
        assert_eq!(
            credentials
                .headers_at(utc("2026-11-21T23:30:10Z"))
                .hash
                .expose(),
            "YTE0ODQ4M2QxYmU1NzgzYjcxMDQxMDQwOWNhODdlNmYwYzZjZTRkNWQ1YTY0NWQ5NzlkNjg3OWU5NjA1OWRjOA=="
        );
    }

    #[test]
    fn a_hash_changes_every_minute_and_is_accepted_one_minute_either_side() {
        let credentials = Credentials::new(Secret::new("A".into()), Secret::new("B".into()));
        let at = utc("2026-03-29T00:59:30Z"); // one minute before the clocks go forward
        let now = credentials.headers_at(at).hash;
        let next = credentials
            .headers_at(at + chrono::Duration::minutes(1))
            .hash;
        assert_ne!(now, next);
        // 01:00 UTC on 29 March is 02:00 BST: the London minute jumps an hour.
        assert_eq!(
            london_minute(at + chrono::Duration::minutes(1)),
            "202603290200"
        );
        assert!(credentials.accepts(now.expose(), at));
        assert!(credentials.accepts(now.expose(), at + chrono::Duration::minutes(1)));
        assert!(!credentials.accepts(now.expose(), at + chrono::Duration::minutes(2)));
        assert!(!credentials.accepts("not a hash", at));
    }

    #[test]
    fn never_prints_the_keys_or_the_hash() {
        let credentials = Credentials::new(
            Secret::new("pubkey123".into()),
            Secret::new("privkey456".into()),
        );
        let headers = credentials.headers_at(utc("2026-11-21T23:30:00Z"));
        for shown in [format!("{credentials:?}"), format!("{headers:?}")] {
            assert!(!shown.contains("pubkey123"), "{shown}");
            assert!(!shown.contains("privkey456"), "{shown}");
            assert!(!shown.contains(headers.hash.expose()), "{shown}");
        }
    }
}
