//! Executing one test: its steps in order, each a call into the system
//! adapter, the faults or the checkers, every one recorded in the test's
//! history; then undoing what the test did to nodes and processes.

mod bookies;
mod log;
mod members;

pub(super) use log::create_topic;

use super::env::{Handover, SuiteEnv};
use super::{observer, sampler};
use crate::checks::autoscaling::Sample;
use crate::checks::{placement, storage};
use crate::faults::{
    self,
    ledger::{Fault, Ledger},
};
use crate::history::{self, Event, FaultEvent, FaultPhase, History, Phase, Sampled, StepEvent};
use crate::k8s::apply::Applier;
use crate::k8s::conditions::{node_ready_status, pod_ready, restart_count};
use crate::k8s::evict::Eviction;
use crate::k8s::{exec, statefulset};
use crate::report;
use crate::suite::{Defaults, DrainOutcome, Member, MemberRef, OutputExpectation, ProcessSignal, Step, TestSpec};
use crate::systems::Record;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a test has observed and done so far.
#[derive(Default)]
struct TestState {
    written: HashMap<String, Record>,
    storage: Option<storage::StorageSnapshot>,
    restarts_before: HashMap<Member, i32>,
    /// The member a `remember-leader` step found.
    leader: Option<Member>,
    /// The number the next produced message gets (ids are unique per test).
    next_message: u64,
    traffic: Option<log::Traffic>,
    /// The last traffic stopped: its producer and its window.
    stopped_traffic: Option<log::Window>,
    /// Members as a `remember-members` step found them.
    members: HashMap<Member, members::MemberSnapshot>,
    /// Ledgers as a `remember-ledgers` step found them.
    ledgers: Option<BTreeMap<u64, std::collections::BTreeSet<String>>>,
}

/// The step a test stopped at, and why.
#[derive(Debug)]
pub struct StepFailure {
    /// 0-based.
    pub index: usize,
    pub error: anyhow::Error,
}

/// What a test came to: its steps' outcome, the undoing of its faults, what
/// it found about the system that its expectations do not fail on, the
/// figures it measured, and where its history and diagnostics are.
pub struct TestReport {
    pub outcome: Result<(), StepFailure>,
    pub cleanup: Result<()>,
    pub findings: Vec<String>,
    pub properties: Vec<(String, String)>,
    pub diagnostics: Option<PathBuf>,
}

pub struct TestRun<'a> {
    env: &'a SuiteEnv,
    ledger: &'a Ledger,
    label: String,
    state: TestState,
    history: History,
    findings: Vec<String>,
    properties: Vec<(String, String)>,
    /// The bookies as sampled while the test runs (a suite's `sampling`).
    samples: Arc<Mutex<Vec<Sample>>>,
    /// Called once the test has no node step left and its nodes are back.
    nodes_back: Option<Box<dyn FnOnce() + Send + Sync + 'a>>,
}

impl<'a> TestRun<'a> {
    pub fn new(env: &'a SuiteEnv, ledger: &'a Ledger, label: String) -> Self {
        let mut history = History::default();
        let mut state = TestState::default();
        if env.suite.chained {
            let handover = env.handover.lock().unwrap().clone();
            handover.sends.into_iter().for_each(|event| history.push(event));
            state.next_message = handover.next_message;
        }
        TestRun {
            env,
            ledger,
            label,
            state,
            history,
            findings: Vec::new(),
            properties: Vec::new(),
            samples: Arc::default(),
            nodes_back: None,
        }
    }

    /// `nodes_back` is told when the cluster need no longer be the test's
    /// alone: its last node step has passed and every node it cordoned or
    /// stopped is back, so that other suites' tests may go on meanwhile.
    pub fn when_nodes_are_back(mut self, nodes_back: impl FnOnce() + Send + Sync + 'a) -> Self {
        self.nodes_back = Some(Box::new(nodes_back));
        self
    }

    fn defaults(&self) -> &Defaults {
        &self.env.suite.defaults
    }

