//! Finding suite files and reading them. A file that cannot be read, parsed
//! or validated becomes a [`LoadError`] naming the file and the cause, which
//! the harness reports as a failed test rather than aborting the run.

use super::model::{Disruption, Step, Suite, TestSpec};
use crate::settings::Settings;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LoadError {
    pub file: PathBuf,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// A suite as read from its file.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    pub file: PathBuf,
    pub suite: Suite,
}

/// Every `*.yaml` file of the suites folder, in name order.
pub fn discover(settings: &Settings) -> Result<Vec<PathBuf>, LoadError> {
    let dir = &settings.suites_dir;
    let entries = std::fs::read_dir(dir)
        .map_err(|error| LoadError { file: dir.clone(), message: format!("cannot read the suites folder: {error}") })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

pub fn load(file: &Path, settings: &Settings) -> Result<LoadedSuite, LoadError> {
    let fail = |message: String| LoadError { file: file.to_path_buf(), message };
    let text = std::fs::read_to_string(file).map_err(|error| fail(format!("cannot read: {error}")))?;
    let suite = parse(&text).map_err(fail)?;
    validate(&suite, settings).map_err(fail)?;
    Ok(LoadedSuite { file: file.to_path_buf(), suite })
}

pub fn parse(text: &str) -> Result<Suite, String> {
    serde_saphyr::from_str::<Suite>(text).map_err(|error| format!("invalid suite: {error}"))
}

fn validate(suite: &Suite, settings: &Settings) -> Result<(), String> {
    if suite.fixture.is_empty() {
        return Err("the suite names no fixture".into());
    }
    for name in &suite.fixture {
        let fixture = settings.fixture_dir(name);
        if !fixture.is_dir() {
            return Err(format!("fixture '{name}' not found: no folder {}", fixture.display()));
        }
    }
    let mut names = HashSet::new();
    for test in &suite.tests {
        if !names.insert(test.name.as_str()) {
            return Err(format!("two tests are named '{}'", test.name));
        }
        if test.steps.is_empty() {
            return Err(format!("test '{}' has no steps", test.name));
        }
        check_step_order(&test.name, &test.steps)?;
        check_disruption(test)?;
    }
    Ok(())
}

/// A test that drains or stops nodes disturbs every suite on the cluster: it
/// must say so, so that it never runs beside another test.
fn check_disruption(test: &TestSpec) -> Result<(), String> {
    let touches_nodes = test.steps.iter().any(|step| {
        matches!(step, Step::Drain { .. } | Step::StopNode { .. } | Step::ExpectNodeDown { .. } | Step::StartNodes)
    });
    if touches_nodes && test.disrupts != Disruption::Nodes {
        return Err(format!("test '{}' drains or stops nodes: it must say `disrupts: nodes`", test.name));
    }
    Ok(())
}

/// Steps that compare with an earlier observation need that observation.
fn check_step_order(test: &str, steps: &[Step]) -> Result<(), String> {
    let mut remembered = false;
    let mut leader_known = false;
    let mut signalled = HashSet::new();
    let mut written = HashSet::new();
    for (index, step) in steps.iter().enumerate() {
        match step {
            Step::Write { key, .. } => {
                written.insert(key.as_str());
            }
            Step::Read { key, unchanged: true, .. } if !written.contains(key.as_str()) => {
                return Err(format!(
                    "test '{test}', step {}: a read of {key} `unchanged` needs an earlier write of {key}",
                    index + 1
                ));
            }
            Step::RememberStorage => remembered = true,
            Step::RememberLeader { .. } => leader_known = true,
            step if !leader_known && step.targets_leader() => {
                return Err(format!(
                    "test '{test}', step {}: `member: leader` needs an earlier remember-leader",
                    index + 1
                ));
            }
            Step::ExpectSameStorage if !remembered => {
                return Err(format!(
                    "test '{test}', step {}: expect-same-storage needs an earlier remember-storage",
                    index + 1
                ));
            }
            Step::Signal { member, .. } => {
                signalled.insert(*member);
            }
            Step::ExpectRestart { member, .. } if !signalled.contains(member) => {
                return Err(format!(
                    "test '{test}', step {}: expect-restart of member {member} needs an earlier signal to it",
                    index + 1
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::model::{Disruption, ProcessSignal, SystemKind};

    const MINIMAL: &str = r#"
name: zk
fixture: zookeeper
system: zookeeper
params: {statefulset: zk, container: zookeeper, client-port: 2181, ready-timeout: 5m}
tests:
  - name: sanity
    steps:
      - write: {member: 0, key: /a, value: b}
      - read: {member: 1, key: /a, expect: b, within: 60s}
  - name: liveness
    disrupts: nodes
    steps:
      - signal: {member: 1, signal: STOP}
      - expect-restart: {member: 1}
"#;

    #[test]
    fn parses_a_suite_with_steps_and_durations() {
        let suite = parse(MINIMAL).unwrap();
        assert_eq!(suite.system, SystemKind::Zookeeper);
        assert_eq!(suite.cluster, "default");
        assert_eq!(suite.params.ready_timeout().as_secs(), 300);
        assert_eq!(suite.tests[1].disrupts, Disruption::Nodes);
        match &suite.tests[0].steps[1] {
            Step::Read { member, within, .. } => {
                assert_eq!(*member, 1);
                assert_eq!(within.unwrap().as_secs(), 60);
            }
            other => panic!("expected a read, got {other:?}"),
        }
        assert!(matches!(suite.tests[1].steps[0], Step::Signal { signal: ProcessSignal::Stop, .. }));
    }

    #[test]
    fn an_unknown_step_is_named() {
        let text = MINIMAL.replace("- write:", "- scribble:");
        let error = parse(&text).unwrap_err();
        assert!(error.contains("scribble"), "{error}");
    }

    #[test]
    fn the_repository_suites_parse() {
        for file in ["suites/zookeeper.yaml", "suites/raftkeeper.yaml"] {
            let text = std::fs::read_to_string(file).unwrap();
            parse(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
        }
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        let error = parse("name: [unclosed").unwrap_err();
        assert!(error.starts_with("invalid suite"), "{error}");
    }

    #[test]
    fn a_node_fault_in_a_test_not_marked_disruptive_is_rejected() {
        let suite =
            parse(&MINIMAL.replace("      - write: {member: 0, key: /a, value: b}", "      - stop-node: {member: 0}"))
                .unwrap();
        let error = check_disruption(&suite.tests[0]).unwrap_err();
        assert!(error.contains("disrupts: nodes"), "{error}");
        assert!(check_disruption(&suite.tests[1]).is_ok());
    }

    #[test]
    fn an_unchanged_read_of_a_key_never_written_is_rejected() {
        let suite = parse(&MINIMAL.replace("expect: b, within: 60s", "expect: b, unchanged: true")).unwrap();
        assert!(check_step_order("sanity", &suite.tests[0].steps).is_ok());
        let suite =
            parse(&MINIMAL.replace("key: /a, expect: b, within: 60s", "key: /z, expect: b, unchanged: true")).unwrap();
        let error = check_step_order("sanity", &suite.tests[0].steps).unwrap_err();
        assert!(error.contains("needs an earlier write of /z"), "{error}");
    }

    #[test]
    fn a_comparison_without_its_observation_is_rejected() {
        let suite = parse(&MINIMAL.replace("- signal: {member: 1, signal: STOP}", "- expect-spread")).unwrap();
        let error = check_step_order(&suite.tests[1].name, &suite.tests[1].steps).unwrap_err();
        assert!(error.contains("needs an earlier signal"), "{error}");
    }
}
