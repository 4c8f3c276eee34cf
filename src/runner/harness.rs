//! The e2e harness behind `cargo test --test e2e` and the `stateproof`
//! binary: standard libtest flags, one trial per test of every suite file
//! (in the self-check, of every suite against each fixture variant that says
//! what it must fail). Before the trials, the forge builds what the selected
//! suites need; after them, the run tears down what it made and accounts
//! for anything it could not.

use super::env::SuiteEnv;
use super::finish;
use super::gate::{Access, ClusterGate, Pass};
use super::schedule::{Admission, MemoryBudget, memory_requested};
use super::steps::TestRun;
use super::verdict;
use crate::cluster::Cluster;
use crate::cluster::forge::{self, Forged, NODE_AGENT_STAGE, NODE_IMAGE_STAGE};
use crate::faults::ledger::Ledger;
use crate::k8s::apply;
use crate::report::run_stats::ClusterStats;
use crate::report::{Outcome, TestResult, diagnostics};
use crate::settings::{ClusterChoice, ReportPaths, Settings};
use crate::suite::{self, Disruption, LoadError, LoadedSuite, Variant};
use crate::wait;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::{OnceCell, oneshot};

/// Which tests a run is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every suite against its fixtures.
    Conformance,
    /// Every suite against each fixture variant that names it: the variant's
    /// failures are required, and nothing else may fail.
    SelfCheck,
}

