//! What a run shows on GitHub Actions: a failure as an error and a finding
//! as a warning on the line of the suite file that names the test (workflow
//! commands on stdout, which the runner turns into annotations), and the
//! results as a Markdown table in the job's summary.

use super::{Outcome, TestResult, first_line, summary};
use std::io::Write;
use std::path::Path;

/// Under GitHub Actions, prints the annotations and, when the job has a
/// summary file, appends the results to it.
pub fn publish(run: &str, results: &[TestResult], html: &Path) {
    if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
        let mut out = std::io::stdout().lock();
        for command in commands(results) {
            let _ = writeln!(out, "{command}");
        }
    }
    if let Some(file) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|file| !file.is_empty()) {
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&file)
            .and_then(|mut summary| summary.write_all(step_summary(run, results, html).as_bytes()));
        if let Err(error) = appended {
            eprintln!("stateproof: cannot append to GITHUB_STEP_SUMMARY {}: {error}", Path::new(&file).display());
        }
    }
}

/// `::error …::` per failure, `::warning …::` per finding.
fn commands(results: &[TestResult]) -> Vec<String> {
    results
        .iter()
        .filter_map(|result| {
            let (command, message) = match &result.outcome {
                Outcome::Failed(message) => ("error", message),
                Outcome::PassedWithFindings(finding) => ("warning", finding),
                Outcome::Passed | Outcome::Skipped(_) => return None,
            };
            let mut properties = Vec::new();
            if let Some(location) = result.location() {
                properties.push(format!("file={}", property(&location.file.display().to_string())));
                if let Some(line) = location.line {
                    properties.push(format!("line={line}"));
                }
            }
            properties.push(format!("title={}", property(&result.suite)));
            let text = format!("{}: {}", result.test, first_line(message));
            Some(format!("::{command} {}::{}", properties.join(","), data(&text)))
        })
        .collect()
}

/// A workflow command's message, escaped as the runner unescapes it.
fn data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A workflow command's property value: its separators escaped too.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

fn step_summary(run: &str, results: &[TestResult], html: &Path) -> String {
    let mut text = format!("## stateproof run {run}\n\n{}\n\n", summary::counts(results));
    text.push_str(
        "| suite | test | outcome | duration | waiting on the cluster |\n| --- | --- | --- | ---: | ---: |\n",
    );
    for result in results {
        let outcome = match &result.outcome {
            Outcome::Passed => "passed".to_string(),
            Outcome::PassedWithFindings(_) => "⚠️ FINDING".to_string(),
            Outcome::Failed(_) => "❌ FAILED".to_string(),
            Outcome::Skipped(reason) => format!("skipped: {}", first_line(reason)),
        };
        text.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {:.1} s |\n",
            cell(&result.suite),
            cell(&result.test),
            cell(&outcome),
            result.duration.as_secs_f64(),
            result.waited.as_secs_f64()
        ));
    }
    for (heading, wanted) in [("Failures", true), ("Findings", false)] {
        let listed: Vec<String> = results
            .iter()
            .filter_map(|result| match &result.outcome {
                Outcome::Failed(message) if wanted => Some((result, message)),
                Outcome::PassedWithFindings(finding) if !wanted => Some((result, finding)),
                _ => None,
            })
            .map(|(result, message)| {
                format!("- **{}::{}**: {}\n", result.suite, result.test, inline(&first_line(message)))
            })
            .collect();
        if !listed.is_empty() {
            text.push_str(&format!("\n### {heading}\n\n{}", listed.concat()));
        }
    }
    text.push_str(&format!("\nEach test's timeline and diagnostics: `{}`.\n\n", html.display()));
    text
}

/// Text that stays in its table cell.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

/// Text that stays on its Markdown line and is not read as markup.
fn inline(text: &str) -> String {
    text.replace(['\r', '\n'], " ").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(suite_file: &Path, test: &str, outcome: Outcome) -> TestResult {
        TestResult {
            suite: "kafka".into(),
            suite_file: suite_file.into(),
            test: test.into(),
            outcome,
            duration: Duration::from_millis(2500),
            waited: Duration::from_secs(2),
            diagnostics: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn failures_are_errors_and_findings_warnings_on_the_line_of_the_test() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kafka.yaml");
        std::fs::write(&file, "name: kafka\ntests:\n  - name: round-trip\n  - name: node-stopped\n").unwrap();
        let results = [
            result(&file, "round-trip", Outcome::Failed("step 2/5 (read): 100% lost, a:b\nmore".into())),
            result(&file, "node-stopped", Outcome::PassedWithFindings("lost m-000001".into())),
            result(&file, "other", Outcome::Passed),
            result(dir.path(), "leftovers", Outcome::Failed("namespace x".into())),
        ];
        let file = property(&file.display().to_string());
        assert_eq!(
            commands(&results),
            [
                format!("::error file={file},line=3,title=kafka::round-trip: step 2/5 (read): 100%25 lost, a:b"),
                format!("::warning file={file},line=4,title=kafka::node-stopped: lost m-000001"),
                "::error title=kafka::leftovers: namespace x".to_string(),
            ]
        );
    }

    #[test]
    fn the_step_summary_is_a_table_then_the_failures_and_findings() {
        let file = Path::new("suites/kafka.yaml");
        let results = [
            result(file, "round-trip", Outcome::Failed("step 1/1: a | b\n<pods>".into())),
            result(file, "scale", Outcome::Skipped("external image".into())),
            result(file, "node-stopped", Outcome::PassedWithFindings("lost m-000001".into())),
        ];
        let text = step_summary("r1", &results, Path::new("target/stateproof/report.html"));
        assert!(text.contains("| kafka | round-trip | ❌ FAILED | 2.5 s | 2.0 s |\n"), "{text}");
        assert!(text.contains("| kafka | scale | skipped: external image |"), "{text}");
        assert!(text.contains("### Failures\n\n- **kafka::round-trip**: step 1/1: a | b\n"), "{text}");
        assert!(text.contains("### Findings\n\n- **kafka::node-stopped**: lost m-000001\n"), "{text}");
        assert!(text.contains("`target/stateproof/report.html`"), "{text}");
    }
}
