//! Request ids (UUIDv7) and `traceparent` ids, drawn from a fast generator of the calling
//! thread: the balancer's for every request without them, a replica's for requests that reach
//! it directly.
//!
//! Nearly every request gets both, so their cost matters: `Uuid::now_v7` locks a process-wide
//! context (to order ids made in the same millisecond) and `rand::random` goes through the
//! thread's reseeding ChaCha generator. These ids need to be unique and unpredictable enough
//! not to collide, not secret: a per-thread `SmallRng` seeded from the OS is enough, and
//! costs a few instructions per draw. Ids made on different threads in the same millisecond
//! are not ordered among themselves (nothing reads an order into them; their time prefix
//! still sorts them by millisecond).

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// Draws from the calling thread's generator: for what must be unpredictable enough not to
/// collide or to spread load evenly (ids, the balancer's random picks), never for secrets.
pub fn with_rng<T>(draw: impl FnOnce(&mut SmallRng) -> T) -> T {
    RNG.with_borrow_mut(draw)
}

/// The length of a hyphenated UUID.
pub const REQUEST_ID_LEN: usize = 36;

/// A new UUIDv7 (Unix milliseconds, then 74 random bits), hyphenated in lower case.
pub fn request_id() -> [u8; REQUEST_ID_LEN] {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let random: [u8; 10] = with_rng(|rng| rng.random());
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut text = [0u8; REQUEST_ID_LEN];
    id.hyphenated().encode_lower(&mut text);
    text
}

/// A new request id (see [`request_id`]) as a `String`, for code that keeps it in one.
pub fn request_id_string() -> String {
    let text = request_id();
    // Hyphenated hex digits are ASCII.
    String::from_utf8_lossy(&text).into_owned()
}

/// The text of a new W3C `traceparent` (version 00, sampled) with a random trace id and span
/// id: `00-` + 32 hex digits + `-` + 16 hex digits + `-01`.
pub fn traceparent() -> [u8; 55] {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let (trace, span): (u128, u64) = with_rng(|rng| (rng.random(), rng.random()));
    hex_into(&mut text[3..35], &trace.to_be_bytes());
    hex_into(&mut text[36..52], &span.to_be_bytes());
    // An all-zero trace or span id is invalid; the odds are 2^-64 at worst, but cheap to rule out.
    if trace == 0 || span == 0 {
        text[34] = b'1';
        text[51] = b'1';
    }
    text
}

/// Writes the lower-case hex of `bytes` into `out` (two digits per byte; stops at the shorter).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Lower-case hex of `bytes`, without the per-byte formatting and allocation of
/// `format!("{b:02x}")`.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_into(&mut out, bytes);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_request_id_is_a_lower_case_uuid_v7_of_now() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let text = request_id();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(text, text.to_ascii_lowercase());
        let id = uuid::Uuid::parse_str(text).unwrap();
        assert_eq!(id.hyphenated().to_string(), text);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
        let millis = u128::from(secs) * 1000 + u128::from(nanos / 1_000_000);
        assert!((before.as_millis()..=after.as_millis()).contains(&millis));
    }

    #[test]
    fn request_ids_do_not_repeat() {
        let ids: HashSet<_> = (0..100_000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn request_ids_differ_between_threads() {
        let draw = || (0..1_000).map(|_| request_id()).collect::<HashSet<_>>();
        let other = std::thread::spawn(draw).join().unwrap();
        let here = draw();
        assert!(here.is_disjoint(&other));
    }

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    fn is_lower_hex(text: &[u8]) -> bool {
        text.iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    }

    #[test]
    fn a_traceparent_is_version_00_sampled_with_non_zero_ids() {
        for _ in 0..1_000 {
            let text = traceparent();
            assert_eq!(&text[..3], b"00-");
            assert_eq!(text[35], b'-');
            assert_eq!(&text[52..], b"-01");
            let (trace, span) = (&text[3..35], &text[36..52]);
            assert!(is_lower_hex(trace) && is_lower_hex(span));
            assert!(trace.iter().any(|&b| b != b'0'));
            assert!(span.iter().any(|&b| b != b'0'));
        }
    }

    #[test]
    fn traceparents_do_not_repeat() {
        let traces: HashSet<_> = (0..100_000)
            .map(|_| traceparent()[3..35].to_vec())
            .collect();
        assert_eq!(traces.len(), 100_000);
        let spans: HashSet<_> = (0..100_000)
            .map(|_| traceparent()[36..52].to_vec())
            .collect();
        assert_eq!(spans.len(), 100_000);
    }
}
