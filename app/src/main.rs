//! `dmacam`: camera frames from V4L2 to the screen or to disk without a CPU copy.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dmacam",
    version,
    about = "Zero-copy camera pipeline: V4L2 -> Vulkan -> Wayland/KMS or disk"
)]
struct Cli {
    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every V4L2 node with its capabilities.
    List(cmd::list::Args),
    /// Report what this machine offers the pipeline: V4L2 nodes, dma-buf allocators, Vulkan, Wayland.
    Doctor(cmd::doctor::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::List(args) => cmd::list::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line: the chain of causes joined, never a backtrace.
            eprintln!("dmacam: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
