//! `dmacam completions SHELL` and `dmacam manpage [--out DIR]`: shell completions and man pages generated from
//! the clap definitions themselves, so they cannot drift from the options the binary takes. Both are hidden
//! subcommands (install helpers, not camera commands); README shows the command that installs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap_complete::Shell;

/// The shells `completions` writes for, by the names a user types.
const SHELLS: [(&str, Shell); 5] = [
    ("bash", Shell::Bash),
    ("zsh", Shell::Zsh),
    ("fish", Shell::Fish),
    ("elvish", Shell::Elvish),
    ("powershell", Shell::PowerShell),
];

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    // A plain string, not a ValueEnum: a wrong name is dmacam's one-line refusal, not clap's usage block.
    shell: String,
}

#[derive(clap::Args)]
pub struct ManpageArgs {
    /// Write dmacam.1 and one page per subcommand (dmacam-view.1, ...) into DIR (created if missing)
    /// instead of printing dmacam.1 to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// The shell named `name`, or the one-line refusal that lists the known ones.
fn shell_named(name: &str) -> Result<Shell> {
    match SHELLS.iter().find(|(n, _)| *n == name) {
        Some((_, shell)) => Ok(*shell),
        None => {
            let known: Vec<&str> = SHELLS.iter().map(|(n, _)| *n).collect();
            let (last, rest) = known.split_last().expect("at least one shell");
            bail!(
                "completions: unknown shell '{name}' (use {} or {last})",
                rest.join(", ")
            )
        }
    }
}

/// Prints the completion script for `args.shell` for the command line `cli`.
pub fn completions(args: CompletionsArgs, mut cli: clap::Command) -> Result<ExitCode> {
    let shell = shell_named(&args.shell)?;
    let name = cli.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, name, &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the main man page, or writes every page into `args.out`.
pub fn manpage(args: ManpageArgs, cli: clap::Command) -> Result<ExitCode> {
    match args.out {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(for_pages(cli))
                .render(&mut out)
                .context("rendering the man page")?;
            write_stdout(&out)?;
        }
        Some(dir) => {
            for page in write_pages(cli, &dir)? {
                println!("{}", page.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `cli` as the pages show it: without clap's `help` subcommand (a page would name a `dmacam-help(1)` that
/// does not exist), built so that each subcommand knows its full name (`dmacam-view`).
fn for_pages(cli: clap::Command) -> clap::Command {
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    cli
}

/// Writes `NAME.1` for `cli` and each visible subcommand into `dir`; returns the files written. Each page
/// is written beside its final name and renamed, so an interrupted run leaves no half page behind.
fn write_pages(cli: clap::Command, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("manpage --out: cannot create {}", dir.display()))?;
    let cli = for_pages(cli);
    let mut commands = vec![cli.clone()];
    commands.extend(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let mut written = Vec::new();
    for cmd in commands {
        let man = clap_mangen::Man::new(cmd);
        let path = dir.join(man.get_filename());
        let tmp = dir.join(format!(".{}.tmp", man.get_filename()));
        let mut page = Vec::new();
        man.render(&mut page).context("rendering a man page")?;
        std::fs::write(&tmp, &page)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })
            .with_context(|| format!("manpage --out: cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `bytes` to stdout; a closed pipe (`| head`) is not an error worth a message.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_is_found_by_its_name_and_a_wrong_one_lists_them() {
        for (name, shell) in SHELLS {
            assert_eq!(shell_named(name).unwrap(), shell);
        }
        assert_eq!(
            shell_named("tcsh").unwrap_err().to_string(),
            "completions: unknown shell 'tcsh' (use bash, zsh, fish, elvish or powershell)"
        );
    }

    #[test]
    fn pages_are_written_for_the_command_and_each_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("dmacam-manual-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cli = clap::Command::new("tool")
            .subcommand(clap::Command::new("shown"))
            .subcommand(clap::Command::new("secret").hide(true));
        let written = write_pages(cli, &dir.join("man1")).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["tool.1", "tool-shown.1"]);
        let page = std::fs::read_to_string(&written[1]).unwrap();
        assert!(page.contains("\n.TH tool-shown 1 "), "{page}");
        let leftovers = std::fs::read_dir(dir.join("man1")).unwrap().count();
        assert_eq!(leftovers, 2, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
