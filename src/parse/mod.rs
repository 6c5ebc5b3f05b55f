//! Parsers: pure functions from a log line's bytes to typed fields.
//!
//! No I/O and no async here. Each parser borrows from its input and never panics on any input; a
//! line that does not parse yields an error saying what and where, and the caller keeps the raw line.
