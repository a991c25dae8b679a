//! Pattern budgets of the WebSocket clients (DESIGN §5): per connection, per remote
//! address, and the hub's total, shared fairly. One attacker's connections cannot use
//! up the hub: past its total, the address over its share loses a subscription to
//! the one within it, never the other way round.
//!
//! Patterns are counted as sent (include + exclude of each subscription), not as the
//! matcher dedups them: so what the budgets admit always fits the matcher's
//! `max_patterns`, which the hub total is derived from.

use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::matcher::{CompileError, SubKey};
use crate::protocol::code;

/// The limit a subscribe was refused by, which names its `error` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ClientPatterns,
    AddressPatterns,
    /// Compiled bytes of the client's subscriptions.
    ClientBytes,
    /// Compiled bytes of its address's subscriptions, over all its connections.
    AddressBytes,
    /// The hub's total is reached and the address would hold more than its share.
    HubShare,
    /// The hub's total is reached and no address over its share has a subscription
    /// to give up (what is over is still being compiled, or replaced).
    HubFull,
}

impl Limit {
    pub fn code(self) -> &'static str {
        match self {
            Limit::ClientPatterns => code::TOO_MANY_PATTERNS,
            Limit::AddressPatterns => code::ADDRESS_BUDGET,
            Limit::ClientBytes | Limit::AddressBytes => code::COMPILED_BUDGET,
            Limit::HubShare | Limit::HubFull => code::HUB_BUDGET,
        }
    }
}

/// A refused subscribe: which limit, and a message with the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub limit: Limit,
    pub message: String,
}

/// A budget refusing a subscription as it compiles: the matcher's error that
/// carries the code of the limit.
impl From<Refusal> for CompileError {
    fn from(r: Refusal) -> CompileError {
        CompileError::OverBudget {
            code: r.limit.code(),
            message: r.message,
        }
    }
}

/// The limits, in patterns and in compiled bytes.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub per_client: usize,
    pub per_address: usize,
    /// All clients together.
    pub hub: usize,
    pub bytes_per_client: usize,
    pub bytes_per_address: usize,
}

pub struct Budgets {
    sizes: Sizes,
    held: Mutex<Held>,
    revoked: AtomicU64,
}

#[derive(Default)]
struct Held {
    total: usize,
    /// Only addresses holding patterns (pending ones included).
    addresses: HashMap<IpAddr, usize>,
    /// Compiled bytes per address, only those holding some (pending ones included).
    address_bytes: HashMap<IpAddr, usize>,
    clients: HashMap<u64, Client>,
}

/// What one subscription holds against the budgets.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    patterns: usize,
    bytes: usize,
}

struct Client {
    address: IpAddr,
    subs: HashMap<SubKey, Cost>,
    /// Reserved for subscriptions being compiled (patterns), and compiled but not
    /// yet in place (bytes).
    pending: Cost,
    /// Subscriptions given up to another address, with why, for the session to tell.
    revoked: Vec<(SubKey, String)>,
    wake: Arc<Notify>,
}

impl Client {
    fn holds(&self) -> usize {
        self.subs.values().map(|c| c.patterns).sum::<usize>() + self.pending.patterns
    }

    fn holds_bytes(&self) -> usize {
        self.subs.values().map(|c| c.bytes).sum::<usize>() + self.pending.bytes
    }
}

/// The address a budget is kept for: an IPv6 client usually has a /64 to pick from.
pub fn budget_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !0u128 << 64).into()),
        v4 => v4,
    }
}

impl Budgets {
    pub fn new(sizes: Sizes) -> Arc<Budgets> {
        Arc::new(Budgets {
            sizes,
            held: Mutex::default(),
            revoked: AtomicU64::new(0),
        })
    }

    /// The account of client `client`, connected from `ip`; dropping it releases all.
    pub fn open(self: &Arc<Self>, client: u64, ip: IpAddr) -> Account {
        let wake = Arc::new(Notify::new());
        self.lock().clients.insert(
            client,
            Client {
                address: budget_address(ip),
                subs: HashMap::new(),
                pending: Cost::default(),
                revoked: Vec::new(),
                wake: wake.clone(),
            },
        );
        Account {
            budgets: self.clone(),
            client,
            wake,
        }
    }