/// A suite's environment once its first test has asked for it.
pub(super) enum EnvState {
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

pub(super) struct SuiteSlot {
    pub loaded: LoadedSuite,
    pub env: tokio::sync::Mutex<Option<EnvState>>,
}

/// A cluster, brought up on first use (or why it could not be), how many
/// suites may run on it, and who may use it at the same time.
pub(super) struct ClusterPlace {
    pub choice: ClusterChoice,
    pub cluster: OnceCell<Result<Arc<Cluster>, String>>,
    pub admission: Admission,
    pub gate: ClusterGate,
    /// Whether the cluster was finished (looked over, deleted if the run
    /// made it): once its last suite is done, at the end, or on an interrupt.
    pub finished: tokio::sync::Mutex<bool>,
}

pub(super) struct Shared {
    pub settings: Settings,
    pub run: String,
    pub runtime: Runtime,
    pub forged: Forged,
    /// Why the forge could not build what the run needs, if it could not.
    pub unbuilt: Mutex<Option<String>>,
    /// By cluster identity (`ClusterChoice::identity`).
    pub clusters: Mutex<HashMap<String, Arc<ClusterPlace>>>,
    pub suites: Vec<SuiteSlot>,
    pub memory: Arc<MemoryBudget>,
    pub ledger: Ledger,
    pub results: Mutex<Vec<TestResult>>,
    pub running: Mutex<HashMap<String, (String, PathBuf, Instant)>>,
    /// Every namespace this run made, with its cluster: for the clean-up of
    /// an interrupt, and the last look for leftovers.
    pub namespaces: Mutex<Vec<(Arc<Cluster>, String)>>,
    /// The node folders under which this run's suites made local volumes:
    /// where the last look for leftovers searches (on any cluster, through
    /// the node agent: never installed for it alone).
    pub volume_paths: Mutex<BTreeSet<String>>,
    /// Failures outside any test (teardown, leftovers): they fail the run.
    pub run_failures: AtomicUsize,
    pub started: Instant,
    /// Each suite's wall time, from its admission to its teardown's end.
    pub suite_walls: Mutex<Vec<(String, Duration)>>,
    pub cluster_stats: Mutex<Vec<ClusterStats>>,
}

pub fn main() -> ! {
    run(Mode::Conformance, Arguments::from_args())
}

pub fn run(mode: Mode, args: Arguments) -> ! {
    limit_malloc_arenas();
    // kube uses rustls; pin the process-wide provider before any TLS use.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let run = run_id();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(why) => refuse_run(&run, &why),
    };
    let (suites, load_errors) = discover(&settings, mode);
    // The pulsar client's futures are deep; 2 MiB stacks overflow in debug builds.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 << 20)
        .build()
        .expect("tokio runtime");
    let forged = match runtime.block_on(Forged::ask(&settings)) {
        Ok(forged) => forged,
        Err(error) => refuse_run(&run, &format!("{error:#}")),
    };
    let shared = Arc::new(Shared {
        run,
        runtime,
        forged,
        unbuilt: Mutex::default(),
        clusters: Mutex::default(),
        memory: MemoryBudget::new(settings.memory_budget_mib),
        settings,
        suites: suites.into_iter().map(|loaded| SuiteSlot { loaded, env: tokio::sync::Mutex::new(None) }).collect(),
        ledger: Ledger::default(),
        results: Mutex::default(),
        running: Mutex::default(),
        namespaces: Mutex::default(),
        volume_paths: Mutex::default(),
        run_failures: AtomicUsize::new(0),
        started: Instant::now(),
        suite_walls: Mutex::default(),
        cluster_stats: Mutex::default(),
    });
    let (tests, waiting) = test_trials(&shared);
    let mut trials = load_error_trials(&shared, load_errors);
    trials.extend(tests);
    let unmatched_filter = unmatched_filter(&args, &trials);
    if args.list {
        libtest_mimic::run(&args, trials).exit();
    }
    let plan = plan(&args, &trials, waiting);
    finish::watch_for_interrupt(&shared);
    build_what_is_needed(&shared, &plan);
    let scheduler = start(&shared, plan);
    // Every trial only waits for its result: as many threads as trials, so
    // that each is reported as soon as the scheduler has it.
    let args = Arguments { test_threads: Some(trials.len().max(1)), ..args };
    let conclusion = libtest_mimic::run(&args, trials);
    let _ = shared.runtime.block_on(scheduler);
    if shared.interrupted() {
        // The interrupt's own thread cleans up, reports and exits with 130.
        loop {
            std::thread::park();
        }
    }
    if let Some(filter) = &unmatched_filter {
        let why = format!("no test matches '{filter}'; `cargo test --test e2e -- --list` shows them");
        eprintln!("stateproof: {why}");
        record_run_failure(&shared, "select", why);
    }
    finish::finish(&shared);
    let failed = conclusion.has_failed() || shared.run_failures.load(Ordering::SeqCst) > 0;
    std::process::exit(if failed { 101 } else { 0 })
}

/// glibc gives threads that allocate at once arenas of their own, up to
/// eight per core, each keeping what it freed: with a trial thread per test,
/// tokio's workers and the Kafka client's threads, a whole run peaked at
/// 151 MiB; with two arenas, at 113-124 MiB. Called before any thread starts.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter; no thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

impl Shared {
    /// Ctrl-C or SIGTERM arrived: the ledger takes no new fault.
    pub fn interrupted(&self) -> bool {
        self.ledger.is_closed()
    }

    /// The place of the cluster that suites naming this kind config run on:
    /// suites on different clusters never wait for each other's faults.
    pub fn cluster_place(&self, kind_config: &str) -> Arc<ClusterPlace> {
        let choice = self.settings.cluster.for_kind_config(kind_config);
        let mut places = self.clusters.lock().unwrap();
        let place = places.entry(choice.identity()).or_insert_with(|| {
            Arc::new(ClusterPlace {
                choice,
                cluster: OnceCell::new(),
                admission: Admission::new(self.settings.parallel_suites, self.memory.clone()),
                gate: ClusterGate::default(),
                finished: Default::default(),
            })
        });
        place.clone()
    }
}

/// A failure of the run as a whole, reported as a test of its own.
pub(super) fn record_run_failure(shared: &Shared, test: &str, why: String) {
    shared.run_failures.fetch_add(1, Ordering::SeqCst);
    record(shared, run_failure(&shared.settings.suites_dir, "stateproof", test, why));
}

