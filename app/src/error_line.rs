//! How dmacam says what went wrong: one line per error, its causes joined.

/// An error and its causes on one line, `a: b: c`, leaving out a cause whose text the line already holds
/// (library errors often show their source in their own message too).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}
