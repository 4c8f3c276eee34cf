//! What a test's run comes to, as pure functions: its steps' outcome
//! against its expectation (an expected failure names the step that must
//! fail and how its message reads), the undoing of its faults, and, in the
//! self-check, the failure a fixture variant requires.

use super::steps::StepFailure;
use crate::report::Outcome;
use crate::suite::{Expectation, TestSpec, expected_step};
use anyhow::Result;
use futures::FutureExt;
use regex::Regex;

/// The test's outcome from what its steps and its cleanup came to.
pub fn judge(spec: &TestSpec, steps: Result<(), StepFailure>, cleanup: Result<()>, findings: Vec<String>) -> Outcome {
    let outcome = match (&spec.expect, steps) {
        (Expectation::Pass, Ok(())) if findings.is_empty() => Outcome::Passed,
        (Expectation::Pass, Ok(())) => Outcome::PassedWithFindings(findings.join("\n")),
        (Expectation::Pass, Err(failure)) => Outcome::Failed(format!("{:#}", failure.error)),
        (Expectation::Failure(expected), steps) => {
            let target = expected_step(spec, &expected.step).unwrap_or(usize::MAX);
            let wanted =
                format!("step {} ({}) to fail matching /{}/", target + 1, kind_of(spec, target), expected.matches);
            match steps {
                Ok(()) => Outcome::Failed(format!(
                    "expected {wanted} (a known defect of the manifest), but every step passed: the defect did not show"
                )),
                Err(failure) => {
                    let message = format!("{:#}", failure.error);
                    let matches = Regex::new(&expected.matches).is_ok_and(|pattern| pattern.is_match(&message));
                    match (failure.index == target, matches) {
                        (true, true) => Outcome::PassedWithFindings(match &expected.defect {
                            Some(defect) => format!("failed as expected, the known defect: {defect}: {message}"),
                            None => format!("failed as expected: {message}"),
                        }),
                        (true, false) => {
                            Outcome::Failed(format!("expected {wanted}; it failed, but for another reason: {message}"))
                        }
                        (false, _) => Outcome::Failed(format!("expected {wanted}; instead: {message}")),
                    }
                }
            }
        }
    };
    with_cleanup(outcome, cleanup)
}

/// A test that failed before its first step (its suite's setup, a fixture
/// never ready): an expected failure says what it expected instead.
pub fn failed_before_steps(spec: &TestSpec, why: String) -> Outcome {
    match &spec.expect {
        Expectation::Pass => Outcome::Failed(why),
        Expectation::Failure(expected) => {
            let target = expected_step(spec, &expected.step).unwrap_or(usize::MAX);
            Outcome::Failed(format!(
                "expected step {} ({}) to fail matching /{}/; instead, before any step: {why}",
                target + 1,
                kind_of(spec, target),
                expected.matches
            ))
        }
    }
}

/// A test whose faults could not all be undone fails, whatever else it did.
fn with_cleanup(outcome: Outcome, cleanup: Result<()>) -> Outcome {
    let Err(error) = cleanup else { return outcome };
    let undo = format!("undoing the test's faults failed: {error:#}");
    match outcome {
        Outcome::Failed(message) => Outcome::Failed(format!("{message}\nand {undo}")),
        Outcome::Passed | Outcome::PassedWithFindings(_) | Outcome::Skipped(_) => Outcome::Failed(undo),
    }
}

fn kind_of(spec: &TestSpec, index: usize) -> &'static str {
    spec.steps.get(index).map_or("?", |step| step.kind())
}

/// In the self-check, the outcome against what the fixture variant
/// requires of this test: a failure matching `required`, or (with none
/// required) the test's own outcome, where a failure matching `allowed` is
/// a consequence of the defect too.
pub fn against_variant(outcome: Outcome, variant: &str, required: Option<&str>, allowed: Option<&str>) -> Outcome {
    let matching = |pattern: Option<&str>, message: &str| {
        pattern.is_some_and(|pattern| Regex::new(pattern).is_ok_and(|pattern| pattern.is_match(message)))
    };
    let Some(required) = required else {
        return match outcome {
            Outcome::Failed(message) if matching(allowed, &message) => {
                Outcome::PassedWithFindings(format!("failed as variant {variant} allows: {message}"))
            }
            Outcome::Failed(message) => {
                Outcome::Failed(format!("variant {variant} requires no failure of this test, yet: {message}"))
            }
            other => other,
        };
    };
    match outcome {
        Outcome::Failed(message) if matching(Some(required), &message) => {
            Outcome::PassedWithFindings(format!("failed as variant {variant} requires: {message}"))
        }
        Outcome::Failed(message) => Outcome::Failed(format!(
            "variant {variant} requires a failure matching /{required}/; the test failed otherwise: {message}"
        )),
        Outcome::Passed | Outcome::PassedWithFindings(_) => Outcome::Failed(format!(
            "variant {variant} requires this test to fail (matching /{required}/), but it passed: \
             the check does not catch the defect"
        )),
        skipped @ Outcome::Skipped(_) => skipped,
    }
}