    /// Runs every step, stopping at the first failure; on a failure, the
    /// cluster is captured into `dir` before the test's faults are undone, so
    /// that it shows the state that failed. The history goes into `dir`
    /// whatever happened.
    pub async fn run(mut self, spec: &TestSpec, dir: &Path) -> TestReport {
        let started_at = history::now();
        let (stop, stopped) = watch::channel(false);
        let (env, samples) = (self.env, self.samples.clone());
        let sampling = async {
            let bookies = env.system.bookies();
            if let (Some(every), Some(bookies)) = (env.suite.sampling, bookies) {
                sampler::sample(env, bookies, every, &samples, stopped).await;
            }
        };
        let ((outcome, this), ()) = tokio::join!(
            async {
                let outcome = self.steps(spec).await;
                let _ = stop.send(true);
                (outcome, self)
            },
            sampling
        );
        this.finish(outcome, started_at, dir).await
    }

    /// Every step in order, stopping at the first failure.
    async fn steps(&mut self, spec: &TestSpec) -> Result<(), StepFailure> {
        let total = spec.steps.len();
        let mut outcome = Ok(());
        for (index, step) in spec.steps.iter().enumerate() {
            if self.ledger.is_closed() {
                let error = anyhow!("the run was interrupted before step {}/{total} ({step})", index + 1);
                outcome = Err(StepFailure { index, error });
                break;
            }
            let started = Instant::now();
            eprintln!("[{}] step {}/{total}: {step}", self.label, index + 1);
            self.record_step(index, step, Phase::Started, None);
            let result = self.step(step).await;
            let seconds = started.elapsed().as_secs_f64();
            match result {
                Ok(()) => {
                    self.record_step(index, step, Phase::Passed, None);
                    eprintln!("[{}] step {}/{total} ok ({seconds:.1}s)", self.label, index + 1);
                    self.tell_if_nodes_are_back(&spec.steps, index);
                }
                Err(error) => {
                    let mut error = error.context(format!("step {}/{total} ({step})", index + 1));
                    if let Some(shown) = self.judged_so_far(&spec.steps[index + 1..]) {
                        error = anyhow!("{error:#}; the samples so far already show: {shown}");
                    }
                    self.record_step(index, step, Phase::Failed, Some(format!("{error:#}")));
                    eprintln!("[{}] step {}/{total} FAILED after {seconds:.1}s", self.label, index + 1);
                    outcome = Err(StepFailure { index, error });
                    break;
                }
            }
        }
        outcome
    }

    fn tell_if_nodes_are_back(&mut self, steps: &[Step], index: usize) {
        // Asked only while someone waits to hear it: the ledger is shared.
        if self.nodes_back.is_some()
            && done_with_nodes(steps, index, self.ledger.holds_node_faults(&self.label))
            && let Some(nodes_back) = self.nodes_back.take()
        {
            eprintln!("[{}] its nodes are back: other suites' tests may run beside the rest of it", self.label);
            nodes_back();
        }
    }

    async fn finish(mut self, outcome: Result<(), StepFailure>, started_at: history::Millis, dir: &Path) -> TestReport {
        let failed = outcome.is_err();
        let diagnostics = if failed || !self.findings.is_empty() { self.capture(dir).await } else { None };
        let cleanup = self.undo_faults(|_| true).await;
        if self.env.suite.chained {
            let sends =
                self.history.events().iter().filter(|event| matches!(event, Event::Producer(_) | Event::Sent(_)));
            let handover = Handover { sends: sends.cloned().collect(), next_message: self.state.next_message };
            *self.env.handover.lock().unwrap() = handover;
        }
        self.record_observations(started_at);
        for sample in std::mem::take(&mut *self.samples.lock().unwrap()) {
            let value = serde_json::to_value(&sample).unwrap_or_default();
            self.history.push(Event::Sampled(Sampled { at: sample.at, of: "bookies".into(), value }));
        }
        if let Err(error) = self.history.write_jsonl(&dir.join("history.jsonl")) {
            eprintln!("stateproof: {error:#}");
        }
        TestReport { outcome, cleanup, findings: self.findings, properties: self.properties, diagnostics }
    }

