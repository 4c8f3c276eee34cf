//! The closing table: per test, its outcome, its duration, and how much of
//! it was spent waiting on the cluster versus in the harness.

use super::{Outcome, TestResult};

pub fn render(results: &[TestResult]) -> String {
    let mut lines =
        vec![format!("{:<44} {:<7} {:>9} {:>12} {:>10}", "test", "result", "total s", "cluster s", "harness s")];
    for result in results {
        let outcome = match result.outcome {
            Outcome::Passed => "ok",
            Outcome::PassedWithFindings(_) => "FINDING",
            Outcome::Failed(_) => "FAILED",
            Outcome::Skipped(_) => "skipped",
        };
        let total = result.duration.as_secs_f64();
        let waited = result.waited.as_secs_f64().min(total);
        lines.push(format!(
            "{:<44} {:<7} {:>9.1} {:>12.1} {:>10.1}",
            format!("{}::{}", result.suite, result.test),
            outcome,
            total,
            waited,
            total - waited
        ));
    }
    lines.join("\n")
}
