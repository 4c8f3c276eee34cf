//! What a suite file says, as types. A suite names the fixture to apply, the
//! cluster to run on, the system adapter with its members and parameters,
//! the defaults its steps use, and per test a list of steps from a small
//! vocabulary.

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Folders under `fixtures/` (or the user's overrides) holding the
    /// manifests, applied in this order: one name, or a list of them.
    #[serde(deserialize_with = "one_or_many")]
    pub fixture: Vec<String>,
    /// File stem under `kind-config/` used when stateproof creates the cluster.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// The system adapter (a folder under `src/systems/`).
    pub system: String,
    pub members: MembersSpec,
    /// The system's own parameters, typed by its adapter.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Timeouts and sizes the steps use when they do not say.
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub deploy: Deploy,
    /// Sample the bookies this often during every test (for
    /// `expect-autoscaling`).
    #[serde(default, with = "humantime_serde")]
    pub sampling: Option<Duration>,
    /// Each test starts from the state the one before leaves; after a
    /// failure, the later tests are not run (reported skipped, naming it).
    #[serde(default)]
    pub chained: bool,
    pub tests: Vec<TestSpec>,
}

/// The StatefulSet whose pods are the members under test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MembersSpec {
    /// Members are its pods `<name>-<ordinal>`.
    pub statefulset: String,
    /// The container of the system's server in each member pod.
    pub container: String,
}

/// Every timeout a step falls back on, in one place: what a suite's
/// `defaults:` overrides and `stateproof defaults` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Defaults {
    /// Rollout plus the system's own health: deploying, `wait-ready`, and
    /// before each test.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// A client's reads and writes, retried until then; also how long a
    /// member may take to stop serving or to be found Pending.
    #[serde(with = "humantime_serde")]
    pub client_within: Duration,
    /// A signalled server's container restarted.
    #[serde(with = "humantime_serde")]
    pub restart_within: Duration,
    /// A stopped node marked NotReady, a started one Ready.
    #[serde(with = "humantime_serde")]
    pub node_within: Duration,
    /// A deleted pod or StatefulSet gone.
    #[serde(with = "humantime_serde")]
    pub delete_within: Duration,
    /// A read of a topic to its end.
    #[serde(with = "humantime_serde")]
    pub consume_within: Duration,
    /// Every partition of a topic in sync.
    #[serde(with = "humantime_serde")]
    pub sync_within: Duration,
}

impl Defaults {
    /// The built-in defaults, as a suite's `defaults:` would write them.
    pub fn described() -> String {
        serde_saphyr::to_string(&Defaults::default()).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ready_timeout: Duration::from_secs(360),
            client_within: Duration::from_secs(60),
            restart_within: Duration::from_secs(180),
            node_within: Duration::from_secs(180),
            delete_within: Duration::from_secs(330),
            consume_within: Duration::from_secs(180),
            sync_within: Duration::from_secs(120),
        }
    }
}

/// How the suite's fixture is brought up before its first test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Deploy {
    /// Apply the StatefulSet under test with this many replicas instead of
    /// the fixture's.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// Wait until the system is healthy, at setup and before each test.
    /// `false` for a suite about a deployment that is not expected to get
    /// there (its tests say what it does instead).
    #[serde(default = "yes")]
    pub wait_ready: bool,
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy { replicas: None, wait_ready: true }
    }
}

fn yes() -> bool {
    true
}

fn default_cluster() -> String {
    crate::settings::DEFAULT_KIND_CONFIG.to_string()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TestSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// What the test disturbs beyond its own suite's pods: tests that stop or
    /// drain nodes never run while any other test runs.
    #[serde(default)]
    pub disrupts: Disruption,
    /// For a known defect: which step must fail, and how its message reads.
    #[serde(default)]
    pub expect: Expectation,
    pub steps: Vec<Step>,
}

/// `expect: {failure: {step: expect-rolled-out, matches: "Pending"}}`: the
/// test passes when exactly that step fails with a message the pattern
/// finds, and fails on any other outcome (another step failing, the setup
/// failing, every step passing).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Expectation {
    #[default]
    Pass,
    Failure(ExpectedFailure),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExpectedFailure {
    pub step: StepRef,
    /// A regular expression the failure's message must match.
    pub matches: String,
    /// The defect, in a few words, for the report to name when it shows.
    #[serde(default)]
    pub defect: Option<String>,
}

/// A step of a test: by its 1-based number, or by its kind when the test
/// has one step of that kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StepRef {
    Number(usize),
    Kind(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disruption {
    #[default]
    Suite,
    Nodes,
}

/// A member of the system: the StatefulSet pod with this ordinal.
pub type Member = u32;

/// A member named by its ordinal, or the member a `remember-leader` step
/// found (written `leader`): faults aimed at a role, not a fixed pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberRef {
    Ordinal(Member),
    Leader,
}

