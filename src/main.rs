//! The `quill` binary: see [`quill::cli`].

fn main() -> std::process::ExitCode {
    quill::cli::main()
}
