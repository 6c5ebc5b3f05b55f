//! (being written)
pub mod parse;
