//! The `quill` binary. (Temporary dispatch for `quill parse` on the parse branch; the lead owns
//! the real CLI.)

use clap::Parser as _;

#[derive(clap::Parser)]
#[command(name = "quill", version, about = "A durable log pipeline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Parse log lines into GELF JSON (one object per line on stdout).
    Parse(quill::cli::parse::ParseArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Parse(args) => quill::cli::parse::run(&args)?,
    };
    std::process::exit(code);
}
