//! The logging library on its own: a [`Dispatcher`] writing into memory, for the tests of
//! `tests/logging/`.

use quill::logging::sinks::{SharedBuffer, WriterSink};
use quill::logging::{Config, Dispatcher, Route};

/// `config` with one in-memory sink `mem` that `route` goes to, built; returns the dispatcher
/// and the buffer its GELF lines land in.
pub fn memory_dispatcher(config: Config, route: Route) -> (Dispatcher, SharedBuffer) {
    let buffer = SharedBuffer::default();
    let dispatcher = config
        .sink("mem", WriterSink::new(buffer.clone()))
        .route(route.to("mem"))
        .build()
        .unwrap();
    (dispatcher, buffer)
}