    /// What the watches saw during the test, into its history; and the
    /// time Kubernetes needed to bring pods up, as a figure.
    fn record_observations(&mut self, from: history::Millis) {
        let to = history::now();
        let observed = self.env.observer.between(from, to);
        let floor = observer::floor(&observed, from, to) as f64 / 1000.0;
        self.properties.push(("floor-seconds".into(), format!("{floor:.1}")));
        for seen in observed {
            self.history.push(Event::Observed(seen));
        }
    }

    fn record_step(&mut self, index: usize, step: &Step, phase: Phase, error: Option<String>) {
        let event = StepEvent { index: index + 1, step: step.to_string(), at: history::now(), phase, error };
        self.history.push(Event::Step(event));
    }

    fn record_fault(&mut self, fault: &Fault, phase: FaultPhase, error: Option<String>) {
        let event = FaultEvent { fault: fault.to_string(), at: history::now(), phase, error };
        self.history.push(Event::Fault(event));
    }

    /// Records the fault in the ledger (before it is made: whatever happens
    /// next, it gets undone) and in the history. Once the run is
    /// interrupted the ledger refuses it, and the step must not make it.
    fn fault(&mut self, fault: Fault) -> Result<()> {
        self.ledger.record(&self.label, &self.env.cluster, fault.clone())?;
        self.record_fault(&fault, FaultPhase::Started, None);
        Ok(())
    }

    /// The cluster's state, and the system's own view of itself.
    async fn capture(&self, dir: &Path) -> Option<PathBuf> {
        let env = self.env;
        let captured = report::diagnostics::capture(&env.cluster, &env.namespace, dir).await?;
        for (file, text) in env.system.diagnostics(&env.ordinals().await.unwrap_or_default()).await {
            let _ = std::fs::write(captured.join(file), text);
        }
        Some(captured)
    }