pub(super) fn run_failure(file: &std::path::Path, suite: &str, test: &str, why: String) -> TestResult {
    TestResult {
        suite: suite.into(),
        suite_file: file.to_path_buf(),
        test: test.into(),
        outcome: Outcome::Failed(why),
        duration: Duration::ZERO,
        waited: Duration::ZERO,
        diagnostics: None,
        properties: Vec::new(),
    }
}

/// Settings that cannot be used: say why, write the reports, exit non-zero.
fn refuse_run(run: &str, why: &str) -> ! {
    eprintln!("stateproof: {why}");
    let paths = ReportPaths::from_env();
    let failures = [run_failure("environment".as_ref(), "stateproof", "settings", why.into())];
    crate::report::write_files(&paths.junit, &paths.html, run, &failures);
    crate::report::github::publish(run, &failures, &paths.html);
    std::process::exit(101);
}

fn run_id() -> String {
    format!("{}-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"), std::process::id())
}

/// The suites of the run: each file as it is, or in the self-check, each
/// against every fixture variant that says what it must fail.
fn discover(settings: &Settings, mode: Mode) -> (Vec<LoadedSuite>, Vec<LoadError>) {
    let files = match suite::discover(settings) {
        Ok(files) => files,
        Err(error) => return (Vec::new(), vec![error]),
    };
    let variants = match mode {
        Mode::Conformance => Vec::new(),
        Mode::SelfCheck => match suite::variant::discover(&settings.fixtures_dir) {
            Ok(variants) => variants.into_iter().filter(Variant::is_checked).collect(),
            Err(error) => {
                let message = format!("{error:#}");
                return (Vec::new(), vec![LoadError { file: settings.fixtures_dir.clone(), message }]);
            }
        },
    };
    let (mut loaded, mut errors) = (Vec::new(), Vec::new());
    for file in files {
        let base = match suite::load(&file, settings, None) {
            Ok(base) => base,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        if mode == Mode::Conformance {
            loaded.push(base);
            continue;
        }
        for variant in variants.iter().filter(|variant| variant.must_fail.contains_key(&base.suite.name)) {
            match suite::load(&file, settings, Some(variant)) {
                Ok(suite)
                    if suite.suite.fixture.iter().any(|name| name.split('@').next() == Some(&variant.fixture)) =>
                {
                    loaded.push(suite)
                }
                Ok(suite) => errors.push(LoadError {
                    file: variant.file.clone(),
                    message: format!(
                        "it names suite {}, whose fixtures do not include {}",
                        suite.suite.name, variant.fixture
                    ),
                }),
                Err(error) => errors.push(error),
            }
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
                let mut failure = run_failure(&error.file, &stem, "load", message.clone());
                failure.suite_file = error.file.clone();
                record(&shared, failure);
                Err(Failed::from(message))
            })
        })
        .collect()
}

/// A test's result, as the scheduler sends it to the trial that reports it.
type Report = oneshot::Sender<Outcome>;

/// Per trial name: its suite, its test, and where its result goes.
type Waiting = HashMap<String, (usize, usize, Report)>;

/// One trial per test; each waits for the result the scheduler sends it.
/// Returns the trials, and per trial name where its result goes.
fn test_trials(shared: &Arc<Shared>) -> (Vec<Trial>, Waiting) {
    let mut trials = Vec::new();
    let mut waiting = HashMap::new();
    for (suite_index, slot) in shared.suites.iter().enumerate() {
        for (test_index, test) in slot.loaded.suite.tests.iter().enumerate() {
            let name = format!("{}::{}", slot.loaded.label(), test.name);
            let (report, result) = oneshot::channel();
            waiting.insert(name.clone(), (suite_index, test_index, report));
            trials.push(Trial::ignorable_test(name, move || match result.blocking_recv() {
                Ok(Outcome::Passed | Outcome::PassedWithFindings(_)) => Ok(Completion::Completed),
                Ok(Outcome::Skipped(reason)) => Ok(Completion::ignored_with(reason)),
                Ok(Outcome::Failed(message)) => Err(Failed::from(message)),
                Err(_) => Err(Failed::from("the run ended before this test did")),
            }));
        }
    }
    (trials, waiting)
}

