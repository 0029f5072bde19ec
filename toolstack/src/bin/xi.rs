//! `xi`: the command line, modelled on `xl`.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

/// xi — Xen save/restore toolstack.
#[derive(Debug, Parser)]
#[command(name = "xi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole round trip on the embedded model (placeholder until the demo lands).
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            println!("xi demo: placeholder — the save/restore demo lands with the save/restore issue");
            Ok(())
        }
    }
}
