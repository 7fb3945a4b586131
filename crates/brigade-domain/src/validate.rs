//! Collecting every invalid field of an input at once, so a client can fix them all in one go.

use serde::Serialize;

/// One invalid field: where it is in the input and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Path of the field, e.g. `items[2].quantity`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An accumulator of violations; `finish` turns it into a `Result`.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Records a violation unless `ok`.
    pub fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.add(field, message);
        }
    }

    /// Checks a trimmed, non-empty text of at most `max` characters and returns it trimmed.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> String {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "must not be empty");
        } else if has_control_character(trimmed) {
            self.add(field, CONTROL_CHARACTER_MESSAGE);
        } else if trimmed.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
        trimmed.to_owned()
    }

    /// `Ok(value)` when nothing was recorded, else every violation.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<Violation>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

/// Whether `text` holds a control character (NUL, other C0 and C1 controls, DEL). No brigade
/// text field is meant to hold one: NUL cannot be stored in PostgreSQL at all, and the others
/// only serve to garble logs, pages and terminals.
pub fn has_control_character(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// What a client is told about a field with a control character.
pub const CONTROL_CHARACTER_MESSAGE: &str =
    "must not contain control characters (NUL, line breaks, tabs, escapes)";

/// [`is_currency_code`] as a regular expression, for the API schema.
pub const CURRENCY_PATTERN: &str = "^[A-Z]{3}$";
/// [`is_slug`] as a regular expression, for the API schema.
pub const SLUG_PATTERN: &str = "^[a-z0-9_-]{1,40}$";
/// Longest slug.
pub const MAX_SLUG: usize = 40;
/// What [`Violations::text`] accepts, as a regular expression for the API schema: at least one
/// character that is not white space (Rust's white space, which includes U+0085).
pub const TEXT_PATTERN: &str = r"[^\s\u0085]";

/// An ISO 4217 code: three upper-case ASCII letters.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// A category or region key: lower-case letters, digits, `-` and `_`, 1–40 characters, so it is
/// safe in URLs, cache keys and metric labels.
pub fn is_slug(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_SLUG
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
