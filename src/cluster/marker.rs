//! A marker as a JetStream message on `supergrep.markers`: the JSON `{"ts": RFC 3339,
//! "text": …}` (the fields of the WebSocket `marker` message), text cleaned as the
//! hub's `POST /api/markers` cleans it (no control characters, at most 1,000
//! characters, not blank).

use serde::{Deserialize, Serialize};

/// Longest marker text kept, in characters (as `/api/markers`).
pub const MAX_TEXT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkerMessage {
    pub ts: String,
    pub text: String,
}

impl MarkerMessage {
    /// `None` when nothing is left of `text` once cleaned.
    pub fn new(ts: String, text: &str) -> Option<MarkerMessage> {
        let text: String = text
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_TEXT)
            .collect();
        (!text.trim().is_empty()).then_some(MarkerMessage { ts, text })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cleaned_as_the_hub_cleans_it() -> anyhow::Result<()> {
        let m =
            MarkerMessage::new("t".into(), "deploy\n 4521\x07").ok_or(anyhow::anyhow!("none"))?;
        assert_eq!(m.text, "deploy 4521");
        assert_eq!(MarkerMessage::new("t".into(), " \n\t"), None);
        let back: MarkerMessage = serde_json::from_slice(&m.to_json())?;
        assert_eq!(back, m);
        Ok(())
    }
}
