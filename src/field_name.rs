//! GELF additional-field names: the one rule every writer of a `_name` key follows (parsed fields
//! named by the input or the config, the logging library's keys, JSON and GELF input keys).
//! GELF allows `[A-Za-z0-9_.-]` after the leading `_`; any other byte becomes `_`.
//!
//! Pure; imports nothing of the crate (the parsers, the GELF writer and the `logging`-only build
//! all use it).

/// Whether a name keeps its ASCII case or is lower-cased as it is sanitized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Keep,
    Lower,
}

/// Whether `c` may stand in a GELF field name.
pub fn is_name_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Whether `name` (without its leading `_`) is a valid GELF field name.
pub fn is_valid(name: &[u8]) -> bool {
    name.iter().all(|&c| is_name_byte(c))
}

/// The bytes of `name` as a GELF field name: every byte outside `[A-Za-z0-9_.-]` becomes `_`,
/// lower-cased with [`Case::Lower`]. (What an empty or reserved result becomes is the caller's
/// rule.)
pub fn sanitized(name: &[u8], case: Case) -> impl Iterator<Item = u8> + '_ {
    name.iter().map(move |&c| {
        let c = match case {
            Case::Keep => c,
            Case::Lower => c.to_ascii_lowercase(),
        };
        if is_name_byte(c) { c } else { b'_' }
    })
}

/// Appends [`sanitized`] `name` to `out`.
pub fn push(out: &mut Vec<u8>, name: &[u8], case: Case) {
    out.extend(sanitized(name, case));
}

/// Appends [`sanitized`] `name` to `out` (always ASCII).
pub fn push_str(out: &mut String, name: &[u8], case: Case) {
    out.extend(sanitized(name, case).map(char::from));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_gelf_bytes_and_replace_the_rest() {
        let mut v = Vec::new();
        push(&mut v, b"X-Forwarded For:\xff.a_b", Case::Lower);
        assert_eq!(v, b"x-forwarded_for__.a_b");
        let mut s = String::new();
        push_str(&mut s, b"Var(Txn.Tid)", Case::Keep);
        assert_eq!(s, "Var_Txn.Tid_");
        assert!(is_valid(b"a.b-c_D9") && is_valid(b""));
        assert!(!is_valid(b"a b") && !is_valid(b"a/b"));
    }
}
