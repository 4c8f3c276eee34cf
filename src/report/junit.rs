//! The one JUnit writer: one testsuite per suite file, one testcase per
//! test, written atomically so that a reader never sees half a file.

use super::{Outcome, TestResult};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::collections::BTreeMap;
use std::path::Path;

pub fn render(run: &str, results: &[TestResult]) -> String {
    let mut report = Report::new(format!("stateproof {run}"));
    let mut suites: BTreeMap<(String, String), Vec<&TestResult>> = BTreeMap::new();
    for result in results {
        let key = (result.suite.clone(), result.suite_file.display().to_string());
        suites.entry(key).or_default().push(result);
    }
    for ((name, file), results) in suites {
        let mut suite = TestSuite::new(name.clone());
        suite.add_property(("file", file.as_str()));
        suite.set_time(results.iter().map(|r| r.duration).sum());
        for result in results {
            suite.add_test_case(test_case(&name, result));
        }
        report.add_test_suite(suite);
    }
    report.to_string().unwrap_or_else(|error| format!("<!-- cannot serialize report: {error} -->"))
}

fn test_case(suite: &str, result: &TestResult) -> TestCase {
    let status = match &result.outcome {
        Outcome::Passed | Outcome::PassedWithFindings(_) => TestCaseStatus::success(),
        Outcome::Failed(message) => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(first_line(message));
            let mut description = message.clone();
            if let Some(dir) = &result.diagnostics {
                description.push_str(&format!("\n\ndiagnostics: {}", dir.display()));
            }
            status.set_description(description);
            status
        }
        Outcome::Skipped(reason) => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(reason.as_str());
            status
        }
    };
    let mut case = TestCase::new(result.test.clone(), status);
    case.set_classname(suite);
    case.set_time(result.duration);
    case.add_property(("waited-on-cluster-seconds", format!("{:.1}", result.waited.as_secs_f64()).as_str()));
    if let Some(dir) = &result.diagnostics {
        case.add_property(("diagnostics", dir.display().to_string().as_str()));
    }
    for (name, value) in &result.properties {
        case.add_property((name.as_str(), value.as_str()));
    }
    if let Outcome::PassedWithFindings(findings) = &result.outcome {
        case.add_property(("finding", first_line(findings).as_str()));
        case.set_system_out(format!(
            "FINDING (passed: this test's expectations report it, not fail on it)\n{findings}"
        ));
    }
    case
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().chars().take(300).collect()
}

/// Writes the report next to its final path, then renames it into place.
pub fn write(path: &Path, run: &str, results: &[TestResult]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let partial = path.with_extension(format!("xml.{}.partial", std::process::id()));
    std::fs::write(&partial, render(run, results))?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn result(test: &str, outcome: Outcome) -> TestResult {
        TestResult {
            suite: "zookeeper".into(),
            suite_file: "suites/zookeeper.yaml".into(),
            test: test.into(),
            outcome,
            duration: Duration::from_millis(1500),
            waited: Duration::from_millis(1200),
            diagnostics: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn counts_and_messages_reach_the_xml() {
        let mut failed = result("durable-storage", Outcome::Failed("step 3/7 (x): claim gone\nmore".into()));
        failed.diagnostics = Some("target/stateproof/run/zookeeper/durable-storage".into());
        let xml = render(
            "r1",
            &[result("sanity", Outcome::Passed), failed, result("liveness", Outcome::Skipped("image missing".into()))],
        );
        assert!(
            xml.contains(r#"tests="3""#) && xml.contains(r#"failures="1""#) && xml.contains(r#"skipped="1""#),
            "{xml}"
        );
        assert!(xml.contains(r#"message="step 3/7 (x): claim gone""#), "{xml}");
        assert!(xml.contains("diagnostics: target/stateproof/run/zookeeper/durable-storage"), "{xml}");
        assert!(xml.contains(r#"time="1.500""#), "{xml}");
    }

    #[test]
    fn an_empty_run_is_still_a_well_formed_report() {
        let xml = render("r2", &[]);
        assert!(xml.starts_with("<?xml") && xml.contains(r#"tests="0""#), "{xml}");
    }

    #[test]
    fn writing_replaces_the_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/junit.xml");
        write(&path, "r3", &[result("sanity", Outcome::Passed)]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("sanity"));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no partial file left behind");
    }
}