    /// Subscriptions given up to an address within its share.
    pub fn revoked(&self) -> u64 {
        self.revoked.load(Ordering::Relaxed)
    }

    /// Patterns held by all clients.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self, limit: Limit, message: String) -> Refusal {
        Refusal { limit, message }
    }

    /// Whether `client` may hold `bytes` more compiled bytes, `replacing` counted
    /// out; its address if so.
    fn check_bytes(
        &self,
        held: &Held,
        client: u64,
        bytes: usize,
        replacing: Option<SubKey>,
    ) -> Result<IpAddr, Refusal> {
        let sizes = self.sizes;
        let Some(me) = held.clients.get(&client) else {
            return Err(self.refuse(Limit::HubFull, "the session is closing".into()));
        };
        let address = me.address;
        let replaced = replacing
            .and_then(|k| me.subs.get(&k))
            .map_or(0, |c| c.bytes);
        let mine = (me.holds_bytes() - replaced).saturating_add(bytes);
        if mine > sizes.bytes_per_client {
            return Err(self.refuse(
                Limit::ClientBytes,
                format!(
                    "at most {} compiled bytes of patterns per client (this subscription \
                     compiles to at least {bytes}, which would make {mine})",
                    sizes.bytes_per_client
                ),
            ));
        }
        let ours = held.address_bytes.get(&address).copied().unwrap_or(0) - replaced;
        let ours = ours.saturating_add(bytes);
        if ours > sizes.bytes_per_address {
            return Err(self.refuse(
                Limit::AddressBytes,
                format!(
                    "at most {} compiled bytes of patterns per address ({address}), over all \
                     its connections (this subscription compiles to at least {bytes}, which \
                     would make {ours})",
                    sizes.bytes_per_address
                ),
            ));
        }
        Ok(address)
    }
}

impl Held {
    fn add(&mut self, address: IpAddr, n: usize) {
        self.total += n;
        *self.addresses.entry(address).or_insert(0) += n;
    }

    fn remove(&mut self, address: IpAddr, n: usize) {
        self.total -= n;
        take_from(&mut self.addresses, address, n);
    }

    fn add_bytes(&mut self, address: IpAddr, n: usize) {
        *self.address_bytes.entry(address).or_insert(0) += n;
    }

    /// Gives back what subscription `cost` held.
    fn remove_cost(&mut self, address: IpAddr, cost: Cost) {
        self.remove(address, cost.patterns);
        take_from(&mut self.address_bytes, address, cost.bytes);
    }

    /// Subscriptions of addresses over `share` (other than `asking`) whose giving up
    /// frees `need` patterns: each time the largest subscription of the address most
    /// over its share. `None` when they cannot.
    fn victims(&self, asking: IpAddr, share: usize, need: usize) -> Option<Vec<(u64, SubKey)>> {
        let mut subs: HashMap<IpAddr, Vec<(usize, u64, SubKey)>> = HashMap::new();
        for (&client, c) in &self.clients {
            if c.address != asking && self.addresses.get(&c.address) > Some(&share) {
                let of = subs.entry(c.address).or_default();
                of.extend(c.subs.iter().map(|(&k, n)| (n.patterns, client, k)));
            }
        }
        let mut over: BinaryHeap<(usize, IpAddr)> = subs
            .iter_mut()
            .map(|(&a, s)| {
                s.sort_unstable();
                (self.addresses[&a], a)
            })
            .collect();
        let (mut freed, mut victims) = (0, Vec::new());
        while freed < need {
            let (held, address) = over.pop()?;
            let (n, client, key) = subs.get_mut(&address)?.pop()?;
            freed += n;
            victims.push((client, key));
            if held - n > share && subs.get(&address).is_some_and(|s| !s.is_empty()) {
                over.push((held - n, address));
            }
        }
        Some(victims)
    }
}

/// Whether a subscription being compiled still fits the client's and its address's
/// budgets of compiled bytes (see [`Account::bytes_check`]).
pub struct BytesCheck {
    budgets: Arc<Budgets>,
    client: u64,
    replacing: Option<SubKey>,
}

impl BytesCheck {
    pub fn check(&self, bytes: usize) -> Result<(), Refusal> {
        let held = self.budgets.lock();
        self.budgets
            .check_bytes(&held, self.client, bytes, self.replacing)
            .map(|_| ())
    }
}

