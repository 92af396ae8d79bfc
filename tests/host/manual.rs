//! Shell completions and man pages (`dmacam completions SHELL`, `dmacam manpage [--out DIR]`) from the built
//! binary: they name every subcommand `dmacam --help` lists, the man pages are roff that groff formats
//! without a warning, and a shell dmacam does not know is one line and a failure.

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// The subcommands every generated file must name, whatever `--help` says (so an empty list cannot pass).
const KNOWN: [&str; 8] = [
    "list", "controls", "doctor", "dump", "check", "view", "kms-view", "serve",
];

fn dmacam() -> Command {
    dmacam_tests::built_dmacam()
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run dmacam");
    assert!(
        out.status.success(),
        "failed: {}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommands `dmacam --help` lists (its `Commands:` section, less `help`).
fn subcommands() -> Vec<String> {
    let help = ok(dmacam().arg("--help"));
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    for known in KNOWN {
        assert!(
            names.iter().any(|n| n == known),
            "--help does not list {known}:\n{help}"
        );
    }
    names
}

#[test]
fn completions_name_every_subcommand() {
    let names = subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(dmacam().args(["completions", shell]));
        for name in &names {
            assert!(
                script.contains(name.as_str()),
                "the {shell} completion does not mention '{name}'"
            );
        }
    }
    // bash: a `case` branch per subcommand, and the function registered for the command.
    let bash = ok(dmacam().args(["completions", "bash"]));
    assert!(
        bash.contains("complete -F _dmacam"),
        "not a bash completion for dmacam:\n{}",
        &bash[..bash.len().min(400)]
    );
    for name in &names {
        assert!(
            bash.contains(&format!("dmacam,{name})")),
            "the bash completion has no branch for '{name}'"
        );
    }
}

/// Checks that `page` is a man page titled `title`: past the string definitions roff output may start
/// with (`.ie`/`.el`/`.ds`), the first request is `.TH TITLE 1`, and groff formats it (UTF-8 input
/// through preconv, `-k`, as man does) with every warning on (`-ww`) and says nothing.
fn assert_man_page(page: &str, title: &str) {
    let first = page
        .lines()
        .find(|l| !(l.starts_with(".ie ") || l.starts_with(".el ") || l.starts_with(".ds ")))
        .unwrap_or_default();
    assert!(
        first.starts_with(&format!(".TH {title} 1 ")),
        "the man page of {title} does not start with .TH {title} 1: {first:?}"
    );
    // Through stdin: tests run in parallel in one process, so a file named after it would be shared.
    let mut child = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run groff (tests/setup installs groff-base)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let groff = child.wait_with_output().unwrap();
    assert!(
        groff.status.success() && groff.stderr.is_empty(),
        "groff warns about the man page of {title}:\n{}",
        String::from_utf8_lossy(&groff.stderr)
    );
}

/// A roff text with its escaped hyphens (`\-`) plain, as a reader sees it.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
}

#[test]
fn man_page_is_roff_and_names_every_subcommand() {
    let names = subcommands();
    let page = ok(dmacam().arg("manpage"));
    assert_man_page(&page, "dmacam");
    let text = plain(&page);
    assert!(text.contains(".SH SUBCOMMANDS"), "no SUBCOMMANDS section");
    for name in &names {
        assert!(
            text.contains(&format!("dmacam-{name}(1)")),
            "the man page does not name dmacam-{name}(1)"
        );
    }
    assert!(
        !text.contains("dmacam-help(1)"),
        "it names a page that does not exist"
    );
}

#[test]
fn man_pages_into_a_directory_one_per_subcommand() {
    let dir = dmacam_tests::host::scratch("manual", "out");
    let out_dir = dir.join("share/man/man1");
    let listed = ok(dmacam().args(["manpage", "--out"]).arg(&out_dir));
    let mut expected = vec!["dmacam".to_owned()];
    expected.extend(subcommands().iter().map(|n| format!("dmacam-{n}")));
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = expected.iter().map(|t| format!("{t}.1")).collect();
    want.sort();
    assert_eq!(files, want, "pages written into {}", out_dir.display());
    assert_eq!(
        listed.lines().count(),
        want.len(),
        "one line per page:\n{listed}"
    );
    for title in &expected {
        let page = std::fs::read_to_string(out_dir.join(format!("{title}.1"))).unwrap();
        assert_man_page(&page, title);
    }
    let view = plain(&std::fs::read_to_string(out_dir.join("dmacam-view.1")).unwrap());
    assert!(view.contains("--path"), "dmacam-view.1 has no --path");
}

#[test]
fn an_unknown_shell_is_one_line_and_a_failure() {
    let out: Output = dmacam()
        .args(["completions", "tcsh"])
        .output()
        .expect("run dmacam");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        ["dmacam: completions: unknown shell 'tcsh' (use bash, zsh, fish, elvish or powershell)"]
    );
    assert!(out.stdout.is_empty(), "a script was printed anyway");
}
