//! (being written)

pub mod index_cmd;
pub mod search;
