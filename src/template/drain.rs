//! Drain's online clustering (He et al., ICWS 2017): lines of equal token
//! count and equal leading tokens form a group; within it a line joins the
//! most similar template if similar enough, else starts one; joining turns
//! the differing positions into wildcards. Bounded: at most `cap` templates,
//! the least recently seen evicted.

use super::tokens::{route_token, WILD};
use super::TemplateId;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

pub struct Cluster {
    pub tokens: Vec<Box<str>>,
    pub count: u64,
    pub id: TemplateId,
    last_seen: u64,
    group: u64,
}

/// What one line did to the clusters.
pub struct Seen {
    pub slot: usize,
    /// The id the line's template had before this line generalised it (or
    /// merged it into an equal template), so callers can alias it.
    pub replaced: Option<TemplateId>,
}

pub struct Drain {
    clusters: Vec<Option<Cluster>>,
    free: Vec<usize>,
    groups: HashMap<u64, Vec<usize>>,
    by_id: HashMap<TemplateId, usize>,
    /// last-seen tick → slot: the eviction order.
    lru: BTreeMap<u64, usize>,
    tick: u64,
    similarity: f64,
    prefix: usize,
    cap: usize,
    evicted: u64,
}

/// FNV-1a, 64 bits: fixed, so ids are the same in every run and build
/// (std's hasher is randomly seeded and may change between releases).
pub fn fnv(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.as_ref() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator no token holds: `a b` and `ab` differ.
        h ^= 0x1f;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub fn template_id<S: AsRef<str>>(tokens: &[S]) -> TemplateId {
    TemplateId(fnv(tokens.iter().map(|t| t.as_ref().as_bytes())))
}

impl Drain {
    pub fn new(cap: usize, similarity: f64, prefix: usize) -> Self {
        Drain {
            clusters: Vec::new(),
            free: Vec::new(),
            groups: HashMap::new(),
            by_id: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            similarity,
            prefix,
            cap: cap.max(1),
            evicted: 0,
        }
    }

    pub fn get(&self, slot: usize) -> Option<&Cluster> {
        self.clusters.get(slot).and_then(Option::as_ref)
    }

    pub fn slot_of(&self, id: TemplateId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    pub fn held(&self) -> usize {
        self.by_id.len()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.iter().flatten()
    }

    fn group_key(&self, tokens: &[Cow<'_, str>]) -> u64 {
        let len = (tokens.len() as u64).to_le_bytes();
        let lead = tokens
            .iter()
            .take(self.prefix)
            .map(|t| route_token(t).as_bytes());
        fnv(std::iter::once(&len[..]).chain(lead))
    }

    /// Drain's similarity: the share of positions where the template holds
    /// the line's token; a wildcard matches anything but does not count.
    fn similarity(template: &[Box<str>], tokens: &[Cow<'_, str>]) -> (f64, usize) {
        if template.len() != tokens.len() {
            return (-1.0, 0);
        }
        if tokens.is_empty() {
            return (1.0, 0);
        }
        let mut same = 0usize;
        let mut wild = 0usize;
        for (t, s) in template.iter().zip(tokens) {
            if &**t == WILD {
                wild += 1;
                if s.as_ref() == WILD {
                    same += 1;
                }
            } else if **t == **s {
                same += 1;
            }
        }
        (same as f64 / tokens.len() as f64, wild)
    }

    pub fn observe(&mut self, tokens: &[Cow<'_, str>]) -> Seen {
        self.tick += 1;
        let key = self.group_key(tokens);
        let mut best: Option<(usize, f64, usize)> = None;
        for &slot in self.groups.get(&key).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(c) = self.get(slot) {
                let (sim, wild) = Self::similarity(&c.tokens, tokens);
                if best.is_none_or(|(_, bs, bw)| sim > bs || (sim == bs && wild > bw)) {
                    best = Some((slot, sim, wild));
                }
            }
        }
        match best {
            Some((slot, sim, _)) if sim >= self.similarity => self.join(slot, tokens),
            _ => Seen {
                slot: self.create(key, tokens),
                replaced: None,
            },
        }
    }

    fn touch(&mut self, slot: usize) {
        let tick = self.tick;
        if let Some(c) = self.clusters.get_mut(slot).and_then(Option::as_mut) {
            self.lru.remove(&c.last_seen);
            c.last_seen = tick;
            c.count += 1;
            self.lru.insert(tick, slot);
        }
    }

    fn join(&mut self, slot: usize, tokens: &[Cow<'_, str>]) -> Seen {
        self.touch(slot);
        let Some(c) = self.clusters.get_mut(slot).and_then(Option::as_mut) else {
            return Seen {
                slot,
                replaced: None,
            };
        };
        let mut changed = false;
        for (t, s) in c.tokens.iter_mut().zip(tokens) {
            if **t != **s && &**t != WILD {
                *t = WILD.into();
                changed = true;
            }
        }
        if !changed {
            return Seen {
                slot,
                replaced: None,
            };
        }
        let old = c.id;
        let new = template_id(&c.tokens);
        self.by_id.remove(&old);
        match self.by_id.get(&new).copied() {
            Some(other) if other != slot => {
                // It became equal to another template: one template, one id.
                let count = c.count;
                self.remove(slot);
                if let Some(o) = self.clusters.get_mut(other).and_then(Option::as_mut) {
                    o.count += count;
                }
                Seen {
                    slot: other,
                    replaced: Some(old),
                }
            }
            _ => {
                c.id = new;
                self.by_id.insert(new, slot);
                Seen {
                    slot,
                    replaced: Some(old),
                }
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if let Some(c) = self.clusters.get_mut(slot).and_then(Option::take) {
            self.lru.remove(&c.last_seen);
            if self.by_id.get(&c.id) == Some(&slot) {
                self.by_id.remove(&c.id);
            }
            if let Some(g) = self.groups.get_mut(&c.group) {
                g.retain(|&s| s != slot);
                if g.is_empty() {
                    self.groups.remove(&c.group);
                }
            }
            self.free.push(slot);
        }
    }

    fn create(&mut self, group: u64, tokens: &[Cow<'_, str>]) -> usize {
        let id = template_id(tokens);
        if let Some(&slot) = self.by_id.get(&id) {
            // Same template already known under another group key (its
            // generalised lead tokens): the same id, the same template.
            self.touch(slot);
            return slot;
        }
        while self.by_id.len() >= self.cap {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            // pop_first took it out of the order already; remove() tolerates that.
            self.remove(victim);
            self.evicted += 1;
        }
        let tokens: Vec<Box<str>> = tokens.iter().map(|t| Box::from(t.as_ref())).collect();
        let cluster = Cluster {
            tokens,
            count: 1,
            id,
            last_seen: self.tick,
            group,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.clusters[s] = Some(cluster);
                s
            }
            None => {
                self.clusters.push(Some(cluster));
                self.clusters.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        self.lru.insert(self.tick, slot);
        self.groups.entry(group).or_default().push(slot);
        slot
    }
}
