//! Executing one test: its steps in order, each a call into the adapter,
//! the faults or the checkers; then undoing what the test did to nodes.

mod log;
mod members;

pub(super) use log::create_topic;

use super::env::SuiteEnv;
use crate::checks::delivery::History;
use crate::checks::{placement, storage};
use crate::faults::{
    self,
    ledger::{self, Ledger, NodeFault},
};
use crate::k8s::conditions::{node_ready_status, pod_ready, restart_count};
use crate::k8s::evict::Eviction;
use crate::k8s::exec;
use crate::report;
use crate::suite::{DrainOutcome, Member, MemberRef, ProcessSignal, Step, TestSpec};
use crate::systems::Record;
use crate::systems::kafka::Traffic;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::api::Api;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CLIENT_RETRY: Duration = Duration::from_secs(60);
const RESTART_TIMEOUT: Duration = Duration::from_secs(180);
const NODE_TIMEOUT: Duration = Duration::from_secs(180);
const DELETE_TIMEOUT: Duration = Duration::from_secs(330);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(180);
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// What a test has observed and done so far.
#[derive(Default)]
struct TestState {
    written: HashMap<String, Record>,
    storage: Option<storage::StorageSnapshot>,
    restarts_before: HashMap<Member, i32>,
    /// Pods whose server this test froze, thawed when the test ends.
    frozen: Vec<Pod>,
    /// The member a `remember-leader` step found.
    leader: Option<Member>,
    /// Every message produced and read, for the delivery check.
    history: History,
    /// The number the next produced message gets (ids are unique per test).
    next_message: u64,
    /// How many producers this test started (each is one in the history).
    producers: u32,
    /// The background producer, with its number.
    traffic: Option<(u32, Traffic)>,
    /// Members as a `remember-members` step found them.
    members: HashMap<Member, members::MemberSnapshot>,
}

/// What a test came to: its result, what it found about the system that its
/// expectations do not fail on, and where its diagnostics are.
pub struct TestReport {
    pub result: Result<()>,
    pub findings: Vec<String>,
    pub diagnostics: Option<PathBuf>,
}

pub struct TestRun<'a> {
    env: &'a SuiteEnv,
    ledger: &'a Ledger,
    label: String,
    state: TestState,
    findings: Vec<String>,
}

impl<'a> TestRun<'a> {
    pub fn new(env: &'a SuiteEnv, ledger: &'a Ledger, spec: &TestSpec) -> Self {
        TestRun {
            env,
            ledger,
            label: format!("{}::{}", env.suite.name, spec.name),
            state: TestState::default(),
            findings: Vec::new(),
        }
    }

    /// Runs every step, stopping at the first failure; on a failure, the
    /// cluster is captured into `diagnostics` before the test's faults are
    /// undone, so that it shows the state that failed.
    pub async fn run(mut self, spec: &TestSpec, diagnostics: &Path) -> TestReport {
        let total = spec.steps.len();
        let mut outcome = Ok(());
        for (index, step) in spec.steps.iter().enumerate() {
            let started = Instant::now();
            eprintln!("[{}] step {}/{total}: {step}", self.label, index + 1);
            if let Err(error) = self.step(step).await {
                eprintln!(
                    "[{}] step {}/{total} FAILED after {:.1}s",
                    self.label,
                    index + 1,
                    started.elapsed().as_secs_f64()
                );
                outcome = Err(error.context(format!("step {}/{total} ({step})", index + 1)));
                break;
            }
            eprintln!("[{}] step {}/{total} ok ({:.1}s)", self.label, index + 1, started.elapsed().as_secs_f64());
        }
        let captured =
            if outcome.is_err() || !self.findings.is_empty() { self.capture(diagnostics).await } else { None };
        let cleanup = self.undo_faults().await;
        let result = match (outcome, cleanup) {
            (Err(error), _) => Err(error),
            (Ok(()), Err(error)) => Err(error.context("cleaning up after the test")),
            (Ok(()), Ok(())) => Ok(()),
        };
        TestReport { result, findings: self.findings, diagnostics: captured }
    }

