//! The bad-input table (`tests/BAD-INPUT.md`) cannot rot: it has at least 20 rows, every test it names
//! exists, and every `host` row, run verbatim with the built `dmacam`, gives exactly its message and exit
//! status and leaves no file behind. (`vm` rows are run the same way in the VM by
//! `faults::faults_bad_input_table_vm_rows_hold`.)

use std::path::PathBuf;
use std::process::Command;

use dmacam_tests::bad_input::{load, run_row, verdict};
use dmacam_tests::built_dmacam;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn table_has_20_rows_and_names_only_tests_that_exist() {
    let rows = load(&root());
    assert!(rows.len() >= 20, "only {} rows", rows.len());
    for row in &rows {
        assert!(
            ["host", "vm", "setup"].contains(&row.runs.as_str()),
            "row '{}': runs is '{}'",
            row.what,
            row.runs
        );
        assert!(
            !row.message.is_empty() && row.message != "?",
            "row '{}' has no message",
            row.what
        );
        assert!(!row.tests.is_empty(), "row '{}' names no test", row.what);
        for t in &row.tests {
            let (module, function) = t
                .rsplit_once("::")
                .unwrap_or_else(|| panic!("row '{}': '{t}' is not module::function", row.what));
            // The VM suite's modules are under tests/suite/, the host tests' under tests/host/ (a module
            // `a::b` is `a/b.rs` or `a/b/mod.rs`); a name may be in either (both have a `pattern`).
            let module = module.replace("::", "/");
            let found = ["suite", "host"].iter().any(|d| {
                [format!("{module}.rs"), format!("{module}/mod.rs")]
                    .iter()
                    .any(|f| {
                        let file = root().join("tests").join(d).join(f);
                        let text = std::fs::read_to_string(&file).unwrap_or_default();
                        text.find(&format!("fn {function}()"))
                            .is_some_and(|at| text[..at].trim_end().ends_with("#[test]"))
                    })
            });
            assert!(
                found,
                "row '{}': no #[test] fn {function} in module {module} of tests/suite or tests/host",
                row.what
            );
        }
    }
}

#[test]
fn host_rows_give_exactly_their_message() {
    let dir = std::env::temp_dir().join(format!("dmacam-bad-input-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    let rows: Vec<_> = load(&root())
        .into_iter()
        .filter(|r| r.runs == "host")
        .collect();
    assert!(rows.len() >= 20, "only {} host rows", rows.len());
    let dmacam = built_dmacam();
    for row in &rows {
        let out = run_row(Command::new(dmacam.get_program()), row, &dir);
        if let Err(e) = verdict(row, &out) {
            failures.push(e);
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        if !left.is_empty() {
            failures.push(format!("row '{}' left {left:?}", row.what));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
