//! The closing table: per test, its outcome, its duration, and how much of
//! it was spent waiting on the cluster versus in the harness; then a line of
//! counts in which skips and findings cannot be missed.

use super::{Outcome, TestResult};

pub fn render(results: &[TestResult]) -> String {
    let mut lines =
        vec![format!("{:<52} {:<7} {:>9} {:>12} {:>10}", "test", "result", "total s", "cluster s", "harness s")];
    for result in results {
        let total = result.duration.as_secs_f64();
        let waited = result.waited.as_secs_f64().min(total);
        lines.push(format!(
            "{:<52} {:<7} {:>9.1} {:>12.1} {:>10.1}",
            format!("{}::{}", result.suite, result.test),
            label(&result.outcome),
            total,
            waited,
            total - waited
        ));
    }
    lines.push(String::new());
    lines.push(counts(results));
    for result in results {
        if let Outcome::Skipped(reason) = &result.outcome {
            lines.push(format!("  SKIPPED {}::{}: {reason}", result.suite, result.test));
        }
    }
    lines.join("\n")
}

fn label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "ok",
        Outcome::PassedWithFindings(_) => "FINDING",
        Outcome::Failed(_) => "FAILED",
        Outcome::Skipped(_) => "SKIPPED",
    }
}

/// `12 passed, 1 with FINDINGS, 0 failed, 2 SKIPPED (not run: they prove nothing)`.
pub(crate) fn counts(results: &[TestResult]) -> String {
    let count = |wanted: &str| results.iter().filter(|result| label(&result.outcome) == wanted).count();
    let skipped = count("SKIPPED");
    let mut line = format!(
        "{} passed, {} with FINDINGS, {} failed, {skipped} SKIPPED",
        count("ok"),
        count("FINDING"),
        count("FAILED")
    );
    if skipped > 0 {
        line.push_str(" (not run: they prove nothing)");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(outcome: Outcome) -> TestResult {
        TestResult {
            suite: "raftkeeper".into(),
            suite_file: "suites/raftkeeper.yaml".into(),
            test: "sanity-write".into(),
            outcome,
            duration: Duration::from_secs(2),
            waited: Duration::from_secs(1),
            diagnostics: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn skips_are_counted_and_each_named_with_its_reason() {
        let text = render(&[result(Outcome::Passed), result(Outcome::Skipped("image x is external".into()))]);
        assert!(
            text.contains("1 passed, 0 with FINDINGS, 0 failed, 1 SKIPPED (not run: they prove nothing)"),
            "{text}"
        );
        assert!(text.contains("  SKIPPED raftkeeper::sanity-write: image x is external"), "{text}");
    }
}
