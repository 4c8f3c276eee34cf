//! What a suite file says, as types. A suite names the fixture to apply, the
//! cluster to run on, the system adapter and its parameters, and per test a
//! list of steps from a small vocabulary.

use serde::Deserialize;
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
    pub system: SystemKind,
    pub params: Params,
    #[serde(default)]
    pub deploy: Deploy,
    pub tests: Vec<TestSpec>,
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
    "default".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    Zookeeper,
    Kafka,
    /// BookKeeper bookies (the members) behind a Pulsar broker.
    Pulsar,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Params {
    /// The StatefulSet under test; members are its pods `<name>-<ordinal>`.
    pub statefulset: String,
    /// The container of the system's server in each member pod.
    pub container: String,
    /// Port of the system's client protocol in the member pods.
    pub client_port: u16,
    #[serde(default, with = "duration_opt")]
    pub ready_timeout: Option<Duration>,
    /// A StatefulSet the system's clients talk to when its members are not
    /// the ones they talk to (Pulsar: the brokers in front of the bookies).
    #[serde(default)]
    pub front: Option<Front>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Front {
    pub statefulset: String,
    pub port: u16,
}

impl Params {
    pub fn ready_timeout(&self) -> Duration {
        self.ready_timeout.unwrap_or(Duration::from_secs(360))
    }
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
    /// `failure` for a known defect: the test passes when its steps fail,
    /// reporting what was observed, and fails when they unexpectedly pass.
    #[serde(default)]
    pub expect: Expectation,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Expectation {
    #[default]
    Pass,
    Failure,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub enum Step {
    /// Write `value` at `key` through the system's client on `member`.
    Write { member: Member, key: String, value: String },
    /// Read `key` on `member` until it equals `expect`; with `unchanged`, the
    /// record must also be the very version this test wrote (same zxid).
    Read {
        member: Member,
        key: String,
        expect: String,
        #[serde(default)]
        unchanged: bool,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// Wait (up to the suite's ready-timeout) for the StatefulSet rollout
    /// and the system's own health signal.
    WaitReady,
    /// Every member's pod Running and Ready within the time; if not, the
    /// failure says what each member does instead (Pending and why, crash
    /// looping with its last termination and previous logs).
    ExpectRolledOut {
        #[serde(with = "duration")]
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
    /// Run a command in the member's server container; it must exit 0 and,
    /// with `expect-output`, print that text.
    Exec {
        member: Member,
        command: Vec<String>,
        #[serde(default, rename = "expect-output")]
        expect_output: Option<String>,
    },
    /// The member's pod turns not Ready (or is gone): it no longer serves.
    ExpectUnavailable {
        member: MemberRef,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// Send a signal to the server process of `member` (KILL, or STOP to freeze it).
    Signal { member: MemberRef, signal: ProcessSignal },
    /// The member's server container was restarted since the last `signal` step.
    ExpectRestart {
        member: MemberRef,
        #[serde(default, with = "duration_opt")]
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
    /// Stop the node (container) that runs `member`.
    StopNode { member: MemberRef },
    /// The cluster has noticed: the node of `member` is no longer Ready.
    ExpectNodeDown {
        member: MemberRef,
        #[serde(default, with = "duration_opt")]
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
    /// Produce `messages` uniquely identified messages through `via`,
    /// recording every send and its outcome in the test's history.
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
        via: Member,
        rate: u32,
        #[serde(default)]
        acks: Acks,
    },
    /// Stop the background producer and wait for its last outcomes.
    StopTraffic,
    /// Let time pass: traffic before a fault, or after it, is the point.
    Pause {
        #[serde(with = "duration")]
        duration: Duration,
    },
    /// Read the topic from the beginning through `via` up to its end, into
    /// the test's history (replacing what an earlier read saw).
    Consume {
        topic: String,
        #[serde(default)]
        via: Option<Member>,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// Judge the history: every acknowledged message read, none twice (unless
    /// allowed), in order per partition, nothing read that was never sent.
    CheckDelivery {
        #[serde(default)]
        duplicates: Duplicates,
        #[serde(default)]
        loss: Loss,
    },
    /// Every partition of the topic has all its replicas in sync.
    ExpectInSync {
        topic: String,
        #[serde(default, with = "duration_opt")]
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
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// The member's pod no longer exists.
    ExpectGone {
        member: Member,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// The brokers registered with the cluster are exactly `ids`, each
    /// served by the member of the same ordinal.
    ExpectBrokers {
        ids: Vec<i32>,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
}

impl Step {
    /// Whether the step aims at the member a `remember-leader` found.
    pub fn targets_leader(&self) -> bool {
        let member = match self {
            Step::DeletePod { member, .. }
            | Step::ExpectUnavailable { member, .. }
            | Step::Signal { member, .. }
            | Step::ExpectRestart { member, .. }
            | Step::StopNode { member }
            | Step::ExpectNodeDown { member, .. } => member,
            _ => return false,
        };
        *member == MemberRef::Leader
    }
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

mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        humantime::parse_duration(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

mod duration_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom)).transpose()
    }
}
