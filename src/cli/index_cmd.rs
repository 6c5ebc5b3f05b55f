//! `quill index`: backfills existing log files (plain, `.gz`, `.zst`) into a data dir's index.
//!
//! Shows a progress bar on a terminal (bytes, lines/s, ETA) and prints a summary. Running it again
//! after an interruption indexes only what is missing. Needs the index's write lock: stop a daemon
//! writing the same data dir first.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::index::backfill::{BackfillOptions, backfill_files};
use crate::index::{IndexSettings, index_root};
use crate::record::Format;

#[derive(Debug, Clone, clap::Args)]
pub struct IndexArgs {
    /// The data dir whose index to fill.
    #[arg(long, env = "QUILL_DATA")]
    pub data: PathBuf,
    /// How the lines are parsed: auto, haproxy, apache, syslog, json, raw, gelf.
    #[arg(long, default_value = "auto")]
    pub format: Format,
    /// The category the entries are filed under.
    #[arg(long, default_value = "backfill")]
    pub category: String,
    /// The host the entries are attributed to (default: this machine's name).
    #[arg(long)]
    pub host: Option<String>,
    /// Skip entries older than this many days (0: keep everything).
    #[arg(long, default_value_t = 30)]
    pub max_age_days: u32,
    /// How often progress is committed (an interrupted run resumes from the last commit).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub commit_interval: Duration,
    /// How the lines are parsed beyond `--format` (`--haproxy-config`, `--tz`, ...): the same
    /// keys as `quill parse` and a source's config.
    #[command(flatten)]
    pub keys: super::parse::ParseKeyArgs,
    /// Log files to index.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `quill index`; returns the exit code.
pub fn run(args: &IndexArgs) -> anyhow::Result<i32> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    let settings = IndexSettings {
        commit_interval: args.commit_interval,
        max_age_days: args.max_age_days,
        writer_threads: threads,
        writer_memory_bytes: threads * (96 << 20),
        bulk_load: true,
        ..IndexSettings::default()
    };
    let mut opts = BackfillOptions {
        format: args.format,
        category: args.category.clone(),
        ..BackfillOptions::default()
    };
    if let Some(h) = &args.host {
        opts.host = h.clone();
    }
    let total: u64 = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let inputs: Vec<(PathBuf, BackfillOptions)> = args
        .files
        .iter()
        .map(|f| (f.clone(), opts.clone()))
        .collect();
    // Every file's records carry `--format` as their hint; the default parser follows it.
    let parser = args.keys.compile(Format::Auto, None)?;
    let parsers = std::sync::Arc::new(crate::parsers::ParserRegistry::with_default(
        Vec::new(),
        parser,
    ));
    let summary = backfill_files(
        &index_root(&args.data),
        &settings,
        &inputs,
        parsers,
        &mut |p| {
            bar.set_position(p.file_bytes);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} lines, {:.0} lines/s",
                p.lines,
                p.lines as f64 / secs
            ));
        },
    );
    bar.finish_and_clear();
    let s = summary?;
    let secs = s.elapsed.as_secs_f64().max(1e-3);
    println!(
        "indexed {} files, {} bytes, {} lines in {:.1} s ({:.0} lines/s): {} added, {} already indexed, {} past the retention age, {} truncated",
        s.files,
        s.file_bytes,
        s.lines,
        secs,
        s.lines as f64 / secs,
        s.added,
        s.already_indexed,
        s.expired,
        s.truncated,
    );
    if s.expired > 0 {
        eprintln!(
            "quill index: {} entries are older than --max-age-days {} and were not indexed (retention would delete them at once); pass --max-age-days 0 to keep everything",
            s.expired, args.max_age_days
        );
    }
    if s.added == 0 {
        eprintln!("quill index: nothing was added to the index");
        return Ok(1);
    }
    Ok(0)
}