    /// The one dispatch of steps: every step of the vocabulary, here.
    async fn step(&mut self, step: &Step) -> Result<()> {
        let env = self.env;
        let defaults = *self.defaults();
        match step {
            Step::Write { member, key, value } => self.write(*member, key, value).await?,
            Step::Read { member, key, expect, unchanged, within } => {
                let written = if *unchanged {
                    Some(self.state.written.get(key).cloned().ok_or_else(|| anyhow!("this test never wrote {key}"))?)
                } else {
                    None
                };
                self.read(*member, key, expect, written.as_ref(), within.unwrap_or(defaults.client_within)).await?;
            }
            Step::WaitReady => env.wait_ready(defaults.ready_timeout).await?,
            Step::ExpectRolledOut { within } => self.expect_rolled_out(*within).await?,
            Step::RememberStorage => {
                self.expect_data_on_claims().await?;
                self.state.storage = Some(self.storage_snapshot().await?);
            }
            Step::ExpectSameStorage => self.expect_same_storage(defaults.ready_timeout).await?,
            Step::DeleteStatefulset => {
                let name = &env.suite.members.statefulset;
                faults::delete_statefulset(&env.sets, &env.members.pods, name, defaults.delete_within).await?
            }
            Step::ApplyFixture => env.apply().await?,
            Step::DeletePod { member, force } => {
                let pod = env.members.pod(self.member(*member)?);
                faults::delete_pod(&env.members.pods, &pod, *force, defaults.delete_within).await?
            }
            Step::Exec { member, command, expect } => self.exec(*member, command, expect.as_ref()).await?,
            Step::ExpectUnavailable { member, within } => {
                self.expect_unavailable(self.member(*member)?, within.unwrap_or(defaults.client_within)).await?
            }
            Step::Signal { member, signal } => self.signal(self.member(*member)?, *signal).await?,
            Step::ExpectRestart { member, within } => {
                self.expect_restart(self.member(*member)?, within.unwrap_or(defaults.restart_within)).await?
            }
            Step::ExpectSpread => {
                placement::spread_across_nodes(&self.placement().await?).map_err(|why| anyhow!(why))?
            }
            Step::ExpectAntiAffinity => {
                let set = env.sets.get(&env.suite.members.statefulset).await?;
                placement::requires_anti_affinity(&set).map_err(|why| anyhow!(why))?;
            }
            Step::Drain { member, expect } => self.drain(*member, *expect).await?,
            Step::Uncordon => self.undo_faults(|fault| matches!(fault, Fault::Cordoned(_))).await?,
            Step::StopNode { member } => {
                let node = self.node_of(self.member(*member)?).await?;
                self.fault(Fault::Stopped(node.clone()))?;
                env.cluster.stop_node(&node).await?;
            }
            Step::ExpectNodeDown { member, within } => {
                self.expect_node_down(self.member(*member)?, within.unwrap_or(defaults.node_within)).await?
            }
            Step::StartNodes => self.undo_faults(|fault| matches!(fault, Fault::Stopped(_))).await?,
            Step::Scale { replicas } => {
                statefulset::scale(&env.sets, &env.suite.members.statefulset, *replicas).await?
            }
            Step::ExpectClaimsKept { member } => self.expect_claims_kept(*member).await?,
            Step::Pause { duration } => tokio::time::sleep(*duration).await,
            Step::ExpectLocalVolumes { claims } => self.expect_local_volumes(*claims).await?,
            Step::RememberMembers => self.remember_members().await?,
            Step::ExpectSameNode { member } => self.expect_same_node(*member).await?,
            Step::ExpectUndisturbed { members } => self.expect_undisturbed(members).await?,
            Step::ExpectPending { member, within } => {
                self.expect_pending(*member, within.unwrap_or(defaults.client_within)).await?
            }
            Step::ExpectGone { member, within } => {
                self.expect_gone(*member, within.unwrap_or(defaults.delete_within)).await?
            }
            Step::Produce { topic, messages, via, acks } => self.produce(topic, *messages, *via, *acks).await?,
            Step::StartTraffic { topic, via, rate, acks } => self.start_traffic(topic, *via, *rate, *acks).await?,
            Step::StopTraffic => self.stop_traffic().await?,
            Step::ExpectAvailable { max_gap } => self.expect_available(*max_gap)?,
            Step::Consume { topic, via, within } => {
                self.consume(topic, *via, within.unwrap_or(defaults.consume_within)).await?
            }
            Step::CheckDelivery { duplicates, loss, pass } => self.check_delivery(*duplicates, *loss, *pass)?,
            Step::RememberLeader { topic, partition } => self.remember_leader(topic, *partition).await?,
            Step::CreateTopic { topic, partitions, replication_factor } => {
                self.create_topic(topic, *partitions, *replication_factor).await?
            }
            Step::ExpectInSync { topic, within } => {
                self.expect_in_sync(topic, within.unwrap_or(defaults.sync_within)).await?
            }
            Step::ExpectBrokers { ids, within } => {
                self.expect_brokers(ids, within.unwrap_or(defaults.client_within)).await?
            }
            Step::FillDisk { members, to } => self.fill_disk(members, *to).await?,
            Step::SetReadOnly { member, read_only } => self.set_read_only(*member, *read_only).await?,
            Step::ExpectReadOnly { member, read_only, within } => {
                self.expect_read_only(*member, *read_only, *within).await?
            }
            Step::ExpectAuditor { elected, within } => self.expect_auditor(*elected, *within).await?,
            Step::ExpectReplicas { count, within } => self.expect_replicas(*count, *within).await?,
            Step::ExpectReplicasStay { count, duration } => self.expect_replicas_stay(*count, *duration).await?,
            Step::RememberLedgers => self.remember_ledgers().await?,
            Step::ExpectLedgersKept => self.expect_ledgers_kept().await?,
            Step::ExpectNewLedgersOn { member, within } => {
                self.expect_new_ledgers_on(*member, within.unwrap_or(defaults.client_within)).await?
            }
            Step::ExpectAutoscaling(invariants) => self.expect_autoscaling(invariants)?,
            Step::Patch(patch) => {
                let target = (patch.target.kind.as_str(), patch.target.name.as_str());
                let mut applier = Applier::new(env.cluster.client.clone(), &env.namespace);
                applier.patch_live(&env.manifests, target, patch.json.as_ref(), patch.merge.as_ref()).await?
            }
        }
        Ok(())
    }

