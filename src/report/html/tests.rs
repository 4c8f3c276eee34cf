//! The page rendered from a stored history: `testdata/history.jsonl` is a
//! Kafka node-stop test of a real run, its sends thinned to one in two
//! hundred, a few of them made unknown, the watches' observations added,
//! and step 9 failed.

use super::*;
use std::time::Duration;

const HISTORY: &str = "src/report/testdata/history.jsonl";

fn result(test: &str, outcome: Outcome, history: Option<&str>) -> TestResult {
    TestResult {
        suite: "kafka[kafka@emptydir]".into(),
        suite_file: "suites/kafka.yaml".into(),
        test: test.into(),
        outcome,
        duration: Duration::from_secs(100),
        waited: Duration::from_secs(60),
        diagnostics: None,
        properties: history
            .map(|path| vec![("history".to_string(), path.to_string()), ("floor-seconds".into(), "12.5".into())])
            .unwrap_or_default(),
    }
}

fn run() -> Vec<TestResult> {
    vec![
        result(
            "node-stopped-during-traffic",
            Outcome::Failed("step 9/12 (wait until rolled out): timed out".into()),
            Some(HISTORY),
        ),
        result(
            "round-trip",
            Outcome::PassedWithFindings("lost m-000001 <acked>".into()),
            Some("no/such/history.jsonl"),
        ),
        result("scale", Outcome::Skipped("external image x cannot be had".into()), None),
    ]
}

fn sections(page: &str) -> Vec<&str> {
    page.split("<section ").skip(1).map(|rest| &rest[..rest.find("</section>").unwrap()]).collect()
}

#[test]
fn one_section_per_test_each_with_its_outcome() {
    let page = render("r1", &run(), Path::new("target/stateproof"));
    assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
    let sections = sections(&page);
    assert_eq!(sections.len(), 3);
    assert!(sections[0].starts_with("id=\"t0\" class=\"test failed\""), "{}", sections[0]);
    assert!(sections[1].contains("lost m-000001 &lt;acked&gt;"), "text is escaped");
    assert!(sections[1].contains("No timeline: opening no/such/history.jsonl"), "{}", sections[1]);
    assert!(sections[2].contains("No history"));
    assert!(page.contains("0 passed, 1 with FINDINGS, 1 failed, 1 SKIPPED"), "the counts");
    assert!(page.contains("<a href=\"#t2\">scale</a>") && page.contains("skipped</span>: external image x"));
}

#[test]
fn a_stored_history_becomes_a_timeline_with_its_failed_step_marked() {
    let page = render("r1", &run(), Path::new("target/stateproof"));
    let failed = sections(&page)[0];
    assert_eq!(failed.matches("<svg").count(), 2, "the lanes, and the traffic under them");
    let red = format!("fill=\"#{:02X}{:02X}{:02X}\"", plot::FAILED.0, plot::FAILED.1, plot::FAILED.2);
    let red_bars = failed.lines().filter(|line| line.starts_with("<rect") && line.contains(&red)).count();
    assert_eq!(red_bars, 1, "the failed step's bar, and only it");
    let failed_rows: Vec<&str> = failed.lines().filter(|line| line.starts_with("<tr class=\"failed\"")).collect();
    assert_eq!(failed_rows.len(), 2, "the step, and its error: {failed_rows:?}");
    assert!(failed_rows[0].contains("wait until rolled out and healthy"));
    assert!(failed_rows[1].contains("kafka-1 is not ready"));
    for label in [
        "fault: node sp-dev-worker2 stopped",
        "node sp-dev-worker2",
        "pod kafka-1",
        "NotReady",
        "restarted (1 restarts)",
    ] {
        assert!(failed.contains(label), "{label}");
    }
    assert!(failed.contains("max-ack-gap: 31.2 s"), "measured figures are listed");
    assert!(failed.contains("floor: 12.5 s"), "figures of the result too");
}

#[test]
fn nothing_is_fetched_from_the_network() {
    let page = render("r1", &run(), Path::new("target/stateproof"));
    let outside = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!outside.contains("http://") && !outside.contains("https://"), "only the SVG namespace names a URL");
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("<img"));
}

#[test]
fn thousands_of_sends_are_drawn_per_second_not_per_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let mut history = History::default();
    history.push(crate::history::Event::Step(crate::history::StepEvent {
        index: 1,
        step: "produce".into(),
        at: 0,
        phase: crate::history::Phase::Started,
        error: None,
    }));
    let acked_by = crate::history::AckedBy::Quorum;
    history.push(crate::history::Event::Producer(crate::history::Producer {
        producer: 1,
        topic: "t".into(),
        acked_by,
        at: 0,
    }));
    let producer = 1;
    for n in 0..10_000u64 {
        let position = crate::history::Position { partition: 0, offset: crate::history::Offset::Sequence(n as i64) };
        let at = n as i64 * 5;
        let outcome = crate::history::SendOutcome::Acked { position };
        let id = crate::history::MessageId::numbered(n);
        history.record_send(producer, crate::history::SendReport { id, sent_at: at, done_at: at + 20, outcome });
    }
    history.write_jsonl(&path).unwrap();
    let mut busy = result("busy", Outcome::Passed, None);
    busy.properties.push(("history".into(), path.display().to_string()));
    let page = render("r1", &[busy], dir.path());
    let elements = page.matches('<').count();
    assert!(elements < 2_000, "{elements} elements for 10,000 sends over 50 s");
}