/// The selected tests of each suite, in the suite's order.
type Plan = BTreeMap<usize, Vec<(usize, Report)>>;

fn plan(args: &Arguments, trials: &[Trial], mut waiting: Waiting) -> Plan {
    let mut plan: Plan = BTreeMap::new();
    for trial in trials.iter().filter(|trial| !args.is_filtered_out(trial)) {
        if let Some((suite, test, report)) = waiting.remove(trial.name()) {
            plan.entry(suite).or_default().push((test, report));
        }
    }
    for tests in plan.values_mut() {
        tests.sort_by_key(|(test, _)| *test);
    }
    plan
}

/// Runs every planned suite as a task of its own, admitted when it fits.
/// A cluster is finished as soon as its last suite is: an idle cluster
/// would only take the machine from the others.
fn start(shared: &Arc<Shared>, plan: Plan) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    let handle = shared.runtime.handle().clone();
    handle.spawn(async move {
        let mut by_cluster: BTreeMap<String, (Arc<ClusterPlace>, Vec<_>)> = BTreeMap::new();
        for (suite, tests) in admission_order(plan) {
            let place = shared.cluster_place(&shared.suites[suite].loaded.suite.cluster);
            let entry = by_cluster.entry(place.choice.identity()).or_insert_with(|| (place, Vec::new()));
            entry.1.push(run_suite(shared.clone(), suite, tests));
        }
        let clusters = by_cluster.into_values().map(|(place, suites)| {
            let shared = shared.clone();
            async move {
                futures::future::join_all(suites).await;
                finish::finish_cluster(&shared, &place, "cluster-teardown").await;
            }
        });
        futures::future::join_all(clusters).await;
    })
}

/// Suites queue for admission with those of the most tests first, so that
/// the longest do not start last and hold up the end of the run alone.
fn admission_order(plan: Plan) -> Vec<(usize, Vec<(usize, Report)>)> {
    let mut suites: Vec<_> = plan.into_iter().collect();
    suites.sort_by_key(|(_, tests)| std::cmp::Reverse(tests.len()));
    suites
}

/// A suite's selected tests, one after another, then its teardown.
async fn run_suite(shared: Arc<Shared>, suite_index: usize, tests: Vec<(usize, Report)>) {
    let slot = &shared.suites[suite_index];
    if let Some(state) = preflight(&shared, &slot.loaded).await {
        *slot.env.lock().await = Some(state);
        for (test_index, report) in tests {
            let _ = report.send(run_test(&shared, slot, test_index, None, None).await.0);
        }
        return;
    }
    let weight = memory_requested(&slot.loaded.fixture.manifests);
    let place = shared.cluster_place(&slot.loaded.suite.cluster);
    let mut admitted = place.admission.admit(weight).await;
    let admitted_at = Instant::now();
    // A chained suite's state lives between its tests: another suite's node
    // fault in between (a stopped node loses its tmpfs volumes, restarts
    // its pods) would break the next test. It holds its pass from its first
    // test to its teardown, unless a test of its own stops nodes.
    let whole_suite =
        slot.loaded.suite.chained && slot.loaded.suite.tests.iter().all(|test| test.disrupts == Disruption::Suite);
    let held = if whole_suite { Some(place.gate.enter(Access::Chain).await) } else { None };
    let mut failed_before: Option<String> = None;
    for (test_index, report) in tests {
        match slot.loaded.suite.tests[test_index].disrupts {
            Disruption::Nodes => admitted.step_aside(),
            Disruption::Suite => admitted.come_back(),
        }
        let blocker = failed_before.as_deref().filter(|_| slot.loaded.suite.chained);
        // Asking for a pass while the suite holds one would queue behind a
        // waiting node fault that waits for this very suite.
        let gate = if held.is_some() { None } else { Some(&place.gate) };
        let (outcome, failed) = run_test(&shared, slot, test_index, blocker, gate).await;
        if failed && failed_before.is_none() {
            failed_before = Some(slot.loaded.suite.tests[test_index].name.clone());
        }
        let _ = report.send(outcome);
    }
    // A chain tears down under its own pass; any other suite's volume
    // directories go once no other test has nodes stopped.
    let gate = if held.is_some() { None } else { Some(&place.gate) };
    finish::finish_suite(&shared, slot, gate).await;
    drop(held);
    shared.suite_walls.lock().unwrap().push((slot.loaded.label(), admitted_at.elapsed()));
}

