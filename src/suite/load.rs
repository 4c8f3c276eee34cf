//! Finding suite files and reading them. A file that cannot be read, parsed
//! or validated becomes a [`LoadError`] naming the file and the cause, which
//! the harness reports as a failed test rather than aborting the run.

use super::fixture::{self, Fixture};
use super::model::{Disruption, Expectation, MemberRef, OutputExpectation, Step, StepRef, Suite, TestSpec};
use super::needs::Capability;
use super::variant::Variant;
use crate::settings::Settings;
use crate::systems::SystemKind;
use std::collections::{BTreeSet, HashSet};
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

/// A suite as read from its file, with its fixture read and checked.
#[derive(Debug, Clone)]
pub struct LoadedSuite {
    pub file: PathBuf,
    pub suite: Suite,
    pub fixture: Fixture,
    /// The fixture variant it runs against (the self-check's), if any.
    pub variant: Option<Variant>,
}

impl LoadedSuite {
    /// The suite's name in reports: `name`, or `name@variant` for a variant.
    pub fn label(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}[{}]", self.suite.name, variant.label()),
            None => self.suite.name.clone(),
        }
    }
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

/// Reads, parses and checks a suite file: its system and parameters, its
/// fixture, whether its system and cluster offer what its steps need, and
/// the order and references of its steps.
pub fn load(file: &Path, settings: &Settings, variant: Option<&Variant>) -> Result<LoadedSuite, LoadError> {
    let fail = |message: String| LoadError { file: file.to_path_buf(), message };
    let text = std::fs::read_to_string(file).map_err(|error| fail(format!("cannot read: {error}")))?;
    let suite = parse(&text).map_err(fail)?;
    let fixture = validate(&suite, settings, variant).map_err(fail)?;
    Ok(LoadedSuite { file: file.to_path_buf(), suite, fixture, variant: variant.cloned() })
}

pub fn parse(text: &str) -> Result<Suite, String> {
    serde_saphyr::from_str::<Suite>(text).map_err(|error| format!("invalid suite: {error}"))
}

fn validate(suite: &Suite, settings: &Settings, variant: Option<&Variant>) -> Result<Fixture, String> {
    let system = SystemKind::named(&suite.system)
        .ok_or_else(|| format!("unknown system '{}' (known: {})", suite.system, SystemKind::names().join(", ")))?;
    (system.check_params)(&suite.params).map_err(|error| format!("{error:#}"))?;
    if suite.fixture.is_empty() {
        return Err("the suite names no fixture".into());
    }
    for name in &suite.fixture {
        let folder = name.split('@').next().unwrap_or_default();
        let fixture = settings.fixture_dir(folder);
        if !fixture.is_dir() {
            return Err(format!("fixture '{folder}' not found: no folder {}", fixture.display()));
        }
    }
    let fixture = fixture::read(settings, &suite.fixture, variant).map_err(|error| format!("{error:#}"))?;
    let offered = Offered { system: system.offers(), cluster: settings.cluster.offers(), settings };
    if fixture.local_volumes.is_some() && !offered.cluster.contains(&Capability::LocalVolumes) {
        return Err(format!("its fixture asks for local volumes, which {} cannot make", settings.cluster.describe()));
    }
    let mut names = HashSet::new();
    for test in &suite.tests {
        if !names.insert(test.name.as_str()) {
            return Err(format!("two tests are named '{}'", test.name));
        }
        if test.steps.is_empty() {
            return Err(format!("test '{}' has no steps", test.name));
        }
        offered.check(suite, test)?;
        if suite.sampling.is_none() && test.steps.iter().any(|step| matches!(step, Step::ExpectAutoscaling(_))) {
            return Err(format!(
                "test '{}': expect-autoscaling judges samples, and the suite sets no `sampling`",
                test.name
            ));
        }
        check_step_order(&test.name, &test.steps)?;
        check_disruption(test)?;
        check_expectation(test)?;
        check_patterns(test)?;
    }
    Ok(fixture)
}

/// What the suite's system and the chosen cluster offer.
struct Offered<'a> {
    system: BTreeSet<Capability>,
    cluster: BTreeSet<Capability>,
    settings: &'a Settings,
}