impl<'de> Deserialize<'de> for MemberRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Ordinal(Member),
            Name(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Ordinal(ordinal) => Ok(MemberRef::Ordinal(ordinal)),
            Written::Name(name) if name == "leader" => Ok(MemberRef::Leader),
            Written::Name(name) => {
                Err(serde::de::Error::custom(format!("member {name:?}: expected an ordinal or `leader`")))
            }
        }
    }
}

/// How a producer asks for acknowledgement (Kafka's `acks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acks {
    /// Every in-sync replica has the message (`acks=all`, idempotent).
    #[default]
    All,
    /// Only the partition leader has it (`acks=1`, the console producer's default).
    Leader,
}

/// Whether reading a message twice fails a delivery check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duplicates {
    /// Exactly once (idempotent producers, no redelivery).
    #[default]
    Forbidden,
    /// At least once: duplicates are reported, not failed.
    Allowed,
}

/// Whether losing an acknowledged message fails a delivery check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    #[default]
    Fails,
    /// A finding about the manifest, reported with the ids, the test still
    /// passing: for as-shipped settings known to permit loss.
    IsAFinding,
}

/// What a command's standard output must be (trimmed of surrounding space).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum OutputExpectation {
    /// Exactly this text.
    Equals(String),
    /// One of its lines is exactly this text.
    Line(String),
    /// This regular expression matches the whole output.
    Matches(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Step {
    /// Write `value` at `key` through the system's client on `member`.
    Write { member: Member, key: String, value: String },
    /// Read `key` on `member` until it equals `expect`; with `unchanged`, the
    /// record must also be the very version this test wrote.
    Read {
        member: Member,
        key: String,
        expect: String,
        #[serde(default)]
        unchanged: bool,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Wait (up to the suite's ready-timeout) for the StatefulSet rollout
    /// and the system's own health signal.
    WaitReady,
    /// Every member's pod Running and Ready within the time; if not, the
    /// failure says what each member does instead (Pending and why, crash
    /// looping with its last termination and previous logs).
    ExpectRolledOut {
        #[serde(with = "humantime_serde")]
        within: Duration,
    },
    /// Record the claims and volumes of every member, to compare later.
    RememberStorage,
    /// Every member has the claims and volumes recorded before.
    ExpectSameStorage,
    /// Delete the StatefulSet (its claims stay) and wait until its pods are gone.
    DeleteStatefulset,
    /// Apply the fixture's manifests again.
    ApplyFixture,
    /// Delete one member's pod; with `force`, at once, without waiting for
    /// its node to confirm (what an operator does for a pod on a dead node).
    DeletePod {
        member: MemberRef,
        #[serde(default)]
        force: bool,
    },
    /// Run a command in the member's server container; it must exit 0 and
    /// print what `expect` says.
    Exec {
        member: Member,
        command: Vec<String>,
        #[serde(default)]
        expect: Option<OutputExpectation>,
    },
    /// The member's pod turns not Ready (or is gone): it no longer serves.
    ExpectUnavailable {
        member: MemberRef,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Send a signal to the server process of `member` (KILL, or STOP to freeze it).
    Signal { member: MemberRef, signal: ProcessSignal },
    /// The member's server container was restarted since the last `signal` step.
    ExpectRestart {
        member: MemberRef,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Every member runs on a different node.
    ExpectSpread,
    /// The StatefulSet requires its members on different nodes.
    ExpectAntiAffinity,
    /// Cordon the node of `member` and evict the suite's pods from it.
    Drain { member: Member, expect: DrainOutcome },
    /// Uncordon every node this test cordoned.
    Uncordon,
    /// Stop the node that runs `member`.
    StopNode { member: MemberRef },
    /// The cluster has noticed: the node of `member` is no longer Ready.
    ExpectNodeDown {
        member: MemberRef,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Start every node this test stopped and wait until it is Ready.
    StartNodes,
    /// Set the StatefulSet's replicas (members join or leave).
    Scale { replicas: u32 },
    /// The claims of `member` still exist and are bound, whether or not its
    /// pod does (a scale-down keeps them).
    ExpectClaimsKept { member: Member },
    /// Find the current leader of a topic's partition and remember it as
    /// `leader`, for the steps that follow.
    RememberLeader { topic: String, partition: i32 },
    /// Create a topic through the system's admin API.
    CreateTopic {
        topic: String,
        partitions: i32,
        #[serde(rename = "replication-factor")]
        replication_factor: i32,
    },
    /// Produce `messages` uniquely identified messages (through `via`, where
    /// the system lets a client choose its way in), recording every send and
    /// its outcome in the test's history.
    Produce {
        topic: String,
        messages: u64,
        #[serde(default)]
        via: Option<Member>,
        #[serde(default)]
        acks: Acks,
    },
    /// Start producing in the background, `rate` messages a second, until
    /// `stop-traffic`; every send goes into the test's history.
    StartTraffic {
        topic: String,
        #[serde(default)]
        via: Option<Member>,
        rate: u32,
        #[serde(default)]
        acks: Acks,
    },
    /// Stop the background producer and wait for its last outcomes.
    StopTraffic,
    /// Over the last traffic, from its first send to its stop, no window
    /// without an acknowledgement was longer than `max-gap`.
    ExpectAvailable {
        #[serde(rename = "max-gap", with = "humantime_serde")]
        max_gap: Duration,
    },
    /// Let time pass: traffic before a fault, or after it, is the point.
    Pause {
        #[serde(with = "humantime_serde")]
        duration: Duration,
    },
    /// Read the topic from the beginning with a new consumer (through `via`
    /// where the system has that choice), to the end it had when the read
    /// began and at least every acknowledged position: one read pass of the
    /// test's history.
    Consume {
        topic: String,
        #[serde(default)]
        via: Option<Member>,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Judge the history against a read pass (the latest, or `pass`):
    /// every acknowledged message read, none twice (unless allowed), in
    /// order per partition, nothing read that was never sent.
    CheckDelivery {
        #[serde(default)]
        duplicates: Duplicates,
        #[serde(default)]
        loss: Loss,
        #[serde(default)]
        pass: Option<u32>,
    },
    /// Every partition of the topic has all its replicas in sync.
    ExpectInSync {
        topic: String,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Every member runs on a node the fixture's `LocalVolumes` made
    /// eligible, which the StatefulSet requires, and has `claims` claims,
    /// each bound to a local volume of that very node.
    ExpectLocalVolumes { claims: usize },
    /// Record every member's pod, node and restart count, to compare later.
    RememberMembers,
    /// The member runs on the node it ran on when remembered.
    ExpectSameNode { member: Member },
    /// The members still run in the pods remembered, never restarted.
    ExpectUndisturbed { members: Vec<Member> },
    /// The member's pod exists and the scheduler finds no node for it.
    ExpectPending {
        member: Member,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// The member's pod no longer exists.
    ExpectGone {
        member: Member,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// The brokers registered with the cluster are exactly `ids`, each
    /// served by the member of the same ordinal.
    ExpectBrokers {
        ids: Vec<i32>,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// Fill each member's ledger disk to `to` (a share, 0 to 1) with a file
    /// of the test's own; `to: 0` removes it.
    FillDisk { members: Vec<Member>, to: f64 },
    /// Set the member's bookie read-only (or, with `read-only: false`,
    /// writable) through its HTTP API, and wait until it says so.
    SetReadOnly {
        member: Member,
        #[serde(rename = "read-only", default = "yes")]
        read_only: bool,
    },
    /// The member's bookie becomes read-only (or, with `read-only: false`,
    /// writable) within the time, made so by something other than the test:
    /// BookKeeper's own disk checker, or an autoscaler's decommission.
    ExpectReadOnly {
        member: Member,
        #[serde(rename = "read-only", default = "yes")]
        read_only: bool,
        #[serde(with = "humantime_serde")]
        within: Duration,
    },
    /// A bookie reports an elected auditor (or, with `elected: false`, none:
    /// nothing then marks a ledger under-replicated, and an empty list of
    /// them vouches for nothing) within the time.
    ExpectAuditor {
        #[serde(default = "yes")]
        elected: bool,
        #[serde(with = "humantime_serde")]
        within: Duration,
    },
    /// The StatefulSet's replicas become `count` (an autoscaler's decision)
    /// within the time.
    ExpectReplicas {
        count: u32,
        #[serde(with = "humantime_serde")]
        within: Duration,
    },
    /// The StatefulSet's replicas stay `count` for the whole time.
    ExpectReplicasStay {
        count: u32,
        #[serde(rename = "for", with = "humantime_serde")]
        duration: Duration,
    },
    /// Record every ledger and the bookies it names, to compare later.
    RememberLedgers,
    /// Every remembered ledger still exists and names the same bookies:
    /// nothing was moved (rebalanced) or lost.
    ExpectLedgersKept,
    /// A ledger made since `remember-ledgers` names the member's bookie.
    ExpectNewLedgersOn {
        member: Member,
        #[serde(default, with = "humantime_serde")]
        within: Option<Duration>,
    },
    /// The samples the test has taken so far keep these invariants (the
    /// suite sets `sampling`); a failure names the first sample that broke one.
    ExpectAutoscaling(crate::checks::autoscaling::Invariants),
    /// Change a fixture object as it runs (`target: {kind, name}`, and
    /// `json` or `merge`, as in a variant).
    Patch(super::variant::PatchSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProcessSignal {
    #[serde(rename = "KILL")]
    Kill,
    #[serde(rename = "STOP")]
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrainOutcome {
    /// The member's eviction is granted.
    Evicted,
    /// The member's eviction is refused by its PodDisruptionBudget.
    RefusedByPdb,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
}