/// Takes `n` from `map[key]`, forgetting the key at 0.
fn take_from(map: &mut HashMap<IpAddr, usize>, key: IpAddr, n: usize) {
    if let Some(held) = map.get_mut(&key) {
        *held -= n;
        if *held == 0 {
            map.remove(&key);
        }
    }
}

/// One client's budget. Every change of its subscriptions goes through here.
pub struct Account {
    budgets: Arc<Budgets>,
    client: u64,
    wake: Arc<Notify>,
}

impl Account {
    /// Reserves `count` patterns for a subscription about to be compiled, which is to
    /// replace `replacing` (whose patterns count until [`commit`](Self::commit), as
    /// the matcher holds both meanwhile). Returns the other clients' subscriptions
    /// given up to make room: the caller removes them from the hub first.
    pub fn reserve(&self, count: usize, replacing: Option<SubKey>) -> Result<Vec<SubKey>, Refusal> {
        let b = &*self.budgets;
        let sizes = b.sizes;
        let mut held = b.lock();
        let Some(me) = held.clients.get(&self.client) else {
            return Err(b.refuse(Limit::HubFull, "the session is closing".into()));
        };
        let address = me.address;
        let replaced = replacing
            .and_then(|k| me.subs.get(&k))
            .map_or(0, |c| c.patterns);
        let mine = me.holds() - replaced + count;
        if mine > sizes.per_client {
            return Err(b.refuse(
                Limit::ClientPatterns,
                format!(
                    "at most {} patterns per client (this would make {mine})",
                    sizes.per_client
                ),
            ));
        }
        let ours = held.addresses.get(&address).copied().unwrap_or(0);
        let ours_after = ours - replaced + count;
        if ours_after > sizes.per_address {
            return Err(b.refuse(
                Limit::AddressPatterns,
                format!(
                    "at most {} patterns per address ({address}), over all its connections \
                     (this would make {ours_after})",
                    sizes.per_address
                ),
            ));
        }
        let mut revoked = Vec::new();
        let need = (held.total + count).saturating_sub(sizes.hub);
        if need > 0 {
            let addresses = held.addresses.len() + usize::from(ours == 0);
            let share = sizes.hub / addresses;
            if ours_after > share {
                return Err(b.refuse(
                    Limit::HubShare,
                    format!(
                        "the hub holds {} of its {} patterns, and your address ({address}) \
                         would hold {ours_after}, over its share of {share} ({} / {addresses} \
                         addresses)",
                        held.total, sizes.hub, sizes.hub
                    ),
                ));
            }
            let Some(victims) = held.victims(address, share, need) else {
                return Err(b.refuse(
                    Limit::HubFull,
                    format!(
                        "the hub holds {} of its {} patterns, and no address over its share \
                         has a subscription in place to give up",
                        held.total, sizes.hub
                    ),
                ));
            };
            let held = &mut *held;
            for (client, key) in victims {
                let Some(c) = held.clients.get_mut(&client) else {
                    continue;
                };
                let Some(cost) = c.subs.remove(&key) else {
                    continue;
                };
                let (from, had) = (c.address, held.addresses[&c.address]);
                let why = format!(
                    "dropped to make room: the hub holds its {} patterns, and your address \
                     ({from}) held {had}, over its share of {share}",
                    sizes.hub
                );
                c.revoked.push((key, why));
                c.wake.notify_one();
                held.remove_cost(from, cost);
                b.revoked.fetch_add(1, Ordering::Relaxed);
                revoked.push(key);
            }
        }
        held.add(address, count);
        if let Some(me) = held.clients.get_mut(&self.client) {
            me.pending.patterns += count;
        }
        Ok(revoked)
    }

    /// Reserves `bytes`, what the subscription reserved for compiled to, before it
    /// joins the matcher; `replacing` counts out as in [`reserve`](Self::reserve).
    /// Only then is its size known (its compile stops early at a [`BytesCheck`]);
    /// one connection asks one subscribe at a time, so it holds at most one compile
    /// beyond its budget, and that one stopped at its first pattern over.
    pub fn reserve_bytes(&self, bytes: usize, replacing: Option<SubKey>) -> Result<(), Refusal> {
        let b = &*self.budgets;
        let mut held = b.lock();
        let address = b.check_bytes(&held, self.client, bytes, replacing)?;
        held.add_bytes(address, bytes);
        if let Some(me) = held.clients.get_mut(&self.client) {
            me.pending.bytes += bytes;
        }
        Ok(())
    }

