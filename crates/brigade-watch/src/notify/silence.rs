//! Silences: matchers and a time window during which matching alerts are not notified.

use promql_parser::label::Matcher;
use serde::{Deserialize, Serialize};

use super::matchers;
use crate::labels::Labels;

/// A silence as stored and served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    /// Its id (UUID v7).
    pub id: String,
    /// Alertmanager matcher texts, all of which must hold.
    pub matchers: Vec<String>,
    /// Start (ms since the epoch).
    pub starts_at: i64,
    /// End (ms since the epoch); expiring a silence sets it to now.
    pub ends_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Where a silence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    /// Mutes now.
    Active,
    /// Over.
    Expired,
}

impl SilenceState {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

impl Silence {
    /// Its state at `now`.
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }
}

/// Why a silence is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// It has no matcher.
    #[error("a silence needs at least one matcher")]
    NoMatchers,
    /// It ends before it starts.
    #[error("endsAt must be after startsAt")]
    EmptyWindow,
    /// A matcher does not parse.
    #[error(transparent)]
    Matcher(#[from] matchers::MatcherError),
    /// Every matcher matches the empty string, so it would silence every alert.
    #[error("at least one matcher must not match the empty string")]
    MatchesEverything,
}

/// The silences, with their matchers compiled.
#[derive(Debug, Default)]
pub struct Silences {
    entries: Vec<(Silence, Vec<Matcher>)>,
}

impl Silences {
    /// Adds or replaces a silence; fails when a matcher is invalid or the window is empty.
    pub fn upsert(&mut self, silence: Silence) -> Result<(), SilenceError> {
        if silence.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if silence.ends_at <= silence.starts_at {
            return Err(SilenceError::EmptyWindow);
        }
        let compiled = matchers::parse_all(&silence.matchers)?;
        if compiled.iter().all(|m| m.is_match("")) {
            return Err(SilenceError::MatchesEverything);
        }
        self.entries.retain(|(s, _)| s.id != silence.id);
        self.entries.push((silence, compiled));
        Ok(())
    }

    /// Ends a silence now; `None` if there is none with that id.
    pub fn expire(&mut self, id: &str, now: i64) -> Option<Silence> {
        let (silence, _) = self.entries.iter_mut().find(|(s, _)| s.id == id)?;
        if silence.ends_at > now {
            silence.ends_at = now;
            silence.starts_at = silence.starts_at.min(now);
        }
        Some(silence.clone())
    }

    /// Every silence, newest first.
    pub fn list(&self) -> Vec<Silence> {
        let mut list: Vec<Silence> = self.entries.iter().map(|(s, _)| s.clone()).collect();
        list.sort_by(|a, b| b.id.cmp(&a.id));
        list
    }

    /// The ids of active silences that match the labels.
    pub fn silencing(&self, labels: &Labels, now: i64) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(s, m)| s.state(now) == SilenceState::Active && matchers::all_match(m, labels))
            .map(|(s, _)| s.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    #[test]
    fn active_window_and_expiry() {
        let mut silences = Silences::default();
        let silence = Silence {
            id: "s1".into(),
            matchers: vec!["alertname=\"BrigadeHighCpu\"".into()],
            starts_at: 100,
            ends_at: 200,
            created_by: "ops".into(),
            comment: "load test".into(),
        };
        silences.upsert(silence).unwrap();
        let cpu = labels([("alertname", "BrigadeHighCpu")]);
        assert!(silences.silencing(&cpu, 50).is_empty(), "pending");
        assert_eq!(silences.silencing(&cpu, 150), ["s1"]);
        assert!(
            silences
                .silencing(&labels([("alertname", "Other")]), 150)
                .is_empty()
        );
        silences.expire("s1", 160).unwrap();
        assert!(silences.silencing(&cpu, 161).is_empty());
        assert_eq!(silences.list()[0].state(161), SilenceState::Expired);
        let mut bad = silences.list()[0].clone();
        bad.matchers = vec!["x=~\".*\"".into()];
        bad.ends_at = 1_000;
        assert!(silences.upsert(bad).is_err(), "would silence everything");
    }
}