    /// The cluster's state, and the system's own view of itself: for a log,
    /// its topics (leaders, replicas, in-sync replicas) and this test's
    /// delivery history.
    async fn capture(&self, dir: &Path) -> Option<PathBuf> {
        let env = self.env;
        let captured = report::diagnostics::capture(&env.cluster.client, &env.namespace, dir).await?;
        if let Ok(kafka) = env.adapter.kafka() {
            let topics = match kafka.describe_topics(env.replicas().await.unwrap_or(1)).await {
                Ok(text) => text,
                Err(error) => format!("cannot describe the topics: {error:#}\n"),
            };
            let _ = std::fs::write(captured.join("topics.txt"), topics);
            if let Err(error) = self.state.history.write_jsonl(&captured.join("history.jsonl")) {
                eprintln!("stateproof: {error:#}");
            }
        }
        Some(captured)
    }

    async fn step(&mut self, step: &Step) -> Result<()> {
        let env = self.env;
        match step {
            Step::Write { member, key, value } => {
                let record = wait::until(&format!("a write on member {member} to succeed"), CLIENT_RETRY, || async {
                    Ok(Probe::Done(env.adapter.write(*member, key, value).await?))
                })
                .await?;
                self.state.written.insert(key.clone(), record);
            }
            Step::Read { member, key, expect, unchanged, within } => {
                let written = if *unchanged {
                    Some(self.state.written.get(key).cloned().ok_or_else(|| anyhow!("this test never wrote {key}"))?)
                } else {
                    None
                };
                self.read(*member, key, expect, written.as_ref(), within.unwrap_or(CLIENT_RETRY)).await?;
            }
            Step::WaitReady => env.wait_ready(env.suite.params.ready_timeout()).await?,
            Step::ExpectRolledOut { within } => self.expect_rolled_out(*within).await?,
            Step::RememberStorage => self.state.storage = Some(self.storage_snapshot().await?),
            Step::ExpectSameStorage => {
                let before = self.state.storage.as_ref().context("no storage remembered")?;
                if before.is_empty() {
                    bail!("the StatefulSet has no volumeClaimTemplates: its members keep no data of their own");
                }
                storage::same_storage(before, &self.storage_snapshot().await?).map_err(|why| anyhow!(why))?;
            }
            Step::DeleteStatefulset => {
                faults::delete_statefulset(&env.sets, &env.members.pods, &env.suite.params.statefulset, DELETE_TIMEOUT)
                    .await?
            }
            Step::ApplyFixture => env.apply().await?,
            Step::DeletePod { member, force } => {
                let pod = env.members.pod(self.member(*member)?);
                faults::delete_pod(&env.members.pods, &pod, *force, DELETE_TIMEOUT).await?
            }
            Step::Exec { member, command, expect_output } => {
                self.exec(*member, command, expect_output.as_deref()).await?
            }
            Step::ExpectUnavailable { member, within } => {
                self.expect_unavailable(self.member(*member)?, within.unwrap_or(CLIENT_RETRY)).await?
            }
            Step::Signal { member, signal } => {
                let member = self.member(*member)?;
                let pod = env.members.pods.get(&env.members.pod(member)).await?;
                self.state.restarts_before.insert(member, restart_count(&pod, &env.suite.params.container));
                let name = match signal {
                    ProcessSignal::Kill => "KILL",
                    ProcessSignal::Stop => "STOP",
                };
                faults::signal(&env.cluster, &pod, &env.suite.params.container, name).await?;
                if *signal == ProcessSignal::Stop {
                    self.state.frozen.push(pod);
                }
            }
            Step::ExpectRestart { member, within } => {
                self.expect_restart(self.member(*member)?, within.unwrap_or(RESTART_TIMEOUT)).await?
            }
            Step::ExpectSpread => {
                placement::spread_across_nodes(&self.placement().await?).map_err(|why| anyhow!(why))?
            }
            Step::ExpectAntiAffinity => {
                let set = env.sets.get(&env.suite.params.statefulset).await?;
                placement::requires_anti_affinity(&set).map_err(|why| anyhow!(why))?;
            }
            Step::Drain { member, expect } => self.drain(*member, *expect).await?,
            Step::Uncordon => self.uncordon().await?,
            Step::StopNode { member } => {
                let node = self.node_of(self.member(*member)?).await?;
                // Recorded first: whatever happens next, the node gets started.
                self.ledger.record(&self.label, &env.cluster, NodeFault::Stopped(node.clone()));
                env.cluster.stop_node(&node).await?;
            }
            Step::ExpectNodeDown { member, within } => {
                self.expect_node_down(self.member(*member)?, within.unwrap_or(NODE_TIMEOUT)).await?
            }
            Step::StartNodes => self.start_nodes().await?,
            Step::Scale { replicas } => faults::scale(&env.sets, &env.suite.params.statefulset, *replicas).await?,
            Step::ExpectClaimsKept { member } => self.expect_claims_kept(*member).await?,
            Step::Pause { duration } => tokio::time::sleep(*duration).await,
            Step::ExpectLocalVolumes { claims } => self.expect_local_volumes(*claims).await?,
            Step::RememberMembers => self.remember_members().await?,
            Step::ExpectSameNode { member } => self.expect_same_node(*member).await?,
            Step::ExpectUndisturbed { members } => self.expect_undisturbed(members).await?,
            Step::ExpectPending { member, within } => {
                self.expect_pending(*member, within.unwrap_or(CLIENT_RETRY)).await?
            }
            Step::ExpectGone { member, within } => self.expect_gone(*member, within.unwrap_or(DELETE_TIMEOUT)).await?,
            other => self.log_step(other).await?,
        }
        Ok(())
    }

