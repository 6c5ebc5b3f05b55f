//! The `quill` binary: see [`quill::cli`].

/// mimalloc instead of the system allocator: the daemon allocates on one thread and frees on
/// another (documents handed to the index's threads, batches to sinks), where glibc's malloc
/// spends its time in arena locks and consolidation (measured in `benches/index_txn.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    quill::cli::main()
}