fn unmatched_filter(args: &Arguments, trials: &[Trial]) -> Option<String> {
    let filter = args.filter.clone()?;
    trials.iter().all(|trial| args.is_filtered_out(trial)).then_some(filter)
}

/// Runs the forge for the images the selected suites need (and the node
/// image of a kind cluster it will create, or the node agent of a cluster
/// from a kubeconfig), unless the user turned it off.
fn build_what_is_needed(shared: &Shared, plan: &Plan) {
    if !shared.settings.run_forge {
        return;
    }
    let mut images: BTreeSet<String> = BTreeSet::new();
    for suite in plan.keys() {
        images.extend(apply::images(&shared.suites[*suite].loaded.fixture.manifests));
    }
    let mut stages = shared.forged.stages_for(images.iter().map(String::as_str));
    match &shared.settings.cluster {
        ClusterChoice::Kind { node_image: None, .. } if !images.is_empty() => {
            stages.insert(NODE_IMAGE_STAGE.to_string());
        }
        ClusterChoice::Kubeconfig { image_registry: Some(_), .. } => {
            stages.insert(NODE_AGENT_STAGE.to_string());
        }
        _ => {}
    }
    if stages.is_empty() {
        return;
    }
    if let Err(error) = shared.runtime.block_on(forge::build(&shared.settings, &stages)) {
        let why = format!("{error:#}");
        eprintln!("stateproof: {why}");
        *shared.unbuilt.lock().unwrap() = Some(why.clone());
        record_run_failure(shared, "forge", why);
    }
}

