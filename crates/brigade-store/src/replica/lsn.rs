//! Positions in the primary's write-ahead log, and the read scope a request runs in.

use std::fmt;
use std::str::FromStr;

/// A position in PostgreSQL's write-ahead log (`pg_lsn`), written the way PostgreSQL writes it:
/// two hexadecimal halves, `16/B374D848`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Past every position: a fence no standby reaches, so the reads it guards go to the
    /// primary. Used when the position of a write could not be learnt.
    pub const MAX: Lsn = Lsn(u64::MAX);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a text is not an [`Lsn`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a WAL position such as 16/B374D848 (two hexadecimal halves of 1 to 8 digits)")]
pub struct InvalidLsn;

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(text: &str) -> Result<Self, InvalidLsn> {
        let (high, low) = text.split_once('/').ok_or(InvalidLsn)?;
        let half = |part: &str| {
            let valid =
                (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit());
            valid
                .then(|| u64::from_str_radix(part, 16).ok())
                .flatten()
                .ok_or(InvalidLsn)
        };
        Ok(Lsn((half(high)? << 32) | half(low)?))
    }
}

/// Where the stale-tolerant reads of the current task may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadScope {
    /// Any copy within the lag bound.
    #[default]
    Any,
    /// Only a copy that has replayed past this position (the caller's last write), else the
    /// primary.
    After(Lsn),
    /// Only the primary: what is read will be kept and shared (a cache fill), so it must not
    /// be stale.
    Primary,
}

tokio::task_local! {
    static READ_SCOPE: ReadScope;
}

/// Runs `work` with `scope` governing its stale-tolerant reads; an inner scope wins.
pub async fn with_read_scope<F: Future>(scope: ReadScope, work: F) -> F::Output {
    READ_SCOPE.scope(scope, work).await
}

/// The scope of the current task ([`ReadScope::Any`] outside any).
pub fn current_read_scope() -> ReadScope {
    READ_SCOPE.try_with(|scope| *scope).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_reads_and_writes_postgres_notation() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn((0x16 << 32) | 0xB374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn::MAX.to_string().parse::<Lsn>().unwrap(), Lsn::MAX);
        assert!("0/3000060".parse::<Lsn>().unwrap() < "1/0".parse().unwrap());
        for bad in [
            "",
            "16",
            "/1",
            "1/",
            "G/1",
            "123456789/0",
            "1/2/3",
            " 1/2",
            "-1/2",
        ] {
            assert_eq!(bad.parse::<Lsn>(), Err(InvalidLsn), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn the_innermost_scope_governs() {
        assert_eq!(current_read_scope(), ReadScope::Any);
        let after = ReadScope::After(Lsn(7));
        with_read_scope(after, async {
            assert_eq!(current_read_scope(), after);
            with_read_scope(ReadScope::Primary, async {
                assert_eq!(current_read_scope(), ReadScope::Primary);
            })
            .await;
            assert_eq!(current_read_scope(), after);
        })
        .await;
    }
}