    /// For the compile of a subscription replacing `replacing`: whether what it has
    /// compiled so far still fits (nothing reserved).
    pub fn bytes_check(&self, replacing: Option<SubKey>) -> BytesCheck {
        BytesCheck {
            budgets: self.budgets.clone(),
            client: self.client,
            replacing,
        }
    }

    /// The subscription reserved for (`count` patterns, `bytes` compiled) is in
    /// place as `key`; `replacing` is gone.
    pub fn commit(&self, key: SubKey, count: usize, bytes: usize, replacing: Option<SubKey>) {
        let mut held = self.budgets.lock();
        let Some(me) = held.clients.get_mut(&self.client) else {
            return;
        };
        me.pending.patterns -= count;
        me.pending.bytes -= bytes;
        me.subs.insert(
            key,
            Cost {
                patterns: count,
                bytes,
            },
        );
        let address = me.address;
        let old = replacing.and_then(|k| me.subs.remove(&k));
        if let Some(cost) = old {
            held.remove_cost(address, cost);
        }
    }

    /// The subscription reserved for failed to compile or to join the matcher
    /// (`bytes`: what [`reserve_bytes`](Self::reserve_bytes) took for it, if anything).
    pub fn cancel(&self, count: usize, bytes: usize) {
        let mut held = self.budgets.lock();
        if let Some(me) = held.clients.get_mut(&self.client) {
            me.pending.patterns -= count;
            me.pending.bytes -= bytes;
            let address = me.address;
            held.remove_cost(
                address,
                Cost {
                    patterns: count,
                    bytes,
                },
            );
        }
    }

    /// Subscription `key` is gone (unsubscribed).
    pub fn release(&self, key: SubKey) {
        let mut held = self.budgets.lock();
        if let Some(me) = held.clients.get_mut(&self.client) {
            let address = me.address;
            if let Some(cost) = me.subs.remove(&key) {
                held.remove_cost(address, cost);
            }
        }
    }