/// One test: it waits for its turn at the cluster, sets up its suite on
/// first use, runs, and is recorded. A panic is a failed test like any other.
/// A test of a chained suite is not run once `blocker`, a test before it,
/// has failed. Returns its outcome and whether it ran and failed (a
/// variant's required failure included). It asks `gate`, its cluster's,
/// for a pass, unless it needs none (its suite holds one, or cannot run).
async fn run_test(
    shared: &Arc<Shared>,
    slot: &SuiteSlot,
    test_index: usize,
    blocker: Option<&str>,
    gate: Option<&ClusterGate>,
) -> (Outcome, bool) {
    let spec = &slot.loaded.suite.tests[test_index];
    let label = format!("{}::{}", slot.loaded.label(), spec.name);
    let attempt = wait::measured(async {
        let pass = match gate {
            Some(gate) => Some(gate.enter(spec.disrupts.into()).await),
            None => None,
        };
        // The test's time starts once it may run, not while it queues.
        let started = Instant::now();
        let entry = (slot.loaded.label(), slot.loaded.file.clone(), started);
        shared.running.lock().unwrap().insert(label.clone(), entry);
        let mut env = slot.env.lock().await;
        if env.is_none() {
            *env = Some(setup(shared, &slot.loaded).await);
        }
        let ran = match (env.as_ref().expect("set above"), blocker) {
            (_, Some(blocker)) => Ran::outcome(Outcome::Skipped(format!(
                "not run: {blocker} failed before it, and each test of this suite starts from the state the one \
                 before leaves (chained)"
            ))),
            (EnvState::Unavailable(reason), None) => Ran::outcome(Outcome::Skipped(reason.clone())),
            (EnvState::Failed { why, diagnostics, .. }, None) => Ran {
                outcome: verdict::failed_before_steps(spec, format!("suite setup failed: {why}")),
                diagnostics: diagnostics.clone(),
                properties: Vec::new(),
            },
            (EnvState::Ready(env), None) => execute(shared, &slot.loaded, env, spec, &label, pass.as_ref()).await,
            (EnvState::Finished, None) => {
                Ran::outcome(Outcome::Failed("the suite's environment was already torn down".into()))
            }
        };
        let executed = blocker.is_none() && matches!(env.as_ref(), Some(EnvState::Ready(_)));
        (ran, started, executed)
    });
    let fallback_start = Instant::now();
    let ((ran, started, executed), waited) = match verdict::unless_panicked(attempt).await {
        Ok(done) => done,
        Err(why) => ((Ran::outcome(Outcome::Failed(why)), fallback_start, true), Duration::ZERO),
    };
    // An interrupt took the test off this list and reported it already.
    let reported_as_interrupted = shared.running.lock().unwrap().remove(&label).is_none() && shared.interrupted();
    // Only a test that ran can leave its suite in a state it did not expect.
    let failed = executed && matches!(ran.outcome, Outcome::Failed(_));
    let outcome = match &slot.loaded.variant {
        Some(variant) => {
            let (required, allowed) = variant.expects(&slot.loaded.suite.name, &spec.name);
            verdict::against_variant(ran.outcome, &variant.label(), required, allowed)
        }
        None => ran.outcome,
    };
    if reported_as_interrupted {
        return (outcome, failed);
    }
    if let Outcome::PassedWithFindings(findings) = &outcome {
        eprintln!("stateproof: {label} passed with a FINDING:\n{findings}");
    }
    record(
        shared,
        TestResult {
            suite: slot.loaded.label(),
            suite_file: slot.loaded.file.clone(),
            test: spec.name.clone(),
            outcome: outcome.clone(),
            duration: started.elapsed(),
            waited,
            diagnostics: ran.diagnostics,
            properties: ran.properties,
        },
    );
    (outcome, failed)
}

/// What one test came to.
struct Ran {
    outcome: Outcome,
    diagnostics: Option<PathBuf>,
    properties: Vec<(String, String)>,
}

impl Ran {
    fn outcome(outcome: Outcome) -> Self {
        Ran { outcome, diagnostics: None, properties: Vec::new() }
    }
}

/// What keeps a suite from running before it is admitted: the forge could
/// not build what the run needs, its cluster could not be had, or the
/// operator or an external image its fixture needs cannot be (then its tests
/// are skipped). `None` when it may run.
async fn preflight(shared: &Shared, loaded: &LoadedSuite) -> Option<EnvState> {
    let failed = |why: String| Some(EnvState::Failed { why, diagnostics: None, env: None });
    if let Some(why) = shared.unbuilt.lock().unwrap().clone() {
        return failed(why);
    }
    if let Some(why) = SuiteEnv::operator_missing(loaded) {
        return Some(EnvState::Unavailable(why));
    }
    let cluster = match cluster_for(shared, &loaded.suite.cluster).await {
        Ok(cluster) => cluster,
        Err(why) => return failed(why),
    };
    match SuiteEnv::images_missing(loaded, &cluster).await {
        Ok(None) => None,
        Ok(Some(why)) => Some(EnvState::Unavailable(why)),
        Err(error) => failed(format!("{error:#}")),
    }
}