    fn member(&self, target: MemberRef) -> Result<Member> {
        match target {
            MemberRef::Ordinal(member) => Ok(member),
            MemberRef::Leader => self.state.leader.context("no leader remembered yet"),
        }
    }

    async fn read(
        &self,
        member: Member,
        key: &str,
        expect: &str,
        written: Option<&Record>,
        within: Duration,
    ) -> Result<()> {
        let adapter = &self.env.adapter;
        wait::until(&format!("{key} = {expect:?} on member {member}"), within, || async {
            Ok(match adapter.read(member, key).await? {
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
        let set = self.env.sets.get(&self.env.suite.params.statefulset).await?;
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

    async fn storage_snapshot(&self) -> Result<storage::StorageSnapshot> {
        let env = self.env;
        let templates = self.claim_templates().await?;
        let claims = self.claims();
        let mut snapshot = BTreeMap::new();
        for member in 0..env.replicas().await? {
            for template in &templates {
                let name = format!("{template}-{}", env.members.pod(member));
                // A missing claim is left out, for the comparison to name.
                if let Some(claim) = claims.get_opt(&name).await.with_context(|| format!("reading claim {name}"))? {
                    let entry = storage::Claim {
                        uid: claim.metadata.uid.clone().unwrap_or_default(),
                        volume: claim.spec.and_then(|spec| spec.volume_name),
                    };
                    snapshot.insert(name, entry);
                }
            }
        }
        Ok(snapshot)
    }

    async fn exec(&self, member: Member, command: &[String], expect_output: Option<&str>) -> Result<()> {
        let pod = self.env.members.pod(member);
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        let stdout = exec::exec_ok(&self.env.members.pods, &pod, &self.env.suite.params.container, &command).await?;
        match expect_output {
            Some(text) if !stdout.contains(text) => {
                bail!("{command:?} on {pod} did not print {text:?}; it printed: {}", stdout.trim())
            }
            _ => Ok(()),
        }
    }

    /// An evicted or failed member keeps serving until its pod is gone or
    /// unready; wait for that, within a bound.
    async fn expect_unavailable(&self, member: Member, within: Duration) -> Result<()> {
        let pods = &self.env.members.pods;
        let name = self.env.members.pod(member);
        wait::until(&format!("{name} to stop serving"), within, || async {
            Ok(match pods.get_opt(&name).await?.filter(pod_ready) {
                Some(pod) => Probe::Pending(format!("Ready on {:?}", pod.spec.and_then(|spec| spec.node_name))),
                None => Probe::Done(()),
            })
        })
        .await?;
        Ok(())
    }

    async fn expect_restart(&self, member: Member, within: Duration) -> Result<()> {
        let env = self.env;
        let before = self.state.restarts_before[&member];
        let pod_name = env.members.pod(member);
        wait::until(&format!("{pod_name}'s container to be restarted"), within, || async {
            let pod = env.members.pods.get(&pod_name).await?;
            let now = restart_count(&pod, &env.suite.params.container);
            Ok(if now > before { Probe::Done(()) } else { Probe::Pending(format!("restartCount still {now}")) })
        })
        .await?;
        Ok(())
    }

    async fn placement(&self) -> Result<BTreeMap<String, Option<String>>> {
        let mut placement = BTreeMap::new();
        for member in 0..self.env.replicas().await? {
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
        let outcomes = faults::drain(&self.nodes(), &evicting, &node).await;
        self.ledger.record(&self.label, &self.env.cluster, NodeFault::Cordoned(node.clone()));
        let outcome = outcomes?.into_iter().find(|(name, _)| *name == pod).map(|(_, outcome)| outcome);
        match (expect, outcome) {
            (DrainOutcome::Evicted, Some(Eviction::Granted)) => Ok(()),
            (DrainOutcome::Evicted, Some(Eviction::RefusedByBudget(why))) => {
                bail!("evicting {pod} from {node} was refused: {why}")
            }
            (DrainOutcome::RefusedByPdb, Some(Eviction::RefusedByBudget(_))) => Ok(()),
            (DrainOutcome::RefusedByPdb, Some(Eviction::Granted)) => {
                bail!("evicting {pod} from {node} was granted: no PodDisruptionBudget protects the ensemble's quorum")
            }
            (_, None) => bail!("{pod} was not on node {node} when it was drained"),
        }
    }

    async fn expect_node_down(&self, member: Member, within: Duration) -> Result<()> {
        let node = self.node_of(member).await?;
        let nodes = self.nodes();
        wait::until(&format!("node {node} to be marked not Ready"), within, || async {
            let status = node_ready_status(&nodes.get(&node).await?);
            Ok(if status == "True" { Probe::Pending("still Ready".into()) } else { Probe::Done(()) })
        })
        .await?;
        Ok(())
    }

    async fn uncordon(&mut self) -> Result<()> {
        self.undo_node_faults(|fault| matches!(fault, NodeFault::Cordoned(_))).await
    }

    async fn start_nodes(&mut self) -> Result<()> {
        self.undo_node_faults(|fault| matches!(fault, NodeFault::Stopped(_))).await
    }

    async fn undo_node_faults(&mut self, select: fn(&NodeFault) -> bool) -> Result<()> {
        let mut outcome = Ok(());
        for (cluster, fault) in self.ledger.take(Some(&self.label), select) {
            let undone = ledger::undo(&cluster, &fault, NODE_TIMEOUT).await;
            outcome = outcome.and(undone);
        }
        outcome
    }

    /// Whatever happened, nodes this test cordoned or stopped come back, and
    /// a server it froze runs again (if its probe has not replaced it yet).
    async fn undo_faults(&mut self) -> Result<()> {
        for pod in std::mem::take(&mut self.state.frozen) {
            let _ = faults::signal(&self.env.cluster, &pod, &self.env.suite.params.container, "CONT").await;
        }
        let uncordoned = self.uncordon().await;
        let started = self.start_nodes().await;
        uncordoned.and(started)
    }
}
