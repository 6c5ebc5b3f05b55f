//! Flags of subcommands whose implementation has not landed in this build: they parse their
//! documented flags and then say so, exiting 2. None pretends to work.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The forward source, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    #[arg(long, default_value = "default")]
    pub category: String,
    pub files: Vec<PathBuf>,
}

pub fn not_yet(name: &str, issue: &str, _args: &dyn std::fmt::Debug) -> anyhow::Result<u8> {
    eprintln!("quill {name}: not available in this build yet (tracked in issue {issue})");
    Ok(2)
}