async fn setup(shared: &Shared, loaded: &LoadedSuite) -> EnvState {
    let failed = |why: String| EnvState::Failed { why, diagnostics: None, env: None };
    let cluster = match cluster_for(shared, &loaded.suite.cluster).await {
        Ok(cluster) => cluster,
        Err(why) => return failed(why),
    };
    let logs = shared.settings.report_dir.join(&shared.run).join(loaded.label());
    let env = match SuiteEnv::prepare(loaded, cluster.clone(), &shared.run, &logs).await {
        Ok(env) => Box::new(env),
        Err(error) => return failed(format!("{error:#}")),
    };
    shared.namespaces.lock().unwrap().push((cluster, env.namespace.clone()));
    if let Some(spec) = &env.local_volumes {
        shared.volume_paths.lock().unwrap().insert(spec.host_path.clone());
    }
    match env.deploy().await {
        Ok(()) => EnvState::Ready(env),
        Err(error) => {
            let dir = diagnostics_dir(shared, &loaded.label(), "setup");
            let diagnostics = diagnostics::capture(&env.cluster, &env.namespace, &dir).await;
            EnvState::Failed { why: format!("{error:#}"), diagnostics, env: Some(env) }
        }
    }
}

fn diagnostics_dir(shared: &Shared, suite: &str, test: &str) -> PathBuf {
    shared.settings.report_dir.join(&shared.run).join(suite).join(test)
}

/// One cluster per kind config for the whole run, brought up on first use
/// (with a kubeconfig, one for all).
async fn cluster_for(shared: &Shared, config: &str) -> Result<Arc<Cluster>, String> {
    let place = shared.cluster_place(config);
    place
        .cluster
        .get_or_init(|| async {
            let asked = Instant::now();
            let cluster = Cluster::provide(&shared.settings, config, &shared.forged, &shared.run)
                .await
                .map_err(|error| format!("{error:#}"))?;
            let ready_seconds = asked.elapsed().as_secs_f64();
            shared.cluster_stats.lock().unwrap().push(ClusterStats { config: config.into(), ready_seconds });
            finish::reap_orphans(&cluster).await;
            Ok(Arc::new(cluster))
        })
        .await
        .clone()
}

async fn execute(
    shared: &Shared,
    loaded: &LoadedSuite,
    env: &SuiteEnv,
    spec: &suite::TestSpec,
    label: &str,
    pass: Option<&Pass<'_>>,
) -> Ran {
    let dir = diagnostics_dir(shared, &loaded.label(), &spec.name);
    if env.suite.deploy.wait_ready
        && let Err(error) = env.wait_ready(env.suite.defaults.ready_timeout).await
    {
        let diagnostics = diagnostics::capture(&env.cluster, &env.namespace, &dir).await;
        let outcome =
            verdict::failed_before_steps(spec, format!("before the test, the fixture is not ready: {error:#}"));
        return Ran { outcome, diagnostics, properties: Vec::new() };
    }
    let mut test = TestRun::new(env, &shared.ledger, label.to_string());
    if let Some(pass) = pass {
        test = test.when_nodes_are_back(|| pass.share());
    }
    let report = test.run(spec, &dir).await;
    let outcome = verdict::judge(spec, report.outcome, report.cleanup, report.findings);
    let mut properties = report.properties;
    properties.push(("history".into(), dir.join("history.jsonl").display().to_string()));
    Ran { outcome, diagnostics: report.diagnostics, properties }
}

pub(super) fn record(shared: &Shared, result: TestResult) {
    shared.results.lock().unwrap().push(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_with_more_tests_are_admitted_first_and_ties_keep_their_order() {
        let tests = |count: usize| (0..count).map(|test| (test, oneshot::channel().0)).collect::<Vec<_>>();
        let plan: Plan = BTreeMap::from([(0, tests(1)), (1, tests(3)), (2, tests(5)), (3, tests(3))]);
        let order: Vec<usize> = admission_order(plan).into_iter().map(|(suite, _)| suite).collect();
        assert_eq!(order, [2, 1, 3, 0]);
    }
}
