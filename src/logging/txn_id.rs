//! Transaction ids: unique, roughly time-sortable, carrying their creation time and origin host,
//! and safe in HTTP headers, file names and log fields. Plus the names used to propagate them
//! (`X-Request-ID`, the `txn_id` field). No I/O (the host name is read once).
//!
//! Text form: `TTTTTTTTTTUUUUUUUU-host`
//! - `T`: 10 Crockford base32 characters, milliseconds since the Unix epoch (48 bits), so ids
//!   sort by creation time as plain strings;
//! - `U`: 8 Crockford base32 characters, 40 bits: 16 bits of per-process nonce and a 24-bit
//!   process-wide counter, so ids made in the same millisecond differ;
//! - `host`: the origin host name, lowercase, characters outside `[a-z0-9.-]` replaced by `-`,
//!   at most [`MAX_HOST_LEN`] bytes.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The conventional HTTP header carrying a request's transaction id.
pub const REQUEST_ID_HEADER: &str = "X-Request-ID";

/// The field name (log field and `tracing` span field) carrying the transaction id; GELF output
/// has it as `_txn_id`, which is what Quill's index searches.
pub const TXN_ID_FIELD: &str = "txn_id";

/// Longest host part kept in an id.
pub const MAX_HOST_LEN: usize = 40;

const TIME_CHARS: usize = 10;
const UNIQ_CHARS: usize = 8;
const PREFIX: usize = TIME_CHARS + UNIQ_CHARS;
const CAPACITY: usize = PREFIX + 1 + MAX_HOST_LEN;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Why a string is not a transaction id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnIdError {
    /// Shorter than the 18-character prefix, a `-` and a host.
    #[error("transaction id too short ({0} bytes; expected 18 characters, '-', a host)")]
    TooShort(usize),
    /// Longer than the longest id (host part over `MAX_HOST_LEN`).
    #[error("transaction id too long ({0} bytes; at most {CAPACITY})")]
    TooLong(usize),
    /// A character of the time or unique part is not Crockford base32.
    #[error("transaction id has {0:?} at byte {1}, not a Crockford base32 digit")]
    BadDigit(char, usize),
    /// No `-` after the 18-character prefix.
    #[error("transaction id lacks the '-' between its time and its host")]
    NoSeparator,
    /// The host part is empty or has characters outside `[a-z0-9.-]`.
    #[error("transaction id host part is empty or has {0:?}")]
    BadHost(String),
    /// The time part exceeds 48 bits.
    #[error("transaction id time overflows 48 bits")]
    TimeOverflow,
}

/// A transaction id (see the module docs for the format). `Copy`, 60 bytes, no allocation.
///
/// ```
/// use quill::logging::TxnId;
///
/// let id = TxnId::new();
/// let parsed = TxnId::parse(id.as_str())?;
/// assert_eq!(parsed, id);
/// assert_eq!(parsed.host(), TxnId::local_host());
/// assert!(parsed.time() <= std::time::SystemTime::now());
///
/// let older = TxnId::from_parts(1_700_000_000_000, 1, "Web-1");
/// assert_eq!(older.as_str(), "01HF7YAT0000000001-web-1");
/// assert_eq!(older.millis(), 1_700_000_000_000);
/// assert!(older < id); // sorts by time
/// # Ok::<(), quill::logging::TxnIdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnId {
    len: u8,
    text: [u8; CAPACITY],
}

impl TxnId {
    /// A new id for now, on this host.
    pub fn new() -> TxnId {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let count = u64::from(next_count() & 0x00ff_ffff);
        let uniq = (u64::from(process_nonce()) << 24) | count;
        TxnId::from_parts(millis, uniq, TxnId::local_host())
    }

    /// An id with the given time (ms since the epoch, low 48 bits), unique part (low 40 bits)
    /// and host (normalized as described in the module docs).
    pub fn from_parts(millis: u64, uniq: u64, host: &str) -> TxnId {
        let mut text = [0u8; CAPACITY];
        encode_base32(millis & ((1 << 48) - 1), &mut text[..TIME_CHARS]);
        encode_base32(uniq & ((1 << 40) - 1), &mut text[TIME_CHARS..PREFIX]);
        text[PREFIX] = b'-';
        let mut len = PREFIX + 1;
        for &b in host.as_bytes().iter().take(MAX_HOST_LEN) {
            text[len] = normalize_host_byte(b);
            len += 1;
        }
        if len == PREFIX + 1 {
            text[len..len + 7].copy_from_slice(b"unknown");
            len += 7;
        }
        TxnId {
            len: len as u8,
            text,
        }
    }

    /// Reads an id back from its text form.
    pub fn parse(s: &str) -> Result<TxnId, TxnIdError> {
        let b = s.as_bytes();
        if b.len() < PREFIX + 2 {
            return Err(TxnIdError::TooShort(b.len()));
        }
        if b.len() > CAPACITY {
            return Err(TxnIdError::TooLong(b.len()));
        }
        let mut millis = 0u64;
        let mut uniq = 0u64;
        for (i, &c) in b[..PREFIX].iter().enumerate() {
            let digit = decode_base32(c).ok_or(TxnIdError::BadDigit(c as char, i))?;
            if i < TIME_CHARS {
                millis = (millis << 5) | digit;
            } else {
                uniq = (uniq << 5) | digit;
            }
        }
        if millis >= 1 << 48 {
            return Err(TxnIdError::TimeOverflow);
        }
        if b[PREFIX] != b'-' {
            return Err(TxnIdError::NoSeparator);
        }
        let host = &s[PREFIX + 1..];
        if host.bytes().any(|c| normalize_host_byte(c) != c) {
            return Err(TxnIdError::BadHost(host.to_owned()));
        }
        Ok(TxnId::from_parts(millis, uniq, host))
    }