/// Awaits a test; a panic in it becomes its failure, with the panic's message.
pub async fn unless_panicked<T>(test: impl std::future::Future<Output = T>) -> Result<T, String> {
    std::panic::AssertUnwindSafe(test).catch_unwind().await.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        format!("the harness panicked: {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::load::parse;
    use anyhow::anyhow;

    fn spec(expect: &str) -> TestSpec {
        let text = format!(
            "name: s\nfixture: f\nsystem: pulsar\nmembers: {{statefulset: b, container: b}}\ntests:\n  - name: t\n{expect}    steps:\n      - wait-ready\n      - expect-rolled-out: {{within: 4m}}\n"
        );
        parse(&text).unwrap().tests.remove(0)
    }

    fn failing(index: usize, message: &str) -> Result<(), StepFailure> {
        Err(StepFailure { index, error: anyhow!(message.to_string()) })
    }

    fn expecting() -> TestSpec {
        spec("    expect: {failure: {step: expect-rolled-out, matches: 'bookie-2: Pending, unschedulable'}}\n")
    }

    #[test]
    fn a_plain_test_passes_fails_or_reports_its_findings() {
        assert_eq!(judge(&spec(""), Ok(()), Ok(()), vec![]), Outcome::Passed);
        assert_eq!(
            judge(&spec(""), Ok(()), Ok(()), vec!["lost 2".into()]),
            Outcome::PassedWithFindings("lost 2".into())
        );
        assert_eq!(judge(&spec(""), failing(0, "boom"), Ok(()), vec![]), Outcome::Failed("boom".into()));
    }

    #[test]
    fn an_expected_failure_passes_only_for_the_named_step_and_message() {
        let spec = expecting();
        let expected = judge(&spec, failing(1, "x\nbookie-2: Pending, unschedulable: 0/5 nodes"), Ok(()), vec![]);
        assert!(matches!(&expected, Outcome::PassedWithFindings(text) if text.starts_with("failed as expected")));
    }

    #[test]
    fn an_expected_failure_names_its_defect_when_it_shows() {
        let spec = spec(
            "    expect: {failure: {step: expect-rolled-out, matches: 'Pending', defect: 'bookie-2 has no node'}}\n",
        );
        let outcome = judge(&spec, failing(1, "bookie-2: Pending"), Ok(()), vec![]);
        assert_eq!(
            outcome,
            Outcome::PassedWithFindings(
                "failed as expected, the known defect: bookie-2 has no node: bookie-2: Pending".into()
            )
        );
    }

    #[test]
    fn an_expected_failure_fails_when_another_step_fails() {
        let outcome = judge(&expecting(), failing(0, "StatefulSet bokie not found"), Ok(()), vec![]);
        let Outcome::Failed(text) = outcome else { panic!("{outcome:?}") };
        assert!(
            text.contains("expected step 2 (expect-rolled-out) to fail matching") && text.contains("bokie"),
            "{text}"
        );
    }

    #[test]
    fn an_expected_failure_fails_when_the_step_fails_for_another_reason() {
        let outcome = judge(&expecting(), failing(1, "the API server answered 500"), Ok(()), vec![]);
        let Outcome::Failed(text) = outcome else { panic!("{outcome:?}") };
        assert!(text.contains("for another reason: the API server answered 500"), "{text}");
    }

    #[test]
    fn an_expected_failure_fails_when_the_suite_cannot_be_set_up_saying_what_it_expected() {
        let why = "suite setup failed: the fixture has no StatefulSet bookie to deploy with 3 replicas";
        let outcome = failed_before_steps(&expecting(), why.into());
        let Outcome::Failed(text) = outcome else { panic!("{outcome:?}") };
        assert!(text.starts_with("expected step 2 (expect-rolled-out) to fail matching"), "{text}");
        assert!(text.ends_with(&format!("instead, before any step: {why}")), "{text}");
    }

    #[test]
    fn an_expected_failure_fails_when_everything_passes() {
        let outcome = judge(&expecting(), Ok(()), Ok(()), vec![]);
        assert!(matches!(&outcome, Outcome::Failed(text) if text.contains("the defect did not show")), "{outcome:?}");
    }

    #[test]
    fn a_failed_undo_fails_even_a_passed_test_and_adds_to_a_failure() {
        let outcome = judge(&spec(""), Ok(()), Err(anyhow!("node w2 would not start")), vec![]);
        assert_eq!(outcome, Outcome::Failed("undoing the test's faults failed: node w2 would not start".into()));
        let outcome = judge(&spec(""), failing(0, "boom"), Err(anyhow!("uncordon refused")), vec![]);
        assert_eq!(outcome, Outcome::Failed("boom\nand undoing the test's faults failed: uncordon refused".into()));
    }

    #[test]
    fn a_variant_turns_the_required_failure_into_a_pass_and_anything_else_into_a_failure() {
        let required = Some("anti-affinity");
        let caught = against_variant(Outcome::Failed("no required pod anti-affinity".into()), "zk@x", required, None);
        assert!(matches!(caught, Outcome::PassedWithFindings(_)));
        let missed = against_variant(Outcome::Passed, "zk@x", required, None);
        assert!(matches!(&missed, Outcome::Failed(text) if text.contains("does not catch the defect")));
        let other = against_variant(Outcome::Failed("timeout".into()), "zk@x", required, None);
        assert!(matches!(&other, Outcome::Failed(text) if text.contains("failed otherwise: timeout")));
        let collateral = against_variant(Outcome::Failed("timeout".into()), "zk@x", None, None);
        assert!(matches!(&collateral, Outcome::Failed(text) if text.contains("requires no failure")));
        assert_eq!(against_variant(Outcome::Passed, "zk@x", None, Some("Cookie")), Outcome::Passed);
        let allowed = against_variant(Outcome::Failed("Cookie mismatch".into()), "zk@x", None, Some("Cookie"));
        assert!(matches!(allowed, Outcome::PassedWithFindings(_)));
    }

    #[tokio::test]
    async fn a_panicking_test_is_a_failure_with_the_panic_message() {
        let statuses: Vec<u32> = Vec::new();
        let panicking = async { statuses.first().copied().expect("the pod had no status") };
        assert_eq!(unless_panicked(panicking).await, Err("the harness panicked: the pod had no status".to_string()));
        assert_eq!(unless_panicked(async { 7 }).await, Ok(7));
    }
}
