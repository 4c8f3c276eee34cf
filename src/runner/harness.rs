//! The e2e harness behind `cargo test --test e2e` and the `stateproof`
//! binary: standard libtest flags, one trial per test of every suite file.

use super::env::{Readiness, SuiteEnv};
use super::schedule::ClusterGate;
use super::steps::TestRun;
use crate::cluster::{Cluster, local_volumes};
use crate::faults::ledger::{self, Ledger};
use crate::k8s::namespace;
use crate::report::{Outcome, TestResult, diagnostics, junit, summary};
use crate::settings::{ClusterChoice, Settings};
use crate::suite::{self, Expectation, LoadError, LoadedSuite};
use crate::wait;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

/// A suite's environment once its first test has asked for it.
enum EnvState {
    Ready(Box<SuiteEnv>),
    Unavailable(String),
    /// Its last selected test has run and it is torn down.
    Finished,
    /// Setup failed; `env` holds what was created, for teardown.
    Failed {
        why: String,
        diagnostics: Option<PathBuf>,
        env: Option<Box<SuiteEnv>>,
    },
}

struct SuiteSlot {
    loaded: LoadedSuite,
    env: tokio::sync::Mutex<Option<EnvState>>,
    /// Selected tests of the suite not yet run: at zero its environment is
    /// torn down, so that it holds no nodes and volumes while others run.
    remaining: AtomicUsize,
}

/// A cluster brought up on first use, or why it could not be.
type ClusterCell = OnceCell<Result<Arc<Cluster>, String>>;

struct Shared {
    settings: Settings,
    run: String,
    runtime: Runtime,
    clusters: Mutex<HashMap<String, Arc<ClusterCell>>>,
    suites: Vec<SuiteSlot>,
    gate: ClusterGate,
    ledger: Ledger,
    results: Mutex<Vec<TestResult>>,
    running: Mutex<HashMap<String, (String, PathBuf, Instant)>>,
    namespaces: Mutex<Vec<(Arc<Cluster>, String)>>,
}

pub fn main() -> ! {
    let args = Arguments::from_args();
    // kube uses rustls; pin the process-wide provider before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let run = run_id();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(why) => refuse_run(&run, &why),
    };
    let (suites, load_errors) = discover(&settings);
    // The pulsar client's futures are deep; 2 MiB stacks overflow in debug builds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 << 20)
        .build()
        .expect("tokio runtime");
    let shared = Arc::new(Shared {
        settings,
        run,
        runtime,
        clusters: Mutex::default(),
        suites: suites
            .into_iter()
            .map(|loaded| SuiteSlot { loaded, env: tokio::sync::Mutex::new(None), remaining: AtomicUsize::new(0) })
            .collect(),
        gate: ClusterGate::default(),
        ledger: Ledger::default(),
        results: Mutex::default(),
        running: Mutex::default(),
        namespaces: Mutex::default(),
    });
    let mut trials = load_error_trials(&shared, load_errors);
    trials.extend(test_trials(&shared));
    let unmatched_filter = unmatched_filter(&args, &trials);
    count_selected(&shared, &args, &trials);
    if args.list {
        libtest_mimic::run(&args, trials).exit();
    }
    watch_for_interrupt(&shared);
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(filter) = &unmatched_filter {
        let why = format!("no test matches '{filter}'; `cargo test --test e2e -- --list` shows them");
        eprintln!("stateproof: {why}");
        record(&shared, run_failure(&shared.settings.suites_dir, "select", why));
    }
    finish(&shared);
    if unmatched_filter.is_some() {
        std::process::exit(101);
    }
    conclusion.exit()
}

/// A failure of the run as a whole, reported as a test of its own.
fn run_failure(file: &std::path::Path, test: &str, why: String) -> TestResult {
    TestResult {
        suite: "stateproof".into(),
        suite_file: file.to_path_buf(),
        test: test.into(),
        outcome: Outcome::Failed(why),
        duration: Duration::ZERO,
        waited: Duration::ZERO,
        diagnostics: None,
    }
}

/// Settings that cannot be used: say why, write the report, exit non-zero.
fn refuse_run(run: &str, why: &str) -> ! {
    eprintln!("stateproof: {why}");
    let junit = std::env::var("STATEPROOF_JUNIT").unwrap_or_else(|_| "target/stateproof/junit.xml".into());
    let failure = run_failure("environment".as_ref(), "settings", why.into());
    let _ = junit::write(std::path::Path::new(&junit), run, &[failure]);
    std::process::exit(101);
}

