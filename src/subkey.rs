//! Subscription keys: which holder a subscription belongs to, and which of theirs it
//! is. Every key is handed out here, by one allocator ([`Keys`]), so no two holders
//! (WebSocket clients, the terminal's printer, IRC sinks) can ever make the same key,
//! and nobody computes one: a holder asks its [`Owner`] for the next.

use std::sync::atomic::{AtomicU64, Ordering};

/// A subscription's key: unique for the life of the process (a key is never handed
/// out twice, so a replaced subscription's matches still queued are told apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubKey {
    owner: OwnerId,
    n: u64,
}

/// Who holds a subscription (one client, one sink); see [`SubKey::owner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(u64);

impl SubKey {
    /// The key of a subscription no hub holds: a matcher's only one when compiled
    /// alone, matches fed to a sink from elsewhere (`--connect`'s IRC sink). The
    /// allocator never hands it out.
    pub const ALONE: SubKey = SubKey {
        owner: OwnerId(0),
        n: 0,
    };

    /// Whose subscription this is.
    pub fn owner(self) -> OwnerId {
        self.owner
    }

    /// A key made without an allocator, for tests and benchmarks of the matcher
    /// alone (which only needs keys to be distinct; `from_raw(0)` is [`Self::ALONE`]).
    /// Not for product code.
    #[doc(hidden)]
    pub fn from_raw(n: u64) -> SubKey {
        SubKey {
            owner: OwnerId(0),
            n,
        }
    }
}

impl std::fmt::Display for SubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.owner.0, self.n)
    }
}

/// The one allocator of keys (the hub's): hands out owners, each with keys of its own.
#[derive(Debug)]
pub struct Keys {
    /// Owner 0 is outside the allocator ([`SubKey::ALONE`], [`SubKey::from_raw`]).
    next_owner: AtomicU64,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys {
            next_owner: AtomicU64::new(1),
        }
    }
}

impl Keys {
    /// A new holder of subscriptions, whose keys no other holder has.
    pub fn owner(&self) -> Owner {
        Owner {
            id: OwnerId(self.next_owner.fetch_add(1, Ordering::Relaxed)),
            next: 0,
        }
    }
}

/// One holder's keys: each [`key`](Self::key) a new one.
#[derive(Debug)]
pub struct Owner {
    id: OwnerId,
    next: u64,
}

impl Owner {
    pub fn id(&self) -> OwnerId {
        self.id
    }

    /// A key not handed out before.
    pub fn key(&mut self) -> SubKey {
        let n = self.next;
        self.next += 1;
        SubKey { owner: self.id, n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_never_handed_out_twice() {
        let keys = Keys::default();
        let (mut a, mut b) = (keys.owner(), keys.owner());
        let all = [a.key(), a.key(), b.key(), b.key(), SubKey::from_raw(0)];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(all[0].owner(), a.id());
        assert_eq!(all[2].owner(), b.id());
        assert_ne!(a.id(), b.id());
    }
}
