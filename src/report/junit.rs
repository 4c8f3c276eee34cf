//! The one JUnit writer: one testsuite per suite file, one testcase per
//! test, written atomically so that a reader never sees half a file.
//!
//! The file validates against Jenkins' junit-10.xsd (the xunit plugin skips
//! a file that does not), which allows no properties and no attributes but
//! name, classname and time on a testcase: a test's own facts (time waiting
//! on the cluster, its history, diagnostics, a finding) are `name: value`
//! lines of its system-out. The suite file is the testsuite's `file`
//! attribute, which action-junit-report annotates; the test's line is in
//! the failure's text, where it reads a `<file>:<line>` (a `line`
//! attribute would fail the schema).

use super::{Location, Outcome, TestResult, first_line, write_atomically};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use regex::Regex;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

pub fn render(run: &str, results: &[TestResult]) -> String {
    let mut report = Report::new(format!("stateproof {run}"));
    let mut suites: BTreeMap<(String, String), Vec<&TestResult>> = BTreeMap::new();
    for result in results {
        let key = (result.suite.clone(), result.suite_file.display().to_string());
        suites.entry(key).or_default().push(result);
    }
    for ((name, file), results) in suites {
        let mut suite = TestSuite::new(name.clone());
        // For the run's own failures, the suites folder: without a file,
        // action-junit-report annotates the first file named like the
        // classname (target/debug/stateproof.d).
        if Path::new(&file).exists() {
            suite.extra.insert("file".into(), file.as_str().into());
        }
        suite.set_time(results.iter().map(|r| r.duration).sum());
        for result in results {
            suite.add_test_case(test_case(&name, result));
        }
        report.add_test_suite(suite);
    }
    match report.to_string() {
        Ok(xml) => without_total_skipped(&xml),
        Err(error) => format!("<!-- cannot serialize report: {error} -->"),
    }
}