#[test]
fn diagnostics_are_linked_relative_to_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let diagnostics = dir.path().join("r1/kafka[kafka@emptydir]/scale");
    std::fs::create_dir_all(diagnostics.join("logs")).unwrap();
    std::fs::write(diagnostics.join("events.yaml"), "").unwrap();
    std::fs::write(diagnostics.join("logs/kafka-0.server.log"), "").unwrap();
    let mut failed = result("scale", Outcome::Failed("no".into()), None);
    failed.diagnostics = Some(diagnostics);
    let page = render("r1", &[failed], dir.path());
    assert!(page.contains("<a href=\"r1/kafka%5Bkafka%40emptydir%5D/scale/events.yaml\">events.yaml</a>"), "{page}");
    assert!(page.contains(
        "<a href=\"r1/kafka%5Bkafka%40emptydir%5D/scale/logs/kafka-0.server.log\">logs/kafka-0.server.log</a>"
    ));
}

#[test]
fn links_climb_out_of_the_page_folder_when_they_must() {
    assert_eq!(href(Path::new("target/stateproof"), Path::new("target/other/a b.txt")), "../other/a%20b.txt");
    assert_eq!(href(Path::new("/r"), Path::new("/r/x/history.jsonl")), "x/history.jsonl");
    assert_eq!(href(Path::new("."), Path::new("target/x")), "target/x");
}

/// Renders the reports of a stored run again, for a person to look at:
/// `STATEPROOF_STORED_JUNIT=<checkout>/target/stateproof/junit.xml cargo test
/// --lib stored_run -- --ignored` writes `junit.xml` and `report.html` into
/// `STATEPROOF_RENDER_TO` (default: `target/report-preview` of this checkout).
#[test]
#[ignore = "needs a stored run: STATEPROOF_STORED_JUNIT"]
fn a_stored_run_rendered_again() {
    let junit = std::path::absolute(std::env::var("STATEPROOF_STORED_JUNIT").unwrap()).unwrap();
    let out = std::path::absolute(std::env::var("STATEPROOF_RENDER_TO").unwrap_or("target/report-preview".into()));
    let out = out.unwrap();
    let report = quick_junit::Report::deserialize_from_str(&std::fs::read_to_string(&junit).unwrap()).unwrap();
    let results: Vec<TestResult> = report.test_suites.iter().flat_map(stored_results).collect();
    // The paths a run records are relative to the checkout it ran in.
    let checkout = junit.ancestors().find(|dir| dir.join("target").is_dir() && dir.join("suites").is_dir()).unwrap();
    std::env::set_current_dir(checkout).unwrap();
    let run = report.name.as_ref().map_or("stored", |name| name.as_str().trim_start_matches("stateproof "));
    crate::report::write_files(&out.join("junit.xml"), &out.join("report.html"), run, &results);
}

/// A testsuite's results as a run recorded them: the facts as properties
/// (older files) or as `name: value` lines of the system-out.
fn stored_results(suite: &quick_junit::TestSuite) -> Vec<TestResult> {
    use quick_junit::TestCaseStatus;
    let property = suite.properties.iter().find(|property| property.name.as_str() == "file").map(|p| &p.value);
    let file = suite.extra.get("file").or(property).map(|file| file.as_str().to_string());
    let file = file.unwrap_or_else(|| format!("suites/{}.yaml", suite.name.as_str()));
    suite
        .test_cases
        .iter()
        .map(|case| {
            let out = case.system_out.as_ref().map_or("", |out| out.as_str());
            let (facts, finding) = out.split_once("FINDING (").unwrap_or((out, ""));
            let mut facts: Vec<(String, String)> = case
                .properties
                .iter()
                .map(|property| (property.name.as_str().to_string(), property.value.as_str().to_string()))
                .chain(facts.lines().filter_map(|line| line.split_once(": ")).map(|(n, v)| (n.into(), v.into())))
                .collect();
            let take = |facts: &mut Vec<(String, String)>, name: &str| {
                facts.iter().position(|(key, _)| key == name).map(|index| facts.remove(index).1)
            };
            let waited = take(&mut facts, "waited-on-cluster-seconds").and_then(|value| value.parse().ok());
            let diagnostics = take(&mut facts, "diagnostics").map(PathBuf::from);
            let headline = take(&mut facts, "finding");
            let outcome = match &case.status {
                TestCaseStatus::Success { .. } => match headline {
                    Some(headline) => {
                        let whole = finding.lines().skip(1).collect::<Vec<_>>().join("\n");
                        Outcome::PassedWithFindings(if whole.is_empty() { headline } else { whole })
                    }
                    None => Outcome::Passed,
                },
                TestCaseStatus::NonSuccess { description, message, .. } => {
                    let text = description.as_ref().or(message.as_ref()).map_or("", |text| text.as_str());
                    Outcome::Failed(text.split("\n\ndiagnostics: ").next().unwrap_or_default().to_string())
                }
                TestCaseStatus::Skipped { message, .. } => {
                    Outcome::Skipped(message.as_ref().map_or("", |text| text.as_str()).to_string())
                }
            };
            TestResult {
                suite: suite.name.as_str().to_string(),
                suite_file: file.clone().into(),
                test: case.name.as_str().to_string(),
                outcome,
                duration: case.time.unwrap_or_default(),
                waited: Duration::from_secs_f64(waited.unwrap_or(0.0)),
                diagnostics,
                properties: facts,
            }
        })
        .collect()
}
