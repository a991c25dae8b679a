//! One WebSocket client's subscriptions, owned in one place: the client's ids and
//! the key each names now, its [`Subscriber`] (keys, sink, the hub's side) and its
//! budget [`Account`]. Subscribe, replace, unsubscribe, a subscription given up to
//! the budgets and the client's going each change all of them here, together; the
//! session only speaks the protocol.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::budget::Account;
use crate::config::HubLimits;
use crate::hub::{Delivery, SinkQueue, Subscriber, Within};
use crate::matcher::registry::Compiled;
use crate::matcher::{CompileError, StreamSelector, SubKey, Subscription};
use crate::protocol::{code, ServerMsg};

/// What a `subscribe` asks for, as the client sent it.
pub struct Asked {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub ignore_case: bool,
    pub streams: Option<Vec<String>>,
    pub backlog: usize,
}

pub struct Subscriptions {
    /// Its keys, its sink, its subscriptions in the hub.
    subscriber: Subscriber,
    ids: Ids,
    /// The patterns held, against the budgets. After `subscriber` (fields drop in
    /// order): the budget goes back once the hub has let go of the subscriptions.
    account: Account,
    limits: HubLimits,
}

/// The client's ids, each with the key of its subscription now, and back (the
/// session names each delivery by its id). Changed only through its methods, which
/// keep the two directions together.
#[derive(Default)]
struct Ids {
    keys: HashMap<String, SubKey>,
    ids: HashMap<SubKey, String>,
}

impl Ids {
    fn key(&self, id: &str) -> Option<SubKey> {
        self.keys.get(id).copied()
    }

    fn id(&self, key: SubKey) -> Option<&str> {
        self.ids.get(&key).map(String::as_str)
    }

    /// `id` names `key` now (instead of the key it named).
    fn insert(&mut self, id: &str, key: SubKey) {
        if let Some(old) = self.keys.insert(id.to_owned(), key) {
            self.ids.remove(&old);
        }
        self.ids.insert(key, id.to_owned());
    }

    fn remove_id(&mut self, id: &str) -> Option<SubKey> {
        let key = self.keys.remove(id)?;
        self.ids.remove(&key);
        Some(key)
    }

    fn remove_key(&mut self, key: SubKey) -> Option<String> {
        let id = self.ids.remove(&key)?;
        self.keys.remove(&id);
        Some(id)
    }

    fn len(&self) -> usize {
        self.keys.len()
    }
}

impl Subscriptions {
    /// `subscriber`'s sink is the client's own queue (closed when this goes).
    pub fn new(subscriber: Subscriber, account: Account, limits: HubLimits) -> Subscriptions {
        Subscriptions {
            subscriber,
            ids: Ids::default(),
            account,
            limits,
        }
    }

    /// Where the matches of every subscription go.
    pub fn queue(&self) -> &Arc<SinkQueue> {
        self.subscriber.sink()
    }

    /// The id of subscription `key`, while the client holds it (a delivery of a
    /// key replaced or unsubscribed meanwhile has none: it is left out).
    pub fn id_of(&self, key: SubKey) -> Option<&str> {
        self.ids.id(key)
    }

