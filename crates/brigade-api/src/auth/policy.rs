//! The password policy of new passwords: strong enough by Dropbox's `zxcvbn` estimator, and
//! never the account's own e-mail address or a part of it.
//!
//! Length alone (10–128 characters, checked in the domain) lets `aaaaaaaaaa` and `password12`
//! through; zxcvbn estimates how many guesses a password takes against dictionaries of common
//! passwords, names and keyboard patterns, with the e-mail address added to them.

use brigade_domain::Violation;
use zxcvbn::Score;

/// The lowest accepted zxcvbn score (0–4): 3 is "safely unguessable", about 10^8 guesses,
/// which a slow hash and the log-in limits put out of an online attacker's reach.
pub const MIN_SCORE: Score = Score::Three;

/// Characters judged: the estimator's work grows with length, and a password whose first 64
/// characters are strong is strong.
const JUDGED_CHARACTERS: usize = 64;

/// Checks a new password for `email` (already normalised); the violation names `password`.
pub fn check(email: &str, password: &str) -> Result<(), Violation> {
    let refuse = |message: String| {
        Err(Violation {
            field: "password".to_owned(),
            message,
        })
    };
    let lowered = password.trim().to_lowercase();
    let local = email.split_once('@').map_or(email, |(local, _)| local);
    // A short local part ("al") is too common a string to forbid inside passwords; zxcvbn
    // still counts it as a known word.
    if lowered == email || lowered == local || (local.len() >= 5 && lowered.contains(local)) {
        return refuse("must not be or contain your e-mail address".to_owned());
    }
    let judged: String = password.chars().take(JUDGED_CHARACTERS).collect();
    let estimate = zxcvbn::zxcvbn(&judged, &[email, local]);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let mut advice = String::from("is too easy to guess");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            advice.push_str(&format!(": {warning}"));
        }
        for suggestion in feedback.suggestions() {
            advice.push_str(&format!(" {suggestion}"));
        }
    }
    if !advice.ends_with('.') {
        advice.push('.');
    }
    advice.push_str(
        " A few uncommon words together make a strong password that is easy to remember.",
    );
    refuse(advice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_personal_passwords_are_refused() {
        for weak in ["aaaaaaaaaa", "password12", "qwertyuiop", "1234567890"] {
            let refused = check("ann@example.org", weak).unwrap_err();
            assert_eq!(refused.field, "password");
            assert!(
                refused.message.starts_with("is too easy to guess"),
                "{weak}: {refused:?}"
            );
        }
        for personal in [
            "annabelle@example.org",
            "ANNABELLE@example.org",
            "annabelle2024!",
        ] {
            let refused = check("annabelle@example.org", personal).unwrap_err();
            assert!(
                refused.message.contains("e-mail"),
                "{personal}: {refused:?}"
            );
        }
        check("ann@example.org", "correct horse battery").unwrap();
        check("ann@example.org", "plum-tiger-violin-07").unwrap();
    }
}
