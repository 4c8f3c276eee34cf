//! Reporting: test results, the one JUnit writer, diagnostics of failures
//! and the closing summary.

pub mod diagnostics;
pub mod junit;
pub mod run_stats;
pub mod summary;

use std::path::PathBuf;
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
