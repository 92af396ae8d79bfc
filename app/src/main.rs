//! `dmacam`: camera frames from V4L2 to the screen or to disk without a CPU copy.

mod capture_opts;
#[cfg(test)]
mod catalogue_tests;
mod cmd;
mod decoding;
mod error_line;
mod gpu;
mod health;
mod pipeline;
mod pixels;
mod progress;
mod reconnect;
mod show;
mod signals;
mod sink;
mod trace;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "dmacam",
    version,
    about = "Zero-copy camera pipeline: V4L2 -> Vulkan -> Wayland/KMS or disk",
    after_help = "Shell completions and man pages: dmacam completions bash|zsh|fish, dmacam manpage [--out DIR]."
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
    /// A V4L2 node's controls: type, range, step, default, menu entries, current value (--set changes some).
    Controls(cmd::controls::Args),
    /// Report what this machine offers the pipeline: V4L2 nodes, dma-buf allocators, Vulkan, Wayland.
    Doctor(cmd::doctor::Args),
    /// Stream frames to a file: .raw, .y4m, or one .png/.ppm per frame ('#' = sequence number).
    Dump(cmd::dump::Args),
    /// Driver test run: stream each format and verify sequence, timestamps, sizes, flags and pixels.
    Check(cmd::check::Args),
    /// Show the camera in a Wayland window (zero-copy through linux-dmabuf where the compositor allows).
    #[command(after_help = cmd::view::KEY_HELP)]
    View(cmd::view::Args),
    /// Show the camera on a bare DRM/KMS display, no compositor (PRIME import, page-flip paced).
    KmsView(cmd::kms::Args),
    /// Share the camera with other processes by fd over a Unix socket (consumers: --from SOCKET).
    Serve(cmd::serve::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(hide = true)]
    Completions(cmd::manual::CompletionsArgs),
    /// Print the man page dmacam.1 to stdout, or write it and one page per subcommand into a directory.
    #[command(hide = true)]
    Manpage(cmd::manual::ManpageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::List(args) => cmd::list::run(args),
        Command::Controls(args) => cmd::controls::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Dump(args) => cmd::dump::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::View(args) => cmd::view::run(args),
        Command::KmsView(args) => cmd::kms::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Completions(args) => cmd::manual::completions(args, Cli::command()),
        Command::Manpage(args) => cmd::manual::manpage(args, Cli::command()),
    };
    let vulkan = dmacam_render::validation_messages();
    if vulkan > 0 {
        tracing::warn!("Vulkan's validation layer reported {vulkan} problem(s), logged above");
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            // One line: the chain of causes joined, never a backtrace.
            eprintln!("dmacam: {}", error_line::one_line(&err));
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
        // Colour codes only on a terminal: logs piped to a file or another program stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