/// quick-junit counts skips on `<testsuites>` too, where junit-10.xsd has
/// no such attribute; each `<testsuite>` keeps its own count.
fn without_total_skipped(xml: &str) -> String {
    static TOTAL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"(<testsuites\b[^>]*?) skipped="\d+""#).unwrap());
    TOTAL.replacen(xml, 1, "$1").into_owned()
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
            if let Some(location) = result.location() {
                description.push_str(&where_written(&location, &result.test));
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
    case.set_system_out(system_out(result));
    case
}

/// The test's facts as `name: value` lines, then a finding in full.
fn system_out(result: &TestResult) -> String {
    let mut facts = vec![("waited-on-cluster-seconds".to_string(), format!("{:.1}", result.waited.as_secs_f64()))];
    if let Some(dir) = &result.diagnostics {
        facts.push(("diagnostics".into(), dir.display().to_string()));
    }
    facts.extend(result.properties.iter().cloned());
    if let Outcome::PassedWithFindings(findings) = &result.outcome {
        facts.push(("finding".into(), first_line(findings)));
    }
    let mut text: String = facts.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
    if let Outcome::PassedWithFindings(findings) = &result.outcome {
        text.push_str(&format!("\nFINDING (passed: this test's expectations report it, not fail on it)\n{findings}"));
    }
    text
}

/// Where the test is written (for the suite's own testcases, its load and
/// teardown, the suite file's first line), in the two shapes the annotating
/// consumers read from a failure's text: `<file>:<line>`
/// (action-junit-report), and a Java stack frame, `at
/// <folder>.Test.<name>(<file name>:<line>)`, which dorny/test-reporter
/// matches to the tracked file of that name in that folder. The frame only
/// where it can match: a folder name in lower case.
fn where_written(location: &Location, test: &str) -> String {
    let file = location.file.display();
    let (what, line) = location.line.map_or(("suite", 1), |line| ("test", line));
    let mut text = format!("\n{what}: {file}:{line}");
    let folder = location.file.parent().and_then(Path::file_name).and_then(|name| name.to_str());
    let name = location.file.file_name().and_then(|name| name.to_str());
    if let (Some(folder), Some(name)) = (folder, name)
        && folder.starts_with(|c: char| c.is_ascii_lowercase())
        && !folder.contains('.')
    {
        text.push_str(&format!("\n    at {folder}.Test.{test}({name}:{line})"));
    }
    text
}

/// Writes the report next to its final path, then renames it into place.
pub fn write(path: &Path, run: &str, results: &[TestResult]) -> std::io::Result<()> {
    write_atomically(path, &render(run, results))
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

    /// Every opening tag of an element, as its text.
    fn tags<'a>(xml: &'a str, element: &str) -> Vec<&'a str> {
        let open = format!("<{element}");
        xml.match_indices(&open)
            .filter(|(at, _)| xml[at + open.len()..].starts_with([' ', '>', '/']))
            .map(|(at, _)| &xml[at..at + xml[at..].find('>').unwrap() + 1])
            .collect()
    }

    fn attributes(tag: &str) -> Vec<&str> {
        Regex::new(r#"\s([\w-]+)=""#).unwrap().captures_iter(tag).map(|c| c.get(1).unwrap().as_str()).collect()
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

    /// What junit-10.xsd allows: no skip count on `<testsuites>`, nothing
    /// on a testcase but name, classname and time, no properties in it.
    #[test]
    fn the_structure_is_what_the_jenkins_schema_wants() {
        let mut finding = result("node-failure", Outcome::PassedWithFindings("lost m-000007\nat offset 3".into()));
        finding.properties.push(("history".into(), "target/stateproof/r/zookeeper/node-failure/history.jsonl".into()));
        let results =
            [result("sanity", Outcome::Passed), finding, result("liveness", Outcome::Failed("step 1/1: no".into()))];
        let xml = render("r1", &results);
        assert_eq!(attributes(tags(&xml, "testsuites")[0]), ["name", "tests", "failures", "errors"], "{xml}");
        for tag in tags(&xml, "testcase") {
            assert_eq!(attributes(tag), ["name", "classname", "time"], "{tag}");
        }
        assert!(!xml.contains("<properties"), "{xml}");
        assert_eq!(tags(&xml, "system-out").len(), 3, "{xml}");
        assert!(xml.contains("waited-on-cluster-seconds: 1.2\n"), "{xml}");
        assert!(xml.contains("history: target/stateproof/r/zookeeper/node-failure/history.jsonl\n"), "{xml}");
        assert!(xml.contains("finding: lost m-000007\n"), "{xml}");
    }

    #[test]
    fn a_failure_names_the_suite_file_and_the_line_of_its_test() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("suites/zookeeper.yaml");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "name: zookeeper\ntests:\n  - name: sanity\n    steps: []\n").unwrap();
        let mut failed = result("sanity", Outcome::Failed("step 1/1: no".into()));
        failed.suite_file = file.clone();
        let xml = render("r1", &[failed]);
        let suite = tags(&xml, "testsuite")[0];
        assert!(suite.contains(&format!(r#"file="{}""#, file.display())), "{suite}");
        assert!(xml.contains(&format!("test: {}:3\n    at suites.Test.sanity(zookeeper.yaml:3)<", file.display())));
        let mut teardown = result("teardown", Outcome::Failed("namespace x".into()));
        teardown.suite_file = file.clone();
        let xml = render("r1", &[teardown]);
        assert!(xml.contains(&format!("suite: {}:1\n    at suites.Test.teardown(zookeeper.yaml:1)<", file.display())));
        let mut leftovers = result("leftovers", Outcome::Failed("namespace x".into()));
        leftovers.suite_file = dir.path().join("suites");
        let xml = render("r1", &[leftovers]);
        assert!(tags(&xml, "testsuite")[0].contains("file="), "{xml}");
        assert!(!xml.contains("test: ") && !xml.contains("suite: "), "a folder has no lines: {xml}");
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
