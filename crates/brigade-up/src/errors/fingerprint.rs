//! Fingerprints: which errors are "the same error".
//!
//! Two errors are the same when they have the same kind, the same message once the parts that
//! differ between occurrences are masked (numbers, hex ids, UUIDs), and the same top frames —
//! or, without frames, the same route. Frame positions are kept for server frames (a panic's
//! `file:line:column` is all it has) and dropped for a named script frame (`place
//! (/assets/ordering.js)`), so that a page served by the next release, with its lines moved,
//! still groups with the old one; an anonymous script frame keeps its position, the only thing
//! that tells it apart.
//!
//! The hash is FNV-1a (64 bits), written out here: it must not change between runs or
//! releases, which the standard library's hasher does not promise.

use brigade_core::error_event::{ErrorEvent, truncate};

/// The longest normalized message (characters).
const MAX_TITLE_CHARS: usize = 200;
/// Frames that take part in the fingerprint.
const FINGERPRINT_FRAMES: usize = 3;

/// The message with the parts that vary masked: UUIDs → `<uuid>`, hex strings of 8 or more
/// digits → `<hex>`, every other run of digits → `<n>`.
pub fn normalize_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    for c in message.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            word.push(c);
        } else {
            mask_word(&word, &mut out);
            word.clear();
            out.push(c);
        }
    }
    mask_word(&word, &mut out);
    truncate(&out, MAX_TITLE_CHARS)
}

/// Appends `word` (letters, digits, dashes) with its variable parts masked.
fn mask_word(word: &str, out: &mut String) {
    if word.is_empty() {
        return;
    }
    if is_uuid(word) {
        out.push_str("<uuid>");
        return;
    }
    for (n, part) in word.split('-').enumerate() {
        if n > 0 {
            out.push('-');
        }
        mask_part(part, out);
    }
}

/// One dash-separated part: a hex id (8 digits or more, one a decimal digit) → `<hex>`; a
/// number, alone or leading a unit (`1234ms`) → `<n>`; anything else (`v1`, `utf8`) as is.
fn mask_part(part: &str, out: &mut String) {
    let is_hex_id = part.len() >= 8
        && part.bytes().all(|b| b.is_ascii_hexdigit())
        && part.bytes().any(|b| b.is_ascii_digit());
    if is_hex_id {
        out.push_str("<hex>");
        return;
    }
    let digits = part.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && part.bytes().skip(digits).all(|b| b.is_ascii_alphabetic()) {
        out.push_str("<n>");
        out.push_str(&part[digits..]);
    } else {
        out.push_str(part);
    }
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(word: &str) -> bool {
    word.len() == 36
        && word.char_indices().all(|(at, c)| match at {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A frame as it takes part in the fingerprint (see the module documentation).
pub fn frame_key(frame: &str, from_browser: bool) -> String {
    let frame = frame.trim();
    if !from_browser {
        return frame.to_owned();
    }
    // Chrome names a function as `at name (url:l:c)`, Firefox as `name@url:l:c`.
    let named = frame.contains(" (") || frame.find('@').is_some_and(|at| at > 0);
    if !named {
        return frame.to_owned();
    }
    let (body, closing) = match frame.strip_suffix(')') {
        Some(body) => (body, ")"),
        None => (frame, ""),
    };
    let mut cut = body.len();
    for _ in 0..2 {
        match body[..cut].rfind(':') {
            Some(colon)
                if colon + 1 < cut && body[colon + 1..cut].bytes().all(|b| b.is_ascii_digit()) =>
            {
                cut = colon;
            }
            _ => break,
        }
    }
    format!("{}{closing}", &body[..cut])
}

/// The route with its ids masked (`/orders/<uuid>`).
fn route_key(route: &str) -> String {
    normalize_message(route)
}

/// The fingerprint of an event: 16 hex digits.
pub fn fingerprint(event: &ErrorEvent) -> String {
    let from_browser = event.kind.is_client();
    let mut text = String::new();
    text.push_str(event.kind.as_str());
    text.push('\0');
    text.push_str(&normalize_message(&event.message));
    text.push('\0');
    if event.frames.is_empty() {
        text.push_str(&route_key(event.route.as_deref().unwrap_or_default()));
    } else {
        for frame in event.frames.iter().take(FINGERPRINT_FRAMES) {
            text.push_str(&frame_key(frame, from_browser));
            text.push('\n');
        }
    }
    format!("{:016x}", fnv1a(text.as_bytes()))
}

/// FNV-1a, 64 bits.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use brigade_core::error_event::ErrorKind;

    use super::*;

    #[test]
    fn numbers_ids_and_uuids_are_masked() {
        assert_eq!(
            normalize_message(
                "order 0192f6a4-1b2c-7d3e-8f90-a1b2c3d4e5f6 not found after 3 tries (trace 4bf92f3577b34da6)"
            ),
            "order <uuid> not found after <n> tries (trace <hex>)"
        );
        assert_eq!(
            normalize_message("index out of bounds: the len is 3 but the index is 7"),
            "index out of bounds: the len is <n> but the index is <n>"
        );
        assert_eq!(
            normalize_message("serve-orders-12 died"),
            "serve-orders-<n> died"
        );
        assert_eq!(
            normalize_message("deadbeef is a word"),
            "deadbeef is a word"
        );
        assert_eq!(
            normalize_message("GET /api/v1/shops answered 503 after 1234ms"),
            "GET /api/v1/shops answered <n> after <n>ms"
        );
    }

    #[test]
    fn named_script_frames_lose_their_position_anonymous_ones_keep_it() {
        assert_eq!(
            frame_key("at place (/assets/ordering.js:12:5)", true),
            "at place (/assets/ordering.js)"
        );
        assert_eq!(
            frame_key("place@/assets/ordering.js:12:5", true),
            "place@/assets/ordering.js"
        );
        assert_eq!(
            frame_key("at /assets/ordering.js:12:5", true),
            "at /assets/ordering.js:12:5"
        );
        assert_eq!(
            frame_key("crates/x/src/y.rs:12:5", false),
            "crates/x/src/y.rs:12:5"
        );
    }

    #[test]
    fn the_same_error_gets_the_same_fingerprint_and_others_do_not() {
        let thrown = |message: &str, line: u32| {
            ErrorEvent::new(ErrorKind::ClientError, message)
                .with_frames([format!("at place (/assets/ordering.js:{line}:5)")])
                .with_route("/")
        };
        let first = fingerprint(&thrown("cart 17 is empty", 10));
        assert_eq!(first.len(), 16);
        assert_eq!(first, fingerprint(&thrown("cart 18 is empty", 12)));
        assert_ne!(first, fingerprint(&thrown("menu is empty", 10)));
        let rejected = ErrorEvent {
            kind: ErrorKind::ClientRejection,
            ..thrown("cart 17 is empty", 10)
        };
        assert_ne!(first, fingerprint(&rejected));
        // Without frames the route tells errors apart, ids masked.
        let store = |route: &str| {
            fingerprint(&ErrorEvent::new(ErrorKind::Store, "store failure").with_route(route))
        };
        assert_ne!(store("/api/v1/orders"), store("/api/v1/shops"));
        assert_eq!(
            fingerprint(
                &ErrorEvent::new(ErrorKind::ClientFetch, "GET failed")
                    .with_route("/orders/0192f6a4-1b2c-7d3e-8f90-a1b2c3d4e5f6")
            ),
            fingerprint(
                &ErrorEvent::new(ErrorKind::ClientFetch, "GET failed")
                    .with_route("/orders/0192f6a4-1b2c-7d3e-8f90-a1b2c3d4e5f7")
            )
        );
    }

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
