//! `check`'s reports: the JSON report and the JUnit XML, each written atomically (a temporary renamed into
//! place), so a report is whole or absent.

use serde_json::json;

use super::*;

pub(super) fn write_json(
    path: &PathBuf,
    device: &str,
    driver: &str,
    results: &[CaseResult],
    elapsed: Duration,
) -> Result<()> {
    let cases: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "format": r.name,
                "status": r.status.as_str(),
                "messages": r.messages,
                "frames": r.frames,
                "drops": r.drops,
                "errored": r.errored,
                "pixels_checked": r.pixels_checked,
                "seconds": r.seconds,
            })
        })
        .collect();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let v = json!({
        "device": device,
        "driver": driver,
        "passed": count(Status::Pass),
        "failed": count(Status::Fail),
        "skipped": count(Status::Skip),
        "seconds": elapsed.as_secs_f64(),
        "results": cases,
    });
    write_atomically(path, serde_json::to_string_pretty(&v)?.as_bytes())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn write_junit(
    path: &PathBuf,
    device: &str,
    results: &[CaseResult],
    elapsed: Duration,
) -> Result<()> {
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!(
        "<testsuite name=\"dmacam check {}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">\n",
        xml_escape(device),
        results.len(),
        count(Status::Fail),
        count(Status::Skip),
        elapsed.as_secs_f64()
    );
    for r in results {
        x += &format!(
            "  <testcase classname=\"dmacam.check\" name=\"{}\" time=\"{:.3}\">",
            xml_escape(&r.name),
            r.seconds
        );
        let msg = xml_escape(&r.messages.join("; "));
        match r.status {
            Status::Pass => {}
            Status::Fail => x += &format!("<failure message=\"{msg}\"/>"),
            Status::Skip => x += &format!("<skipped message=\"{msg}\"/>"),
        }
        x += "</testcase>\n";
    }
    x += "</testsuite>\n";
    write_atomically(path, x.as_bytes())
}

fn write_atomically(path: &PathBuf, data: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.partial-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let res = std::fs::write(&tmp, data).and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("cannot write {}", path.display()))
}
