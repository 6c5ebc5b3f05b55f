//! `quill-test-child`: the crash children of the integration tests (see tests/support/child.rs).
//! A test-only binary: it is built for `cargo test`, not meant to be installed.

#[path = "../child.rs"]
mod child;

fn main() {
    child::main();
}