    /// The id from an incoming `X-Request-ID` header if it is one of ours, else a new id.
    /// (Foreign request ids are best logged as a separate field next to the new id.)
    ///
    /// ```
    /// use quill::logging::TxnId;
    /// let incoming = TxnId::new();
    /// assert_eq!(TxnId::from_header(Some(incoming.as_str())), incoming);
    /// assert_ne!(TxnId::from_header(Some("not-ours")).as_str(), "not-ours");
    /// ```
    pub fn from_header(value: Option<&str>) -> TxnId {
        value
            .and_then(|v| TxnId::parse(v.trim()).ok())
            .unwrap_or_default()
    }

    /// A `tracing` span named `request` carrying this id in its `txn_id` field; every event
    /// inside it gets `_txn_id` through the [`GelfLayer`](super::GelfLayer).
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("request", txn_id = self.as_str())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or("")
    }

    /// Creation time, milliseconds since the Unix epoch.
    pub fn millis(&self) -> u64 {
        self.text[..TIME_CHARS]
            .iter()
            .fold(0, |acc, &c| (acc << 5) | decode_base32(c).unwrap_or(0))
    }

    /// Creation time.
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis())
    }

    /// The 40-bit unique part.
    pub fn unique(&self) -> u64 {
        self.text[TIME_CHARS..PREFIX]
            .iter()
            .fold(0, |acc, &c| (acc << 5) | decode_base32(c).unwrap_or(0))
    }

    /// The origin host, as normalized in the id.
    pub fn host(&self) -> &str {
        &self.as_str()[PREFIX + 1..]
    }

    /// This machine's host name as it appears in ids.
    pub fn local_host() -> &'static str {
        static HOST: OnceLock<String> = OnceLock::new();
        HOST.get_or_init(|| {
            let name = crate::logging::worker::default_host();
            name.bytes()
                .take(MAX_HOST_LEN)
                .map(|b| normalize_host_byte(b) as char)
                .collect()
        })
    }
}

impl Ord for TxnId {
    /// Text order, which is creation-time order (then unique part, then host).
    fn cmp(&self, other: &TxnId) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for TxnId {
    fn partial_cmp(&self, other: &TxnId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Default for TxnId {
    /// A new id ([`TxnId::new`]).
    fn default() -> TxnId {
        TxnId::new()
    }
}

fn normalize_host_byte(b: u8) -> u8 {
    match b {
        b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => b,
        b'A'..=b'Z' => b.to_ascii_lowercase(),
        _ => b'-',
    }
}

fn encode_base32(mut value: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
}

/// Crockford decoding: case-insensitive, `O` reads as 0, `I`/`L` as 1.
fn decode_base32(c: u8) -> Option<u64> {
    let c = c.to_ascii_uppercase();
    let v = match c {
        b'0'..=b'9' => c - b'0',
        b'O' => 0,
        b'I' | b'L' => 1,
        b'U' => return None,
        b'A'..=b'Z' => ALPHABET.iter().position(|&a| a == c)? as u8,
        _ => return None,
    };
    Some(u64::from(v))
}

fn next_count() -> u32 {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    COUNTER
        .get_or_init(|| AtomicU32::new(seed() as u32))
        .fetch_add(1, Ordering::Relaxed)
}

fn process_nonce() -> u16 {
    static NONCE: OnceLock<u16> = OnceLock::new();
    *NONCE.get_or_init(|| (seed() >> 40) as u16)
}

/// Per-process randomness without a RNG dependency: time, pid and an ASLR'd address, mixed.
fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ addr.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxnId({})", self.as_str())
    }
}

impl FromStr for TxnId {
    type Err = TxnIdError;
    fn from_str(s: &str) -> Result<TxnId, TxnIdError> {
        TxnId::parse(s)
    }
}

impl AsRef<str> for TxnId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for TxnId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TxnId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TxnId, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TxnId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let id = TxnId::from_parts(1_700_000_000_123, 0xAB_CDEF_0123, "Web_01.Example");
        assert_eq!(id.host(), "web-01.example");
        assert_eq!(id.millis(), 1_700_000_000_123);
        assert_eq!(id.unique(), 0xAB_CDEF_0123);
        let back = TxnId::parse(id.as_str()).unwrap();
        assert_eq!(back, id);
        assert_eq!(TxnId::parse(&id.as_str().to_lowercase()).unwrap(), id);
    }

    #[test]
    fn bad_ids_are_errors() {
        assert!(matches!(
            TxnId::parse("short"),
            Err(TxnIdError::TooShort(5))
        ));
        let good = TxnId::from_parts(1_700_000_000_000, 1, "web").to_string();
        let with = |i: usize, c: &str| format!("{}{c}{}", &good[..i], &good[i + 1..]);
        assert!(TxnId::parse(&good).is_ok());
        assert!(matches!(
            TxnId::parse(&with(18, "X")),
            Err(TxnIdError::NoSeparator)
        ));
        assert!(matches!(
            TxnId::parse(&with(9, "U")),
            Err(TxnIdError::BadDigit('U', 9))
        ));
        assert!(matches!(
            TxnId::parse(&with(20, " ")),
            Err(TxnIdError::BadHost(_))
        ));
        let overflow = format!("ZZZZZZZZZZ{}", &good[10..]);
        assert!(matches!(
            TxnId::parse(&overflow),
            Err(TxnIdError::TimeOverflow)
        ));
        let long = format!("{}{}", good, "a".repeat(100));
        assert!(matches!(TxnId::parse(&long), Err(TxnIdError::TooLong(_))));
    }

    #[test]
    fn empty_host_becomes_unknown() {
        assert_eq!(TxnId::from_parts(1, 1, "").host(), "unknown");
    }
}
