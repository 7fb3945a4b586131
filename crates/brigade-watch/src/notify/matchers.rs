//! Alertmanager label matchers (`name="value"`, `!=`, `=~`, `!~`), parsed by the PromQL parser
//! (the syntax is the same as in a selector), regexes anchored as in Alertmanager.

use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

use crate::labels::Labels;

/// Why a matcher's text is not one matcher; each names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// No `=`, `!=`, `=~` or `!~`.
    #[error("matcher {0:?} has no operator")]
    NoOperator(String),
    /// It parsed as more or less than one matcher.
    #[error("matcher {0:?} is not a single matcher")]
    NotSingle(String),
    /// The PromQL parser refused it (a bad regex, a bad label name).
    #[error("matcher {text:?}: {message}")]
    Syntax {
        /// The matcher as written.
        text: String,
        /// The parser's reason.
        message: String,
    },
}

/// Parses one matcher; unquoted values (`severity=critical`) are accepted as Alertmanager does.
pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
    let text = text.trim();
    let op_at = text
        .find(['=', '!'])
        .ok_or_else(|| MatcherError::NoOperator(text.to_owned()))?;
    let (name, rest) = text.split_at(op_at);
    let op_len = if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") {
        2
    } else {
        1
    };
    let (op, value) = rest.split_at(op_len);
    let value = value.trim();
    let quoted = if value.starts_with('"') {
        value.to_owned()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    };
    // A selector needs one matcher that rejects the empty string; a fixed first matcher makes
    // `name!="x"` and `name=""` parse on their own, as Alertmanager accepts them.
    let selector = format!("{{__matcher__=\"x\",{}{}{}}}", name.trim(), op, quoted);
    match promql_parser::parser::parse(&selector) {
        Ok(Expr::VectorSelector(vs)) if vs.matchers.matchers.len() == 2 => Ok(vs
            .matchers
            .matchers
            .into_iter()
            .nth(1)
            .expect("two matchers")),
        Ok(_) => Err(MatcherError::NotSingle(text.to_owned())),
        Err(message) => Err(MatcherError::Syntax {
            text: text.to_owned(),
            message,
        }),
    }
}

/// Parses a list of matchers.
pub fn parse_all(texts: &[String]) -> Result<Vec<Matcher>, MatcherError> {
    texts.iter().map(|t| parse(t)).collect()
}

/// Whether every matcher holds for the labels (a missing label is the empty string).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).map(String::as_str).unwrap_or("")))
}

/// A matcher written back as text.
pub fn to_text(matcher: &Matcher) -> String {
    format!(
        "{}{}{}",
        matcher.name,
        matcher.op,
        serde_json::to_string(&matcher.value).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::labels;

    #[test]
    fn parses_and_matches_like_alertmanager() {
        let l = labels([("severity", "critical"), ("alertname", "BrigadeHighCpu")]);
        for (text, expected) in [
            ("severity=\"critical\"", true),
            ("severity=critical", true),
            ("severity!=critical", false),
            ("alertname=~\"Brigade.*\"", true),
            ("alertname=~\"High\"", false),
            ("alertname!~\"Watchdog\"", true),
            ("team=\"\"", true),
        ] {
            let matcher = parse(text).unwrap();
            assert_eq!(all_match(&[matcher], &l), expected, "{text}");
        }
        assert!(parse("nonsense").is_err());
        assert_eq!(to_text(&parse("a=~\"b.*\"").unwrap()), "a=~\"b.*\"");
    }
}
