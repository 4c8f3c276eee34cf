//! Reporting: test results, the one JUnit writer, the HTML report with its
//! timelines, what GitHub Actions shows, diagnostics of failures and the
//! closing summary.

pub mod diagnostics;
pub mod github;
pub mod html;
pub mod junit;
mod plot;
pub mod run_stats;
pub mod summary;
mod timeline;

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Passed, with something found about the system under test that the
    /// test's expectations report rather than fail on (e.g. the loss of
    /// acknowledged messages by a manifest as shipped).
    PassedWithFindings(String),
    Failed(String),
    Skipped(String),
}

/// One test's result, as the report shows it.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The suite's name; one JUnit testsuite per suite file.
    pub suite: String,
    pub suite_file: PathBuf,
    pub test: String,
    pub outcome: Outcome,
    pub duration: Duration,
    /// Of `duration`, the time spent waiting on the cluster.
    pub waited: Duration,
    pub diagnostics: Option<PathBuf>,
    /// Figures the test measured and where its history is, by name.
    pub properties: Vec<(String, String)>,
}

/// Where a test is written: its suite file, and the line that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location<'a> {
    pub file: &'a Path,
    /// None for a result that is not one of the file's tests (its load,
    /// its teardown).
    pub line: Option<usize>,
}

impl TestResult {
    /// The suite file and the line of `- name: <test>` in it, for
    /// annotations that point at the test; nothing when the suite file is
    /// not a readable file (the failures of the run as a whole).
    pub fn location(&self) -> Option<Location<'_>> {
        let text = std::fs::read_to_string(&self.suite_file).ok()?;
        let line = text.lines().position(|line| names_test(line, &self.test)).map(|index| index + 1);
        Some(Location { file: &self.suite_file, line })
    }

    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// `- name: <test>` as a suite file lists its tests, quoted or not, with
/// or without a trailing comment.
fn names_test(line: &str, test: &str) -> bool {
    let Some(value) = line.trim_start().strip_prefix('-').and_then(|rest| rest.trim_start().strip_prefix("name:"))
    else {
        return false;
    };
    let value = value.split(" #").next().unwrap_or_default().trim();
    value.trim_matches(['"', '\'']) == test
}

/// Writes the JUnit file and the HTML page, and says where they are, or
/// why one could not be written.
pub fn write_files(junit_path: &Path, html_path: &Path, run: &str, results: &[TestResult]) {
    match junit::write(junit_path, run, results) {
        Ok(()) => eprintln!("stateproof: JUnit report {}", junit_path.display()),
        Err(error) => eprintln!("stateproof: cannot write the JUnit report {}: {error}", junit_path.display()),
    }
    match html::write(html_path, run, results) {
        Ok(()) => eprintln!("stateproof: HTML report {}", html_path.display()),
        Err(error) => eprintln!("stateproof: cannot write the HTML report {}: {error}", html_path.display()),
    }
}

/// The first line of a message, shortened: what a one-line view shows.
pub(crate) fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or_default().chars().take(300).collect()
}

/// Writes a report next to its final path, then renames it into place, so
/// that a reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let name = path.file_name().map_or("report".into(), |name| name.to_string_lossy().into_owned());
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(suite_file: &Path, test: &str) -> TestResult {
        TestResult {
            suite: "zookeeper".into(),
            suite_file: suite_file.into(),
            test: test.into(),
            outcome: Outcome::Passed,
            duration: Duration::ZERO,
            waited: Duration::ZERO,
            diagnostics: None,
            properties: Vec::new(),
        }
    }

    #[test]
    fn a_test_is_located_at_the_line_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("zookeeper.yaml");
        let text = "name: zookeeper\ntests:\n  - name: sanity-write\n    steps: []\n  - name: \"liveness\"  # quoted\n";
        std::fs::write(&file, text).unwrap();
        assert_eq!(result(&file, "sanity-write").location().unwrap().line, Some(3));
        assert_eq!(result(&file, "liveness").location().unwrap().line, Some(5));
        assert_eq!(result(&file, "zookeeper").location().unwrap().line, None, "the suite's own name is no test");
        assert_eq!(result(&file, "teardown").location(), Some(Location { file: &file, line: None }));
        assert_eq!(result(dir.path(), "leftovers").location(), None, "a folder is not a suite file");
    }
}
