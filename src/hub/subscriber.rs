//! One holder of subscriptions (a WebSocket client, the terminal's printer, an IRC
//! sink) as the hub sees it: its keys, its sink and its subscriptions' place in the
//! hub, in one value. Every subscription is made and ended through one: nobody else
//! allocates a key or hands the hub a sink, and when the holder goes (dropped), so
//! does every subscription it holds.

use std::sync::Arc;

use super::{Delivery, Hub, SinkQueue, Within};
use crate::matcher::registry::Compiled;
use crate::matcher::{CompileError, SubKey, Subscription};
use crate::subkey::Owner;

/// See the module. Made by [`Hub::subscriber`].
pub struct Subscriber {
    hub: Arc<Hub>,
    /// Hands out this holder's keys, each a new one.
    owner: Owner,
    /// Where all of its subscriptions' matches go.
    sink: Arc<SinkQueue>,
}

impl Hub {
    /// A new holder of subscriptions whose matches go to `sink`.
    pub fn subscriber(self: &Arc<Self>, sink: Arc<SinkQueue>) -> Subscriber {
        Subscriber {
            hub: self.clone(),
            owner: self.owner(),
            sink,
        }
    }
}

impl Subscriber {
    /// The hub it subscribes to.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Where its matches go.
    pub fn sink(&self) -> &Arc<SinkQueue> {
        &self.sink
    }

    /// Subscribes `sub` under a new key of its own (see [`Hub::subscribe`]): the
    /// key, and the up to `backlog` most recent matching lines.
    pub async fn subscribe(
        &mut self,
        sub: Subscription,
        backlog: usize,
    ) -> Result<(SubKey, Vec<Delivery>), CompileError> {
        let key = self.owner.key();
        let recent = self
            .hub
            .subscribe(key, sub, self.sink.clone(), backlog)
            .await?;
        Ok((key, recent))
    }

    /// [`subscribe`](Self::subscribe) within a budget (see [`Hub::subscribe_admitting`]).
    pub async fn subscribe_admitting(
        &mut self,
        sub: Subscription,
        backlog: usize,
        within: Within,
        admit: impl FnOnce(&Compiled) -> Result<(), CompileError>,
    ) -> Result<(SubKey, Vec<Delivery>), CompileError> {
        let key = self.owner.key();
        let sink = self.sink.clone();
        let recent = self
            .hub
            .subscribe_admitting(key, sub, sink, backlog, within, admit)
            .await?;
        Ok((key, recent))
    }

    /// [`subscribe`](Self::subscribe) for a thread outside any runtime (see
    /// [`Hub::subscribe_blocking`]).
    pub fn subscribe_blocking(
        &mut self,
        sub: Subscription,
        backlog: usize,
    ) -> Result<(SubKey, Vec<Delivery>), CompileError> {
        let key = self.owner.key();
        let recent = self
            .hub
            .subscribe_blocking(key, sub, self.sink.clone(), backlog)?;
        Ok((key, recent))
    }

    /// Ends its subscription `key` (one of its own: another holder's is left alone).
    pub fn unsubscribe(&self, key: SubKey) {
        if key.owner() == self.owner.id() {
            self.hub.unsubscribe(key);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.hub.unsubscribe_owner(self.owner.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Overflow, SinkKind, Spans, Takes};
    use crate::matcher::Limits;

    fn sub(pattern: &str) -> Subscription {
        Subscription {
            include: vec![pattern.to_owned()],
            ..Subscription::default()
        }
    }

    fn sink() -> Arc<SinkQueue> {
        let kind = SinkKind {
            takes: Takes::Lines(Overflow::DropOldest),
            spans: Spans::NotWanted,
        };
        Arc::new(SinkQueue::new(10, kind))
    }

    /// A holder ends its own subscriptions only, and all of them when it goes.
    #[test]
    fn a_subscriber_ends_its_own_subscriptions_and_all_of_them_when_dropped() -> anyhow::Result<()>
    {
        let hub = Hub::new(Limits::default(), 0);
        let (mut a, mut b) = (hub.subscriber(sink()), hub.subscriber(sink()));
        let (a1, _) = a.subscribe_blocking(sub("x"), 0)?;
        let (a2, _) = a.subscribe_blocking(sub("y"), 0)?;
        let (b1, _) = b.subscribe_blocking(sub("z"), 0)?;
        assert!(a1 != a2 && a1.owner() != b1.owner());
        a.unsubscribe(b1);
        assert!(hub.sinks.load().contains_key(&b1));
        a.unsubscribe(a1);
        assert!(!hub.sinks.load().contains_key(&a1));
        drop(a);
        let left: Vec<SubKey> = hub.sinks.load().keys().copied().collect();
        assert_eq!(left, [b1]);
        Ok(())
    }
}