    fn member(&self, target: MemberRef) -> Result<Member> {
        match target {
            MemberRef::Ordinal(member) => Ok(member),
            MemberRef::Leader => self.state.leader.context("no leader remembered yet"),
        }
    }

    fn key_value(&self) -> Result<&'a dyn crate::systems::KeyValue> {
        let system = self.env.system.as_ref();
        system.key_value().with_context(|| format!("the {} adapter has no key-value client", self.env.suite.system))
    }

    async fn write(&mut self, member: Member, key: &str, value: &str) -> Result<()> {
        let store = self.key_value()?;
        let what = format!("a write on member {member} to succeed");
        let record = wait::until(&what, self.defaults().client_within, || async {
            Ok(Probe::Done(store.write(member, key, value).await?))
        })
        .await?;
        self.state.written.insert(key.to_string(), record);
        Ok(())
    }

    async fn read(
        &self,
        member: Member,
        key: &str,
        expect: &str,
        written: Option<&Record>,
        within: Duration,
    ) -> Result<()> {
        let store = self.key_value()?;
        wait::until(&format!("{key} = {expect:?} on member {member}"), within, || async {
            Ok(match store.read(member, key).await? {
                None => Probe::Pending(format!("{key} does not exist")),
                Some(record) if record.value != expect => Probe::Pending(format!("value {:?}", record.value)),
                Some(record) => match written {
                    Some(written) if written.version != record.version => Probe::Pending(format!(
                        "value matches but its version is {:#x}, not the {:#x} this test wrote",
                        record.version, written.version
                    )),
                    _ => Probe::Done(()),
                },
            })
        })
        .await?;
        Ok(())
    }

    /// The names of the StatefulSet's volumeClaimTemplates.
    async fn claim_templates(&self) -> Result<Vec<String>> {
        let set = self.env.sets.get(&self.env.suite.members.statefulset).await?;
        Ok(set
            .spec
            .as_ref()
            .and_then(|spec| spec.volume_claim_templates.as_ref())
            .map(|claims| claims.iter().filter_map(|claim| claim.metadata.name.clone()).collect())
            .unwrap_or_default())
    }

    fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.env.cluster.client.clone(), &self.env.namespace)
    }

    async fn expect_claims_kept(&self, member: Member) -> Result<()> {
        let templates = self.claim_templates().await?;
        if templates.is_empty() {
            bail!("the StatefulSet has no volumeClaimTemplates: its members keep no data of their own");
        }
        for template in templates {
            let name = format!("{template}-{}", self.env.members.pod(member));
            let claim = self.claims().get_opt(&name).await?.with_context(|| format!("claim {name} is gone"))?;
            let phase = claim.status.and_then(|status| status.phase).unwrap_or_default();
            if phase != "Bound" {
                bail!("claim {name} is {phase:?}, not Bound");
            }
        }
        Ok(())
    }

    /// Each member's data directories, as its server reports them, lie on
    /// volumes its claims back (when the system can say where they are).
    async fn expect_data_on_claims(&self) -> Result<()> {
        let env = self.env;
        for member in env.ordinals().await? {
            let Some(directories) = env.system.data_directories(member).await? else { return Ok(()) };
            let pod = env.members.pods.get(&env.members.pod(member)).await?;
            storage::data_on_claims(&pod.name_any(), &directories, &mounts(&pod, &env.suite.members.container))
                .map_err(|why| anyhow!(why))?;
        }
        Ok(())
    }

    /// The remembered claims are back, bound to the same volumes: decided as
    /// soon as a claim shows it was recreated or moved, without waiting for
    /// the members to be ready.
    async fn expect_same_storage(&self, within: Duration) -> Result<()> {
        let before = self.state.storage.as_ref().context("no storage remembered")?;
        if before.is_empty() {
            bail!("the StatefulSet has no volumeClaimTemplates: its members keep no data of their own");
        }
        wait::until("the remembered claims, bound to the same volumes", within, || async {
            Ok(match storage::compare(before, &self.storage_snapshot().await?) {
                storage::Comparison::Same => Probe::Done(()),
                storage::Comparison::NotYet(seen) => Probe::Pending(seen),
                storage::Comparison::Differs(why) => Probe::Never(why),
            })
        })
        .await?;
        Ok(())
    }

    async fn storage_snapshot(&self) -> Result<storage::StorageSnapshot> {
        let env = self.env;
        let templates = self.claim_templates().await?;
        let claims = self.claims();
        let mut snapshot = BTreeMap::new();
        for member in env.ordinals().await? {
            for template in &templates {
                let name = format!("{template}-{}", env.members.pod(member));
                // A missing claim is left out, for the comparison to name.
                if let Some(claim) = claims.get_opt(&name).await.with_context(|| format!("reading claim {name}"))? {
                    let entry = storage::Claim {
                        uid: claim.metadata.uid.clone().unwrap_or_default(),
                        deleting: claim.metadata.deletion_timestamp.is_some(),
                        volume: claim.spec.and_then(|spec| spec.volume_name),
                    };
                    snapshot.insert(name, entry);
                }
            }
        }
        Ok(snapshot)
    }

    async fn exec(&self, member: Member, command: &[String], expect: Option<&OutputExpectation>) -> Result<()> {
        let pod = self.env.members.pod(member);
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let container = &self.env.suite.members.container;
        let stdout = exec::exec_ok(&self.env.members.pods, &pod, container, &command).await?;
        match expect.map(|expect| output_matches(expect, &stdout)).transpose()? {
            Some(false) => bail!(
                "{command:?} on {pod} printed {:?}, which does not {}",
                stdout.trim(),
                expect.map(describe_expectation).unwrap_or_default()
            ),
            _ => Ok(()),
        }
    }

    /// An evicted or failed member keeps serving until its pod is gone or
    /// unready; wait for that, within a bound.
    async fn expect_unavailable(&self, member: Member, within: Duration) -> Result<()> {
        let pods = &self.env.members.pods;
        let name = self.env.members.pod(member);
        wait::until_changed(&format!("{name} to stop serving"), within, self.env.observer.changes(), || async {
            Ok(match pods.get_opt(&name).await?.filter(pod_ready) {
                Some(pod) => Probe::Pending(format!("Ready on {:?}", pod.spec.and_then(|spec| spec.node_name))),
                None => Probe::Done(()),
            })
        })
        .await?;
        Ok(())
    }

    /// Signals the member's server; a freeze is a fault, undone (thawed) at
    /// the end of the test unless the probe replaced the process by then.
    async fn signal(&mut self, member: Member, signal: ProcessSignal) -> Result<()> {
        let env = self.env;
        let container = &env.suite.members.container;
        let pod = env.members.pods.get(&env.members.pod(member)).await?;
        let restarts = restart_count(&pod, container);
        self.state.restarts_before.insert(member, restarts);
        let name = match signal {
            ProcessSignal::Kill => "KILL",
            ProcessSignal::Stop => "STOP",
        };
        if signal == ProcessSignal::Stop {
            self.fault(Fault::Frozen {
                namespace: env.namespace.clone(),
                pod: pod.name_any(),
                uid: pod.uid().unwrap_or_default(),
                container: container.clone(),
                restarts,
            })?;
        }
        faults::signal_pod(&env.cluster, &pod, container, name).await
    }

    async fn expect_restart(&self, member: Member, within: Duration) -> Result<()> {
        let env = self.env;
        let before = self.state.restarts_before[&member];
        let pod_name = env.members.pod(member);
        let changes = env.observer.changes();
        wait::until_changed(&format!("{pod_name}'s container to be restarted"), within, changes, || async {
            let pod = env.members.pods.get(&pod_name).await?;
            let now = restart_count(&pod, &env.suite.members.container);
            Ok(if now > before { Probe::Done(()) } else { Probe::Pending(format!("restartCount still {now}")) })
        })
        .await?;
        Ok(())
    }

    async fn placement(&self) -> Result<BTreeMap<String, Option<String>>> {
        let mut placement = BTreeMap::new();
        for member in self.env.ordinals().await? {
            let name = self.env.members.pod(member);
            let pod = self.env.members.pods.get(&name).await?;
            placement.insert(name, pod.spec.and_then(|spec| spec.node_name));
        }
        Ok(placement)
    }

    async fn node_of(&self, member: Member) -> Result<String> {
        let pod: Pod = self.env.members.pods.get(&self.env.members.pod(member)).await?;
        pod.spec.and_then(|spec| spec.node_name).with_context(|| format!("member {member} is not on a node"))
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.env.cluster.client.clone())
    }

    async fn drain(&mut self, member: Member, expect: DrainOutcome) -> Result<()> {
        let node = self.node_of(member).await?;
        let pod = self.env.members.pod(member);
        let evicting = Api::<Pod>::namespaced(self.env.cluster.literal_client.clone(), &self.env.namespace);
        self.fault(Fault::Cordoned(node.clone()))?;
        let outcomes = faults::drain(&self.nodes(), &evicting, &node).await?;
        let outcome = outcomes.into_iter().find(|(name, _)| *name == pod).map(|(_, outcome)| outcome);
        match (expect, outcome) {
            (DrainOutcome::Evicted, Some(Eviction::Granted)) => Ok(()),
            (DrainOutcome::Evicted, Some(Eviction::RefusedByBudget(why))) => {
                bail!("evicting {pod} from {node} was refused: {why}")
            }
            (DrainOutcome::RefusedByPdb, Some(Eviction::RefusedByBudget(_))) => Ok(()),
            (DrainOutcome::RefusedByPdb, Some(Eviction::Granted)) => {
                bail!("evicting {pod} from {node} was granted: {}", self.budgets_described().await)
            }
            (_, None) => bail!("{pod} was not on node {node} when it was drained"),
        }
    }

    async fn expect_node_down(&self, member: Member, within: Duration) -> Result<()> {
        let node = self.node_of(member).await?;
        let nodes = self.nodes();
        wait::until_changed(
            &format!("node {node} to be marked not Ready"),
            within,
            self.env.observer.changes(),
            || async {
                let status = node_ready_status(&nodes.get(&node).await?);
                Ok(if status == "True" { Probe::Pending("still Ready".into()) } else { Probe::Done(()) })
            },
        )
        .await?;
        Ok(())
    }

    /// Undoes the faults this test made that `select` picks, most recent
    /// first; fails naming those whose undo failed (they stay recorded).
    async fn undo_faults(&mut self, select: fn(&Fault) -> bool) -> Result<()> {
        let undone = self.ledger.undo(Some(&self.label), select, self.defaults().node_within).await;
        let mut failed = Vec::new();
        for outcome in undone {
            match &outcome.result {
                Ok(()) => self.record_fault(&outcome.fault, FaultPhase::Undone, None),
                Err(error) => {
                    self.record_fault(&outcome.fault, FaultPhase::UndoFailed, Some(format!("{error:#}")));
                    failed.push(format!("{error:#}"));
                }
            }
        }
        if failed.is_empty() { Ok(()) } else { bail!("{}", failed.join("; ")) }
    }
}

