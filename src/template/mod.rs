//! Online log-template mining: each line gets the id of its template (the
//! line with its variable parts as wildcards), learnt as lines pass.
//!
//! A line's header (timestamp, level, host, `component[pid]:`, bracketed
//! fields; [`header`]) is cut off, the message is tokenised with its values
//! masked ([`tokens`]) and clustered by Drain ([`drain`]). Memory is bounded
//! by [`MinerConfig::max_templates`] (least recently seen evicted, counted)
//! and by the per-line caps.
//!
//! Ids: a template's id is a fixed hash (FNV-1a) of its token sequence, so the
//! same template has the same id in every run and after a restart without any
//! saved state. When a template generalises (a position becomes a wildcard)
//! its id changes with it; the miner reports the old id and keeps an alias
//! from it to the current one ([`Miner::resolve`]), bounded like the rest.

pub(crate) mod drain;
pub mod header;
pub(crate) mod tokens;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;

/// A template's stable id: shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TemplateId(pub u64);

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Clone, Debug)]
pub struct MinerConfig {
    /// Templates kept; beyond it the least recently seen is evicted.
    pub max_templates: usize,
    /// Share of positions a line must share with a template to join it.
    pub similarity: f64,
    /// Leading tokens that pick a line's group (Drain's tree depth minus 2).
    pub prefix_tokens: usize,
    /// Tokens of a line considered; the rest are ignored.
    pub max_tokens: usize,
    /// Bytes of a line considered (cut at a character boundary).
    pub max_line_bytes: usize,
    /// Recognise and cut the header (off: plain Drain on the whole line).
    pub header: bool,
    /// Mask values (numbers, ids, paths, …) before clustering.
    pub masking: bool,
    /// Aliases (old id → current id) kept; the oldest dropped beyond it.
    pub max_aliases: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            max_templates: 1000,
            similarity: 0.5,
            prefix_tokens: 2,
            max_tokens: 64,
            max_line_bytes: 4096,
            header: true,
            masking: true,
            max_aliases: 4000,
        }
    }
}

impl MinerConfig {
    /// Drain as published, untuned: the whole line, no masks beyond Drain's
    /// own rule that tokens with digits do not route.
    pub fn plain_drain() -> Self {
        MinerConfig {
            header: false,
            masking: false,
            similarity: 0.4,
            ..MinerConfig::default()
        }
    }
}

/// What [`Miner::observe`] says about one line.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Observed {
    /// The line's template, as it is after this line.
    pub id: TemplateId,
    /// The id this line's template had until this line generalised it; from
    /// now on it resolves to `id`.
    pub replaced: Option<TemplateId>,
}

/// A template as the miner holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Template {
    pub id: TemplateId,
    /// The tokens joined by spaces, values as `<*>`.
    pub text: String,
    /// Lines that matched it.
    pub count: u64,
}

pub struct Miner {
    cfg: MinerConfig,
    drain: drain::Drain,
    aliases: HashMap<TemplateId, TemplateId>,
    alias_order: VecDeque<TemplateId>,
    aliases_dropped: u64,
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Miner {
    pub fn new(cfg: MinerConfig) -> Self {
        Miner {
            drain: drain::Drain::new(cfg.max_templates, cfg.similarity, cfg.prefix_tokens),
            cfg,
            aliases: HashMap::new(),
            alias_order: VecDeque::new(),
            aliases_dropped: 0,
        }
    }

    /// Learn from one line (without its line ending) and give its template id.
    pub fn observe(&mut self, line: &str) -> Observed {
        let line = cut(line, self.cfg.max_line_bytes);
        let content = if self.cfg.header {
            header::content(line)
        } else {
            line
        };
        let mut toks: Vec<Cow<'_, str>> = Vec::with_capacity(32);
        tokens::tokenize(content, self.cfg.masking, self.cfg.max_tokens, &mut toks);
        let seen = self.drain.observe(&toks);
        let id = self
            .drain
            .get(seen.slot)
            .map(|c| c.id)
            .unwrap_or(TemplateId(0));
        if let Some(old) = seen.replaced {
            self.alias(old, id);
        }
        Observed {
            id,
            replaced: seen.replaced,
        }
    }

    fn alias(&mut self, old: TemplateId, new: TemplateId) {
        if old == new {
            return;
        }
        if self.aliases.insert(old, new).is_none() {
            self.alias_order.push_back(old);
        }
        while self.aliases.len() > self.cfg.max_aliases {
            let Some(o) = self.alias_order.pop_front() else {
                break;
            };
            self.aliases.remove(&o);
            self.aliases_dropped += 1;
        }
    }

    /// The current id of a template once known as `id` (itself if it never
    /// generalised, or if the alias was dropped).
    pub fn resolve(&self, mut id: TemplateId) -> TemplateId {
        // Aliases point from a template to a strictly more general one, so
        // chains end; the bound guards against a hash collision's cycle.
        for _ in 0..64 {
            match self.aliases.get(&id) {
                Some(&next) if next != id => id = next,
                _ => break,
            }
        }
        id
    }

    /// The template an id names now (through aliases), if still held.
    pub fn template(&self, id: TemplateId) -> Option<Template> {
        let slot = self.drain.slot_of(self.resolve(id))?;
        self.drain.get(slot).map(to_template)
    }

    /// Every template held, in no particular order.
    pub fn templates(&self) -> impl Iterator<Item = Template> + '_ {
        self.drain.clusters().map(to_template)
    }

    /// Templates held now (≤ `max_templates`).
    pub fn len(&self) -> usize {
        self.drain.held()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Templates evicted to keep within `max_templates`.
    pub fn evicted(&self) -> u64 {
        self.drain.evicted()
    }

    /// Aliases dropped to keep within `max_aliases`.
    pub fn aliases_dropped(&self) -> u64 {
        self.aliases_dropped
    }
}

fn to_template(c: &drain::Cluster) -> Template {
    Template {
        id: c.id,
        text: c.tokens.join(" "),
        count: c.count,
    }
}

#[cfg(test)]
mod tests;