fn run_id() -> String {
    format!("{}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"), std::process::id())
}

fn discover(settings: &Settings) -> (Vec<LoadedSuite>, Vec<LoadError>) {
    let files = match suite::discover(settings) {
        Ok(files) => files,
        Err(error) => return (Vec::new(), vec![error]),
    };
    let (mut loaded, mut errors) = (Vec::new(), Vec::new());
    for file in files {
        match suite::load(&file, settings) {
            Ok(suite) => loaded.push(suite),
            Err(error) => errors.push(error),
        }
    }
    (loaded, errors)
}

/// A suite file that cannot be used is a failing trial named after it, so
/// the run fails, the report says why, and the other suites still run.
fn load_error_trials(shared: &Arc<Shared>, errors: Vec<LoadError>) -> Vec<Trial> {
    errors
        .into_iter()
        .map(|error| {
            let stem = error.file.file_stem().map_or("suites".into(), |s| s.to_string_lossy().into_owned());
            let shared = shared.clone();
            Trial::test(format!("{stem}::load"), move || {
                let message = error.to_string();
                record(
                    &shared,
                    TestResult {
                        suite: stem.clone(),
                        suite_file: error.file.clone(),
                        test: "load".into(),
                        outcome: Outcome::Failed(message.clone()),
                        duration: Duration::ZERO,
                        waited: Duration::ZERO,
                        diagnostics: None,
                    },
                );
                Err(Failed::from(message))
            })
        })
        .collect()
}

fn test_trials(shared: &Arc<Shared>) -> Vec<Trial> {
    let mut trials = Vec::new();
    for (suite_index, slot) in shared.suites.iter().enumerate() {
        for (test_index, test) in slot.loaded.suite.tests.iter().enumerate() {
            let shared = shared.clone();
            let name = format!("{}::{}", slot.loaded.suite.name, test.name);
            trials.push(Trial::ignorable_test(name, move || run_trial(&shared, suite_index, test_index)));
        }
    }
    trials
}