/// Whether a command's output is what the step expects.
fn output_matches(expect: &OutputExpectation, output: &str) -> Result<bool> {
    let output = output.trim();
    Ok(match expect {
        OutputExpectation::Equals(text) => output == text.trim(),
        OutputExpectation::Line(text) => output.lines().any(|line| line.trim_end_matches('\r') == text),
        OutputExpectation::Matches(pattern) => regex::Regex::new(&format!("^(?:{pattern})$"))?.is_match(output),
    })
}

fn describe_expectation(expect: &OutputExpectation) -> String {
    match expect {
        OutputExpectation::Equals(text) => format!("equal {text:?}"),
        OutputExpectation::Line(text) => format!("have a line {text:?}"),
        OutputExpectation::Matches(pattern) => format!("match /{pattern}/ as a whole"),
    }
}

/// The volumes mounted into `container` of `pod`, and whether a claim backs each.
fn mounts(pod: &Pod, container: &str) -> Vec<storage::Mount> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    let claimed =
        |volume: &str| spec.volumes.iter().flatten().any(|v| v.name == volume && v.persistent_volume_claim.is_some());
    let container = spec.containers.iter().find(|c| c.name == container);
    let mounted = container.and_then(|c| c.volume_mounts.as_ref()).into_iter().flatten();
    mounted
        .map(|m| storage::Mount { path: m.mount_path.clone(), volume: m.name.clone(), claimed: claimed(&m.name) })
        .collect()
}

