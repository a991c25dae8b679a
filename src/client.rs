//! Pieces shared by the programs that connect to a hub (`--connect`, `agent`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Between half and all of `d`, so clients that lost the same hub do not all come
/// back at the same moment.
pub fn jitter(d: Duration) -> Duration {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(d.as_nanos() as u64);
    d.mul_f64(0.5 + (h.finish() % 1000) as f64 / 2000.0)
}

/// Percent-encodes a query parameter value (a token, say).
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_all() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j >= Duration::from_secs(1) && j <= Duration::from_secs(2));
        }
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
