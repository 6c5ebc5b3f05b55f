//! `quill journal`: the journal's cursors, and dropping the cursor of a sink that is gone.
//!
//! A journal keeps every segment until each cursor has read past it, so a sink removed from the
//! config leaves a cursor that holds the journal until it fills (then sources get backpressure).
//! `quill journal cursors` lists the cursors with how far behind they are and whether a sink of
//! the config owns them; `quill journal drop-cursor NAME` removes one. Opens the journal of the
//! config's `data_dir` (refused while a daemon runs on it: the journal is locked).

use anyhow::Context as _;

use crate::config::Config;
use crate::journal::Journal;

#[derive(Debug, clap::Args)]
pub struct JournalArgs {
    #[command(subcommand)]
    pub command: JournalCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum JournalCommand {
    /// List the cursors: acknowledged sequence, records behind, owning sink.
    Cursors {
        /// The config file (its `data_dir` and sinks).
        #[arg(short, long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Remove a cursor that no configured sink owns, so the journal can delete what it held.
    DropCursor {
        /// The cursor's name (the name of the sink that created it).
        name: String,
        /// The config file (its `data_dir` and sinks).
        #[arg(short, long, value_name = "FILE")]
        config: std::path::PathBuf,
        /// Drop it even though a configured sink owns it (that sink then starts over from the
        /// oldest record still in the journal).
        #[arg(long)]
        force: bool,
    },
}

fn open(config: &Config) -> anyhow::Result<Journal> {
    let dir = config.data_dir.join("journal");
    if !dir.exists() {
        anyhow::bail!("no journal at {}", dir.display());
    }
    Journal::open(&dir, config.journal.to_journal_config()).with_context(|| {
        format!(
            "opening the journal at {} (is a quill daemon running on it?)",
            dir.display()
        )
    })
}

/// Runs `quill journal …`; returns the exit status.
pub fn run(args: &JournalArgs) -> anyhow::Result<u8> {
    match &args.command {
        JournalCommand::Cursors { config } => {
            let config = Config::load(config)?;
            let journal = open(&config)?;
            let stats = journal.stats();
            println!(
                "{:<24} {:>14} {:>14}  sink",
                "cursor", "acknowledged", "behind"
            );
            for (name, acked, behind) in &stats.cursors {
                let owner = match config.sinks.get(name) {
                    Some(sink) => sink.type_name().to_string(),
                    None => "none (drop with `quill journal drop-cursor`)".to_string(),
                };
                println!("{name:<24} {acked:>14} {behind:>14}  {owner}");
            }
            journal.close()?;
            Ok(0)
        }
        JournalCommand::DropCursor {
            name,
            config,
            force,
        } => {
            let config = Config::load(config)?;
            if config.sinks.contains_key(name) && !force {
                anyhow::bail!(
                    "cursor `{name}` belongs to the configured sink `{name}`; remove the sink from the config first, or pass --force"
                );
            }
            let journal = open(&config)?;
            if !journal.stats().cursors.iter().any(|(n, _, _)| n == name) {
                journal.close()?;
                anyhow::bail!("the journal has no cursor `{name}`");
            }
            journal.remove_cursor(name)?;
            journal.close()?;
            println!("dropped cursor `{name}`");
            Ok(0)
        }
    }
}