/// Whether a test that touches nodes is done with them once step `index`
/// passed: no node step after it, and none of its node faults in force.
fn done_with_nodes(steps: &[Step], index: usize, node_faults_in_force: bool) -> bool {
    let last_node_step = steps.iter().rposition(Step::touches_nodes);
    last_node_step.is_some_and(|last| index >= last) && !node_faults_in_force
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_is_done_with_nodes_after_its_last_node_step_once_they_are_back() {
        let member = |ordinal| MemberRef::Ordinal(ordinal);
        let steps = [
            Step::Drain { member: 0, expect: DrainOutcome::Evicted },
            Step::Uncordon,
            Step::StopNode { member: member(2) },
            Step::ExpectNodeDown { member: member(2), within: None },
            Step::StartNodes,
            Step::WaitReady,
        ];
        assert!(!done_with_nodes(&steps, 1, false), "a node is still to be stopped");
        assert!(!done_with_nodes(&steps, 3, true), "the node is down");
        assert!(done_with_nodes(&steps, 4, false));
        assert!(done_with_nodes(&steps, 5, false));
        assert!(!done_with_nodes(&steps, 5, true), "a cordon still in force");
        assert!(!done_with_nodes(&[Step::WaitReady], 0, false), "a test that never touched nodes");
    }

    #[test]
    fn output_expectations_are_exact_not_substrings() {
        let properties = "version=0\nbroker.id=11\ncluster.id=x\n";
        assert!(!output_matches(&OutputExpectation::Line("broker.id=1".into()), properties).unwrap());
        assert!(output_matches(&OutputExpectation::Line("broker.id=11".into()), properties).unwrap());
        assert!(output_matches(&OutputExpectation::Equals("world".into()), "world\n").unwrap());
        assert!(!output_matches(&OutputExpectation::Equals("world".into()), "hello world\n").unwrap());
        let ten = (0..10).map(|n| format!("m-{n:06}\n")).collect::<String>();
        let pattern = OutputExpectation::Matches(r"(m-\d{6}\n?){10}".into());
        assert!(output_matches(&pattern, &ten).unwrap());
        assert!(!output_matches(&pattern, &format!("{ten}m-\n")).unwrap(), "anchored at both ends");
        assert!(!output_matches(&OutputExpectation::Matches("m-".into()), &ten).unwrap());
    }
}
