//! The bad-input table (`tests/BAD-INPUT.md`): each row a bad input, the command that tries it, the exact
//! message, the exit status, where it can run and the tests that back it. Checked from the host
//! (`tests/host/bad_input.rs`: every named test exists, every `host` row gives exactly its message) and in
//! the VM (`faults::faults_bad_input_table_vm_rows_hold`: every `vm` row does).

use std::path::Path;
use std::process::{Command, Output};

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    /// `dmacam` arguments (split on whitespace).
    pub args: Vec<String>,
    /// The exact first line on stderr (for exit status 1 the only line).
    pub message: String,
    pub exit: i32,
    /// `host` (runs anywhere), `vm` (needs the test-bed's devices) or `setup` (needs a fault arranged
    /// first; only its tests try it).
    pub runs: String,
    /// `module::function` names of the tests that try this input.
    pub tests: Vec<String>,
}

/// Splits a table line into cells on `|` not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.trim().trim_start_matches('|').chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cur.push('|');
                chars.next();
            }
            '|' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// A cell without its code-span backticks (`` `x` `` or ``` `` x `` ```).
fn code(cell: &str) -> String {
    let c = cell.trim();
    let c = match c.strip_prefix("``").and_then(|c| c.strip_suffix("``")) {
        Some(inner) => inner.strip_prefix(' ').unwrap_or(inner),
        None => c
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .unwrap_or(c),
    };
    c.strip_suffix(' ').unwrap_or(c).to_owned()
}

/// The rows of the table in `markdown` (lines starting `| N |`).
pub fn parse(markdown: &str) -> Vec<Row> {
    markdown
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(cells)
        .filter(|c| c.len() >= 7 && c[0].parse::<u32>().is_ok())
        .map(|c| Row {
            what: c[1].clone(),
            args: code(&c[2])
                .split_whitespace()
                .skip_while(|a| *a == "dmacam")
                .map(str::to_owned)
                .collect(),
            message: code(&c[3]),
            exit: c[4].parse().unwrap_or(-1),
            runs: c[5].clone(),
            tests: c[6]
                .split(',')
                .map(|t| code(t.trim()))
                .filter(|t| !t.is_empty())
                .collect(),
        })
        .collect()
}

/// The table of this work tree.
pub fn load(src: &Path) -> Vec<Row> {
    let path = src.join("tests/BAD-INPUT.md");
    parse(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Whether `out` is what `row` says, or why not.
pub fn verdict(row: &Row, out: &Output) -> Result<(), String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let ok_lines = if row.exit == 2 {
        // clap: the error line, then usage and a hint.
        lines.first() == Some(&row.message.as_str())
    } else {
        lines == [row.message.as_str()]
    };
    if out.status.code() != Some(row.exit) || !ok_lines || stderr.contains("panicked") {
        return Err(format!(
            "row '{}' (dmacam {}): expected exit {} and\n  {}\ngot exit {:?} and\n  {}",
            row.what,
            row.args.join(" "),
            row.exit,
            row.message,
            out.status.code(),
            lines.join("\n  ")
        ));
    }
    Ok(())
}

/// Runs a row's command in `dir` with no Wayland display in the environment.
pub fn run_row(mut dmacam: Command, row: &Row, dir: &Path) -> Output {
    dmacam
        .args(&row.args)
        .current_dir(dir)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUST_LOG");
    super::run_with_deadline(&mut dmacam, std::time::Duration::from_secs(120))
        .unwrap_or_else(|hang| panic!("{hang}"))
}
