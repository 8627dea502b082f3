//! What a run says to CI: GitHub Actions annotations and a job summary,
//! and a JUnit XML report that GitLab and most CI systems show natively.
//! Pure text from the report; the caller writes it where it goes.

use baton_core::model::TaskStatus;
use baton_core::report::{Report, TaskReport};
use std::path::Path;

/// Where a run's output for CI goes.
#[derive(Debug, Clone, Default)]
pub struct CiOutput {
    /// GitHub Actions: `::error` annotations, `::group::`, the job summary.
    pub github: bool,
    /// Write a JUnit XML report here.
    pub junit: Option<std::path::PathBuf>,
}

impl CiOutput {
    /// `--format github`, or on GitHub Actions (`GITHUB_ACTIONS=true`)
    /// unless `--format text`.
    pub fn new(format: Option<&str>, junit: Option<std::path::PathBuf>) -> CiOutput {
        let on_actions = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
        CiOutput {
            github: format.map_or(on_actions, |f| f == "github"),
            junit,
        }
    }
}

/// A `::error` line for each task that did not succeed; a file and line
/// where the output of its last attempt names one in the repository.
pub fn annotations(r: &Report, repo_root: &Path, tails: &[(String, String)]) -> String {
    let mut out = String::new();
    for t in r.tasks.iter().filter(|t| t.status.is_bad_end()) {
        let reason = t.reason.clone().unwrap_or_else(|| t.status.to_string());
        let tail = tails
            .iter()
            .find(|(id, _)| *id == t.id)
            .map(|(_, s)| s.as_str());
        let place = tail
            .and_then(|s| file_line(s, repo_root))
            .map(|(f, l)| format!("file={},line={l},", escape_property(&f)))
            .unwrap_or_default();
        let title = escape_property(&format!("baton: task {} {}", t.id, t.status));
        out.push_str(&format!(
            "::error {place}title={title}::{}\n",
            escape_data(&reason)
        ));
    }
    out
}

/// The first `path:line` in `text` whose path is a file of the repository.
fn file_line(text: &str, root: &Path) -> Option<(String, u32)> {
    let re = regex_lite(text);
    re.into_iter().find(|(path, _)| root.join(path).is_file())
}

/// `path:line` pairs in text (a path has a dot in its last part).
fn regex_lite(text: &str) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || "()[]'\"`,".contains(c)) {
        let mut parts = word.split(':');
        let (Some(path), Some(line)) = (parts.next(), parts.next()) else {
            continue;
        };
        let path = path.trim_start_matches("./");
        let ok_path = !path.is_empty()
            && path.rsplit('/').next().is_some_and(|f| f.contains('.'))
            && !path.starts_with('/')
            && !path.contains("..");
        if let (true, Ok(n)) = (ok_path, line.parse::<u32>()) {
            found.push((path.to_string(), n));
        }
    }
    found
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The job summary: the run, then a table of its tasks.
pub fn summary(r: &Report) -> String {
    let cost = |c: Option<f64>| c.map(|c| format!("${c:.2}")).unwrap_or_default();
    let total = r
        .usage
        .cost_usd
        .map_or("not reported".to_string(), |c| format!("${c:.2}"));
    let mut out = format!(
        "### baton run `{}`: {}\n\nIntegration branch `{}`; cost {total}.\n\n| task | status | attempts | reason | cost | branch |\n|---|---|---|---|---|---|\n",
        r.run, r.status, r.integration_branch,
    );
    for t in &r.tasks {
        let reason = t
            .reason
            .as_deref()
            .unwrap_or("")
            .replace('|', "\\|")
            .replace('\n', " ");
        out.push_str(&format!(
            "| `{}` | {}{} | {} | {} | {} | `{}` |\n",
            t.id,
            mark(t),
            t.status,
            t.attempts,
            reason,
            cost(t.usage.cost_usd),
            t.branch
        ));
    }
    out
}

fn mark(t: &TaskReport) -> &'static str {
    match t.status {
        TaskStatus::Succeeded => "✅ ",
        s if s.is_bad_end() => "❌ ",
        _ => "",
    }
}

/// A JUnit XML report: one test case per task (failed, conflicted or
/// stopped: a failure; skipped: skipped).
pub fn junit(r: &Report) -> String {
    let secs = |ms: Option<i64>| ms.map_or(0.0, |m| m as f64 / 1000.0);
    let failures = r
        .tasks
        .iter()
        .filter(|t| t.status.is_bad_end() && t.status != TaskStatus::Skipped)
        .count();
    let skipped = r
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Skipped)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"baton\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{t:.3}\">\n  <testsuite name=\"{run}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{t:.3}\" timestamp=\"{ts}\">\n",
        n = r.tasks.len(),
        t = secs(r.duration_ms),
        run = xml(&r.run),
        ts = xml(&r.started_at),
    ));
    for t in &r.tasks {
        out.push_str(&format!(
            "    <testcase classname=\"baton.{}\" name=\"{}\" time=\"{:.3}\"",
            xml(&r.run),
            xml(&t.id),
            secs(t.duration_ms)
        ));
        let reason = xml(t.reason.as_deref().unwrap_or(""));
        match t.status {
            TaskStatus::Skipped => out.push_str(&format!(">\n      <skipped message=\"{reason}\"/>\n    </testcase>\n")),
            s if s.is_bad_end() => out.push_str(&format!(
                ">\n      <failure message=\"{reason}\" type=\"{s}\">{reason}</failure>\n    </testcase>\n"
            )),
            _ => out.push_str("/>\n"),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_lines_are_found_in_output() {
        let text = "error[E0425]: cannot find value\n --> src/lib.rs:12:5\nFAILED tests/test_x.py::test_y\n  at ./web/app.js:7\n";
        let found = regex_lite(text);
        assert_eq!(
            found,
            vec![
                ("src/lib.rs".to_string(), 12),
                ("web/app.js".to_string(), 7)
            ]
        );
    }

    #[test]
    fn annotation_text_is_escaped() {
        assert_eq!(escape_data("a%b\nc"), "a%25b%0Ac");
        assert_eq!(escape_property("x: y, z"), "x%3A y%2C z");
    }

    #[test]
    fn xml_is_escaped_and_control_characters_dropped() {
        assert_eq!(
            xml("<a href=\"x\">&'\u{1b}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
    }
}