    /// Woken when a subscription of this client was given up (see [`revoked`](Self::revoked)).
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The subscriptions given up since last asked, with why.
    pub fn revoked(&self) -> Vec<(SubKey, String)> {
        let mut held = self.budgets.lock();
        held.clients
            .get_mut(&self.client)
            .map(|me| std::mem::take(&mut me.revoked))
            .unwrap_or_default()
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let mut held = self.budgets.lock();
        if let Some(me) = held.clients.remove(&self.client) {
            let cost = Cost {
                patterns: me.holds(),
                bytes: me.holds_bytes(),
            };
            held.remove_cost(me.address, cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(per_client: usize, per_address: usize, hub: usize) -> Arc<Budgets> {
        Budgets::new(Sizes {
            per_client,
            per_address,
            hub,
            bytes_per_client: 1000,
            bytes_per_address: 1500,
        })
    }

    fn k(n: u64) -> SubKey {
        SubKey::from_raw(n)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// Reserves and commits `count` as `key`.
    fn take(a: &Account, key: SubKey, count: usize) -> Result<Vec<SubKey>, Limit> {
        let revoked = a.reserve(count, None).map_err(|r| r.limit)?;
        a.commit(key, count, 0, None);
        Ok(revoked)
    }

    #[test]
    fn each_limit_refuses_with_its_own_name() {
        let b = budgets(10, 15, 100);
        let (a1, a2) = (b.open(1, ip("10.0.0.1")), b.open(2, ip("10.0.0.1")));
        assert_eq!(take(&a1, k(1), 10), Ok(vec![]));
        assert_eq!(take(&a1, k(2), 1), Err(Limit::ClientPatterns));
        assert_eq!(take(&a2, k(3), 6), Err(Limit::AddressPatterns));
        assert_eq!(take(&a2, k(3), 5), Ok(vec![]));
        // Replacing counts the old one out of the client's and address's limits.
        assert!(a1.reserve(10, Some(k(1))).is_ok());
        a1.commit(k(4), 10, 0, Some(k(1)));
        assert_eq!(b.total(), 15);
    }

    #[test]
    fn over_its_share_an_address_gives_way() {
        let b = budgets(100, 100, 100);
        let big = b.open(1, ip("10.0.0.1"));
        let small = b.open(2, ip("10.0.0.2"));
        assert_eq!(take(&big, k(1), 60), Ok(vec![]));
        assert_eq!(take(&big, k(2), 40), Ok(vec![]));
        // The hub is full: the address within its share (50 of 100) gets room from
        // the one over it, whose largest subscription goes.
        assert_eq!(take(&small, k(3), 10), Ok(vec![k(1)]));
        assert_eq!(big.revoked().len(), 1);
        assert_eq!(b.total(), 50);
        // Over its share, an address is refused at a full hub.
        assert_eq!(take(&small, k(4), 40), Ok(vec![]));
        assert_eq!(take(&small, k(5), 11), Err(Limit::HubShare));
        assert_eq!(take(&big, k(6), 11), Err(Limit::HubShare));
        assert_eq!(b.revoked(), 1);
    }

    #[test]
    fn patterns_still_compiling_are_not_given_up() {
        let b = budgets(10, 10, 10);
        let (x, y) = (b.open(1, ip("10.0.0.1")), b.open(2, ip("10.0.0.2")));
        assert!(x.reserve(10, None).is_ok());
        assert_eq!(take(&y, k(1), 1), Err(Limit::HubFull));
        x.commit(k(7), 10, 0, None);
        assert_eq!(take(&y, k(1), 1), Ok(vec![k(7)]));
    }

    #[test]
    fn everything_is_released_when_the_client_goes() {
        let b = budgets(100, 100, 100);
        let a = b.open(1, ip("10.0.0.1"));
        assert_eq!(take(&a, k(1), 30), Ok(vec![]));
        assert!(a.reserve(20, None).is_ok());
        a.cancel(20, 0);
        assert!(a.reserve(7, None).is_ok());
        assert_eq!(b.total(), 37);
        drop(a);
        assert_eq!(b.total(), 0);
        assert!(b.lock().addresses.is_empty());
    }

    /// Reserves and commits `bytes` as `key` (one pattern).
    fn take_bytes(a: &Account, key: SubKey, bytes: usize) -> Result<(), Limit> {
        a.reserve(1, None).map_err(|r| r.limit)?;
        if let Err(r) = a.reserve_bytes(bytes, None) {
            a.cancel(1, 0);
            return Err(r.limit);
        }
        a.commit(key, 1, bytes, None);
        Ok(())
    }

    #[test]
    fn compiled_bytes_are_budgeted_per_client_and_per_address() {
        let b = budgets(100, 100, 100);
        let (a1, a2) = (b.open(1, ip("10.0.0.1")), b.open(2, ip("10.0.0.1")));
        assert_eq!(take_bytes(&a1, k(1), 600), Ok(()));
        assert_eq!(take_bytes(&a1, k(2), 401), Err(Limit::ClientBytes));
        assert_eq!(take_bytes(&a1, k(2), 400), Ok(()));
        assert_eq!(take_bytes(&a2, k(3), 501), Err(Limit::AddressBytes));
        assert_eq!(take_bytes(&a2, k(3), 500), Ok(()));
        // Another address has its own; a replaced subscription counts out.
        let elsewhere = b.open(3, ip("10.0.0.2"));
        assert_eq!(take_bytes(&elsewhere, k(4), 1000), Ok(()));
        assert!(a1.reserve(1, Some(k(1))).is_ok());
        assert!(a1.reserve_bytes(600, Some(k(1))).is_ok());
        a1.commit(k(5), 1, 600, Some(k(1)));
        // Released on unsubscribe and when the client goes; refusals hold nothing.
        a2.release(k(3));
        assert_eq!(take_bytes(&a1, k(6), 1), Err(Limit::ClientBytes));
        drop(a1);
        assert_eq!(take_bytes(&a2, k(7), 1000), Ok(()));
        drop((a2, elsewhere));
        let held = b.lock();
        assert!(held.address_bytes.is_empty() && held.addresses.is_empty());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(
            budget_address(ip("2001:db8:1:2:aaaa::1")),
            budget_address(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            budget_address(ip("2001:db8:1:2::1")),
            budget_address(ip("2001:db8:1:3::1"))
        );
        assert_eq!(budget_address(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }
}