    /// Subscribes (or, for an `id` held already, replaces that subscription) within
    /// the limits and budgets; on success returns its backlog lines, else the error
    /// to answer with. A refused subscribe leaves what was there as it was.
    pub async fn subscribe(&mut self, id: &str, asked: Asked) -> Result<Vec<Delivery>, ServerMsg> {
        let limits = &self.limits;
        let bad = |code: &str, message: String| ServerMsg::error(Some(id), code, message);
        if id.is_empty() || id.len() > 256 {
            return Err(bad(
                code::BAD_REQUEST,
                "a subscription needs an id of 1 to 256 bytes".into(),
            ));
        }
        let replacing = self.ids.key(id);
        if replacing.is_none() && self.ids.len() >= limits.max_subscriptions_per_client {
            return Err(bad(
                code::TOO_MANY_SUBSCRIPTIONS,
                format!(
                    "at most {} subscriptions per client",
                    limits.max_subscriptions_per_client
                ),
            ));
        }
        let count = asked.include.len() + asked.exclude.len();
        let streams = StreamSelector::new(&asked.streams.unwrap_or_default())
            .map_err(|e| bad(code::BAD_REQUEST, e.to_string()))?;
        let given_up = self
            .account
            .reserve(count, replacing)
            .map_err(|r| bad(r.limit.code(), r.message))?;
        // Others' subscriptions that gave way: out of the matcher before ours is in
        // (their clients are told by their accounts, and forget their ids then).
        for key in given_up {
            self.subscriber.hub().unsubscribe(key);
        }
        let sub = Subscription {
            include: asked.include,
            exclude: asked.exclude,
            ignore_case: asked.ignore_case,
            streams,
        };
        let backlog = asked.backlog.min(limits.max_backlog_request);
        // Its compiled size counts against the budgets before it joins the matcher.
        let mut bytes = 0;
        let account = &self.account;
        let check = account.bytes_check(replacing);
        let within: Within = Arc::new(move |size| Ok(check.check(size)?));
        let admit = |compiled: &Compiled| {
            let size = compiled.compiled_bytes();
            account.reserve_bytes(size, replacing)?;
            bytes = size;
            Ok(())
        };
        // A replacement gets a new key (the subscriber's next), so matches of the
        // old filter still in the queue are recognised and left out.
        let subscribed = self
            .subscriber
            .subscribe_admitting(sub, backlog, within, admit)
            .await;
        let (key, recent) = match subscribed {
            Ok(subscribed) => subscribed,
            Err(e) => {
                self.account.cancel(count, bytes);
                return Err(match e {
                    CompileError::Pattern(e) => ServerMsg::Error {
                        id: Some(id.to_owned()),
                        code: e.code().into(),
                        message: e.to_string(),
                        pattern: Some(e.pattern().to_owned()),
                    },
                    // The code names the limit hit (`CompileError::code`); the
                    // matcher's own bounds (the compiled size of all patterns, say)
                    // are the hub's budget.
                    other => bad(other.code(), other.to_string()),
                });
            }
        };
        if let Some(old) = replacing {
            self.subscriber.unsubscribe(old);
        }
        self.account.commit(key, count, bytes, replacing);
        self.ids.insert(id, key);
        Ok(recent)
    }

    /// Ends subscription `id`; false when the client holds none of that id.
    pub fn unsubscribe(&mut self, id: &str) -> bool {
        let Some(key) = self.ids.remove_id(id) else {
            return false;
        };
        self.subscriber.unsubscribe(key);
        self.account.release(key);
        true
    }

    /// Woken when the budgets gave up one of these subscriptions (see
    /// [`revoked`](Self::revoked)).
    pub fn wake(&self) -> Arc<Notify> {
        self.account.wake()
    }

    /// The subscriptions given up to the budgets since last asked (out of the hub
    /// already), forgotten here: each id with why.
    pub fn revoked(&mut self) -> Vec<(String, String)> {
        self.account
            .revoked()
            .into_iter()
            // Replaced or unsubscribed meanwhile: nothing to tell.
            .filter_map(|(key, why)| Some((self.ids.remove_key(key)?, why)))
            .collect()
    }
}

impl Drop for Subscriptions {
    /// The client went: its queue closes, then (the fields dropping) the hub lets go
    /// of its subscriptions, then the budgets do.
    fn drop(&mut self) {
        self.subscriber.sink().close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_one_key_at_a_time_both_ways() {
        let (k1, k2, k3) = (
            SubKey::from_raw(1),
            SubKey::from_raw(2),
            SubKey::from_raw(3),
        );
        let mut ids = Ids::default();
        ids.insert("a", k1);
        ids.insert("b", k2);
        // Replaced: the old key names nothing any more.
        ids.insert("a", k3);
        assert_eq!(
            (ids.key("a"), ids.id(k3), ids.id(k1)),
            (Some(k3), Some("a"), None)
        );
        assert_eq!(ids.remove_key(k2).as_deref(), Some("b"));
        assert_eq!(ids.key("b"), None);
        assert_eq!(ids.remove_id("a"), Some(k3));
        assert_eq!((ids.len(), ids.id(k3)), (0, None));
    }
}