impl Offered<'_> {
    fn check(&self, suite: &Suite, test: &TestSpec) -> Result<(), String> {
        for (index, step) in test.steps.iter().enumerate() {
            for need in step.needs() {
                let (offers, who) = if need.of_cluster() {
                    (&self.cluster, self.settings.cluster.describe())
                } else {
                    (&self.system, format!("the {} adapter", suite.system))
                };
                if !offers.contains(&need) {
                    return Err(format!(
                        "test '{}', step {} ({}): needs {need}, which {who} does not offer",
                        test.name,
                        index + 1,
                        step.kind()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A test that drains or stops nodes disturbs every suite on the cluster: it
/// must say so, so that it never runs beside another test.
fn check_disruption(test: &TestSpec) -> Result<(), String> {
    if test.steps.iter().any(Step::touches_nodes) && test.disrupts != Disruption::Nodes {
        return Err(format!("test '{}' drains or stops nodes: it must say `disrupts: nodes`", test.name));
    }
    Ok(())
}

/// An expected failure names one step of the test and a valid pattern.
fn check_expectation(test: &TestSpec) -> Result<(), String> {
    let Expectation::Failure(expected) = &test.expect else { return Ok(()) };
    expected_step(test, &expected.step)?;
    regex::Regex::new(&expected.matches)
        .map(drop)
        .map_err(|error| format!("test '{}': `expect.failure.matches` is not a regular expression: {error}", test.name))
}

/// The 0-based index of the step an expected failure names.
pub fn expected_step(test: &TestSpec, step: &StepRef) -> Result<usize, String> {
    match step {
        StepRef::Number(number) if (1..=test.steps.len()).contains(number) => Ok(number - 1),
        StepRef::Number(number) => Err(format!(
            "test '{}': expected failure of step {number}, but it has {} steps",
            test.name,
            test.steps.len()
        )),
        StepRef::Kind(kind) => {
            let found: Vec<usize> = (0..test.steps.len()).filter(|index| test.steps[*index].kind() == kind).collect();
            match found[..] {
                [index] => Ok(index),
                [] => Err(format!("test '{}': expected failure of a `{kind}` step, but it has none", test.name)),
                _ => Err(format!(
                    "test '{}': it has {} `{kind}` steps; name the one expected to fail by its number",
                    test.name,
                    found.len()
                )),
            }
        }
    }
}

fn check_patterns(test: &TestSpec) -> Result<(), String> {
    for (index, step) in test.steps.iter().enumerate() {
        if let Step::Exec { expect: Some(OutputExpectation::Matches(pattern)), .. } = step {
            regex::Regex::new(pattern).map_err(|error| {
                format!("test '{}', step {}: not a regular expression: {error}", test.name, index + 1)
            })?;
        }
    }
    Ok(())
}

/// Steps that compare with an earlier observation need that observation.
fn check_step_order(test: &str, steps: &[Step]) -> Result<(), String> {
    let mut remembered = false;
    let mut leader_known = false;
    let mut traffic_stopped = false;
    let mut passes = 0;
    let mut signalled = HashSet::new();
    let mut written = HashSet::new();
    for (index, step) in steps.iter().enumerate() {
        let refuse = |why: String| Err(format!("test '{test}', step {} ({}): {why}", index + 1, step.kind()));
        match step {
            Step::Write { key, .. } => {
                written.insert(key.as_str());
            }
            Step::Read { key, unchanged: true, .. } if !written.contains(key.as_str()) => {
                return refuse(format!("a read of {key} `unchanged` needs an earlier write of {key}"));
            }
            Step::RememberStorage => remembered = true,
            Step::RememberLeader { .. } => leader_known = true,
            Step::StopTraffic => traffic_stopped = true,
            Step::Consume { .. } => passes += 1,
            step if !leader_known && step.target() == Some(MemberRef::Leader) => {
                return refuse("`member: leader` needs an earlier remember-leader".into());
            }
            Step::ExpectSameStorage if !remembered => {
                return refuse("it needs an earlier remember-storage".into());
            }
            Step::ExpectAvailable { .. } if !traffic_stopped => {
                return refuse("it judges the traffic an earlier stop-traffic ended".into());
            }
            Step::CheckDelivery { pass, .. } if passes == 0 || pass.is_some_and(|pass| pass == 0 || pass > passes) => {
                return refuse(format!(
                    "it judges a read pass, and the {passes} consume step(s) before it make none such"
                ));
            }
            Step::Signal { member, .. } => {
                signalled.insert(*member);
            }
            Step::ExpectRestart { member, .. } if !signalled.contains(member) => {
                return refuse(format!("expect-restart of member {member} needs an earlier signal to it"));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::model::ProcessSignal;

    const MINIMAL: &str = r#"
name: zk
fixture: zookeeper
system: zookeeper
members: {statefulset: zk, container: zookeeper}
params: {client-port: 2181}
defaults: {ready-timeout: 5m}
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

    fn settings() -> Settings {
        Settings::from_env().unwrap()
    }

    fn refusal(text: &str) -> String {
        validate(&parse(text).unwrap(), &settings(), None).unwrap_err()
    }

    #[test]
    fn parses_a_suite_with_steps_and_durations() {
        let suite = parse(MINIMAL).unwrap();
        assert_eq!(suite.system, "zookeeper");
        assert_eq!(suite.cluster, "default");
        assert_eq!(suite.defaults.ready_timeout.as_secs(), 300);
        assert_eq!(suite.defaults.client_within.as_secs(), 60, "the rest keep their built-in defaults");
        assert_eq!(suite.tests[1].disrupts, Disruption::Nodes);
        match &suite.tests[0].steps[1] {
            Step::Read { member, within, .. } => {
                assert_eq!(*member, 1);
                assert_eq!(within.unwrap().as_secs(), 60);
            }
            other => panic!("expected a read, got {other:?}"),
        }
        assert!(matches!(suite.tests[1].steps[0], Step::Signal { signal: ProcessSignal::Stop, .. }));
        assert!(validate(&suite, &settings(), None).is_ok());
    }

    #[test]
    fn an_unknown_step_is_named() {
        let text = MINIMAL.replace("- write:", "- scribble:");
        let error = parse(&text).unwrap_err();
        assert!(error.contains("scribble"), "{error}");
    }

    #[test]
    fn every_suite_of_the_repository_loads() {
        let settings = settings();
        let files = discover(&settings).unwrap();
        let mut on_disk: Vec<_> = std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "yaml"))
            .collect();
        on_disk.sort();
        let mut found: Vec<_> = files.iter().map(|file| std::fs::canonicalize(file).unwrap()).collect();
        found.sort();
        let on_disk: Vec<_> = on_disk.iter().map(|file| std::fs::canonicalize(file).unwrap()).collect();
        assert_eq!(found, on_disk, "every file under suites/ is a suite");
        for file in files {
            load(&file, &settings, None).unwrap_or_else(|error| panic!("{error}"));
        }
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        let error = parse("name: [unclosed").unwrap_err();
        assert!(error.starts_with("invalid suite"), "{error}");
    }

    #[test]
    fn an_unknown_system_or_parameter_is_refused() {
        let error = refusal(&MINIMAL.replace("system: zookeeper", "system: zookeper"));
        assert!(error.contains("unknown system 'zookeper'") && error.contains("kafka"), "{error}");
        let error = refusal(&MINIMAL.replace("client-port: 2181", "client-port: 2181, front: 1"));
        assert!(error.contains("front"), "{error}");
    }

    #[test]
    fn a_step_the_system_does_not_offer_is_refused_at_load_naming_it() {
        let error = refusal(
            &MINIMAL
                .replace("- read: {member: 1, key: /a, expect: b, within: 60s}", "- produce: {topic: t, messages: 1}"),
        );
        assert_eq!(
            error,
            "test 'sanity', step 2 (produce): needs a log to produce to and consume from, which the zookeeper \
             adapter does not offer"
        );
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

    const LOG: &str = r#"
name: k
fixture: [zookeeper, kafka]
system: kafka
members: {statefulset: kafka, container: kafka}
params: {client-port: 9092}
tests:
  - name: t
    steps:
      - produce: {topic: t, messages: 1, via: 0}
      - consume: {topic: t, via: 1}
      - check-delivery: {pass: 1}
"#;

    #[test]
    fn a_delivery_check_needs_the_pass_it_judges() {
        assert!(validate(&parse(LOG).unwrap(), &settings(), None).is_ok());
        let error = refusal(&LOG.replace("pass: 1", "pass: 2"));
        assert!(error.contains("step 3 (check-delivery)") && error.contains("1 consume step"), "{error}");
        let error = refusal(&LOG.replace("      - consume: {topic: t, via: 1}\n", ""));
        assert!(error.contains("0 consume step"), "{error}");
    }

    #[test]
    fn an_expected_failure_names_one_step_and_a_valid_pattern() {
        let expecting = |step: &str, pattern: &str| {
            LOG.replace(
                "    steps:\n",
                &format!("    expect: {{failure: {{step: {step}, matches: '{pattern}'}}}}\n    steps:\n"),
            )
        };
        assert!(validate(&parse(&expecting("consume", "lost")).unwrap(), &settings(), None).is_ok());
        assert!(validate(&parse(&expecting("3", "lost")).unwrap(), &settings(), None).is_ok());
        assert!(refusal(&expecting("4", "x")).contains("it has 3 steps"));
        assert!(refusal(&expecting("wait-ready", "x")).contains("has none"));
        assert!(refusal(&expecting("consume", "(")).contains("not a regular expression"));
        let bare = LOG.replace("    steps:\n", "    expect: failure\n    steps:\n");
        assert!(parse(&bare).is_err(), "a bare `expect: failure` names nothing");
    }
}