/// How many of each suite's tests the filters select.
fn count_selected(shared: &Shared, args: &Arguments, trials: &[Trial]) {
    for trial in trials.iter().filter(|trial| !args.is_filtered_out(trial)) {
        let suite = trial.name().split_once("::").map_or("", |(suite, _)| suite);
        if let Some(slot) = shared.suites.iter().find(|slot| slot.loaded.suite.name == suite) {
            slot.remaining.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn unmatched_filter(args: &Arguments, trials: &[Trial]) -> Option<String> {
    let filter = args.filter.clone()?;
    trials.iter().all(|trial| args.is_filtered_out(trial)).then_some(filter)
}

fn run_trial(shared: &Arc<Shared>, suite_index: usize, test_index: usize) -> Result<Completion, Failed> {
    let slot = &shared.suites[suite_index];
    let spec = &slot.loaded.suite.tests[test_index];
    let label = format!("{}::{}", slot.loaded.suite.name, spec.name);
    shared
        .running
        .lock()
        .unwrap()
        .insert(label.clone(), (slot.loaded.suite.name.clone(), slot.loaded.file.clone(), Instant::now()));
    let ((outcome, started), waited) = shared.runtime.block_on(wait::measured(async {
        let _pass = shared.gate.enter(spec.disrupts).await;
        let mut env = slot.env.lock().await;
        // The test's time starts once it may run, not while it queues.
        let started = Instant::now();
        if env.is_none() {
            *env = Some(setup(shared, &slot.loaded).await);
        }
        let outcome = match env.as_ref().expect("set above") {
            EnvState::Unavailable(reason) => (Outcome::Skipped(reason.clone()), None),
            EnvState::Failed { why, diagnostics, .. } => {
                (Outcome::Failed(format!("suite setup failed: {why}")), diagnostics.clone())
            }
            EnvState::Ready(env) => execute(shared, env, spec).await,
            EnvState::Finished => (Outcome::Failed("the suite's environment was already torn down".into()), None),
        };
        (outcome, started)
    }));
    shared.running.lock().unwrap().remove(&label);
    let (outcome, diagnostics) = outcome;
    record(
        shared,
        TestResult {
            suite: slot.loaded.suite.name.clone(),
            suite_file: slot.loaded.file.clone(),
            test: spec.name.clone(),
            outcome: outcome.clone(),
            duration: started.elapsed(),
            waited,
            diagnostics,
        },
    );
    // Outside the test's time: the suite's last test does not pay for its teardown.
    if slot.remaining.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) == Ok(1) {
        shared.runtime.block_on(async { finish_suite(shared, &mut *slot.env.lock().await).await });
    }
    match outcome {
        Outcome::Passed => Ok(Completion::Completed),
        Outcome::PassedWithFindings(findings) => {
            eprintln!("stateproof: {label} passed with a FINDING:\n{findings}");
            Ok(Completion::Completed)
        }
        Outcome::Skipped(reason) => Ok(Completion::ignored_with(reason)),
        Outcome::Failed(message) => Err(Failed::from(message)),
    }
}

async fn setup(shared: &Shared, loaded: &LoadedSuite) -> EnvState {
    let failed = |why: String| EnvState::Failed { why, diagnostics: None, env: None };
    let cluster = match cluster_for(shared, &loaded.suite.cluster).await {
        Ok(cluster) => cluster,
        Err(why) => return failed(why),
    };
    let env = match SuiteEnv::prepare(loaded, &shared.settings, cluster.clone(), &shared.run).await {
        Ok(Readiness::Ready(env)) => env,
        Ok(Readiness::Unavailable(reason)) => return EnvState::Unavailable(reason),
        Err(error) => return failed(format!("{error:#}")),
    };
    shared.namespaces.lock().unwrap().push((cluster, env.namespace.clone()));
    match env.deploy().await {
        Ok(()) => EnvState::Ready(env),
        Err(error) => {
            let dir = diagnostics_dir(shared, &loaded.suite.name, "setup");
            let diagnostics = diagnostics::capture(&env.cluster.client, &env.namespace, &dir).await;
            EnvState::Failed { why: format!("{error:#}"), diagnostics, env: Some(env) }
        }
    }
}

fn diagnostics_dir(shared: &Shared, suite: &str, test: &str) -> PathBuf {
    shared.settings.report_dir.join(&shared.run).join(suite).join(test)
}

/// One cluster per kind config for the whole run, brought up on first use.
async fn cluster_for(shared: &Shared, config: &str) -> Result<Arc<Cluster>, String> {
    let cell = shared.clusters.lock().unwrap().entry(config.to_string()).or_default().clone();
    cell.get_or_init(|| async {
        let mut settings = shared.settings.clone();
        if let ClusterChoice::Kind { name, .. } = &mut settings.cluster
            && config != "default"
        {
            *name = format!("{name}-{config}");
        }
        let cluster = Cluster::provide(&settings, config).await.map_err(|error| format!("{error:#}"))?;
        reap_orphans(&cluster).await;
        Ok(Arc::new(cluster))
    })
    .await
    .clone()
}

async fn reap_orphans(cluster: &Cluster) {
    if let Ok(orphans) = namespace::orphans(&cluster.client).await {
        for orphan in orphans {
            eprintln!("stateproof: deleting namespace {orphan}, left by an interrupted run");
            let _ = namespace::delete(&cluster.client, &orphan, Duration::ZERO).await;
            let _ = local_volumes::reap(cluster, &orphan).await;
        }
    }
}

const EXPECTED_FAILURE_PASSED: &str =
    "expected to fail (a known defect of the manifest), but every step passed: the defect did not show";

async fn execute(shared: &Shared, env: &SuiteEnv, spec: &suite::TestSpec) -> (Outcome, Option<PathBuf>) {
    let dir = diagnostics_dir(shared, &env.suite.name, &spec.name);
    if env.suite.deploy.wait_ready
        && let Err(error) = env.wait_ready(env.suite.params.ready_timeout()).await
    {
        let diagnostics = diagnostics::capture(&env.cluster.client, &env.namespace, &dir).await;
        return (Outcome::Failed(format!("before the test, the fixture is not ready: {error:#}")), diagnostics);
    }
    let report = TestRun::new(env, &shared.ledger, spec).run(spec, &dir).await;
    if spec.expect == Expectation::Failure {
        return match report.result {
            Err(error) => (Outcome::PassedWithFindings(format!("failed as expected: {error:#}")), report.diagnostics),
            Ok(()) => (Outcome::Failed(EXPECTED_FAILURE_PASSED.into()), report.diagnostics),
        };
    }
    match report.result {
        Ok(()) if report.findings.is_empty() => (Outcome::Passed, None),
        Ok(()) => (Outcome::PassedWithFindings(report.findings.join("\n")), report.diagnostics),
        Err(error) => (Outcome::Failed(format!("{error:#}")), report.diagnostics),
    }
}

fn record(shared: &Shared, result: TestResult) {
    shared.results.lock().unwrap().push(result);
}

/// Tears down, then writes the report and the summary.
fn finish(shared: &Shared) {
    shared.runtime.block_on(teardown(shared));
    let results = shared.results.lock().unwrap().clone();
    write_report(shared, &results);
    if !results.is_empty() {
        eprintln!("\n{}", summary::render(&results));
    }
}

/// Tears a suite's environment down (once): its namespace, cluster-scoped
/// objects and local volumes.
async fn finish_suite(shared: &Shared, state: &mut Option<EnvState>) {
    let env = match state.take() {
        Some(EnvState::Ready(env)) | Some(EnvState::Failed { env: Some(env), .. }) => env,
        other => {
            *state = other;
            return;
        }
    };
    *state = Some(EnvState::Finished);
    if let Err(error) = env.teardown(shared.settings.keep).await {
        eprintln!("stateproof: tearing down {}: {error:#}", env.namespace);
    }
    shared.namespaces.lock().unwrap().retain(|(_, name)| *name != env.namespace);
}

async fn teardown(shared: &Shared) {
    let keep = shared.settings.keep;
    for slot in &shared.suites {
        finish_suite(shared, &mut *slot.env.lock().await).await;
    }
    let clusters: Vec<_> = shared.clusters.lock().unwrap().values().cloned().collect();
    for cell in clusters {
        if let Some(Ok(cluster)) = cell.get()
            && let Err(error) = cluster.finish(keep).await
        {
            eprintln!("stateproof: {error:#}");
        }
    }
}

fn write_report(shared: &Shared, results: &[TestResult]) {
    let path = &shared.settings.junit_path;
    match junit::write(path, &shared.run, results) {
        Ok(()) => eprintln!("stateproof: JUnit report {}", path.display()),
        Err(error) => eprintln!("stateproof: cannot write the JUnit report {}: {error}", path.display()),
    }
}

/// Ctrl-C or SIGTERM: report the tests in flight as interrupted, delete what
/// the run created (unless kept) and write the report before exiting.
fn watch_for_interrupt(shared: &Arc<Shared>) {
    let shared = shared.clone();
    let handle = shared.runtime.handle().clone();
    std::thread::spawn(move || {
        handle.block_on(async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        eprintln!("\nstateproof: interrupted; cleaning up (interrupt again to abandon the cleanup)");
        let again = handle.clone();
        std::thread::spawn(move || {
            let _ = again.block_on(tokio::signal::ctrl_c());
            eprintln!("stateproof: cleanup abandoned");
            std::process::exit(130);
        });
        let running: Vec<_> = shared.running.lock().unwrap().drain().collect();
        for (test, (suite, file, started)) in running {
            record(
                &shared,
                TestResult {
                    suite,
                    suite_file: file,
                    test: test.split_once("::").map_or(test.clone(), |(_, name)| name.to_string()),
                    outcome: Outcome::Failed("interrupted".into()),
                    duration: started.elapsed(),
                    waited: Duration::ZERO,
                    diagnostics: None,
                },
            );
        }
        let results = shared.results.lock().unwrap().clone();
        write_report(&shared, &results);
        handle.block_on(interrupt_cleanup(&shared));
        std::process::exit(130);
    });
}

/// The suite environments may be locked by tests in flight: delete their
/// namespaces by name, then the cluster if this run created it.
async fn interrupt_cleanup(shared: &Shared) {
    let keep = shared.settings.keep;
    for (cluster, fault) in shared.ledger.take(None, |_| true) {
        eprintln!("stateproof: undoing {fault:?}");
        let _ = ledger::undo(&cluster, &fault, Duration::from_secs(180)).await;
    }
    let namespaces = shared.namespaces.lock().unwrap().clone();
    for (cluster, name) in namespaces {
        let _ = if keep {
            namespace::mark_kept(&cluster.client, &name).await
        } else {
            let _ = namespace::delete(&cluster.client, &name, Duration::from_secs(60)).await;
            local_volumes::reap(&cluster, &name).await
        };
    }
    let clusters: Vec<_> = shared.clusters.lock().unwrap().values().cloned().collect();
    for cell in clusters {
        if let Some(Ok(cluster)) = cell.get() {
            let _ = cluster.finish(keep).await;
        }
    }
}
