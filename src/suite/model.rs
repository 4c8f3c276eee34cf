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
    /// Folder under `fixtures/` (or the user's override) holding the manifests.
    pub fixture: String,
    /// File stem under `kind-config/` used when stateproof creates the cluster.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    pub system: SystemKind,
    pub params: Params,
    pub tests: Vec<TestSpec>,
}

fn default_cluster() -> String {
    "default".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SystemKind {
    Zookeeper,
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
    pub steps: Vec<Step>,
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
    /// Record the claims and volumes of every member, to compare later.
    RememberStorage,
    /// Every member has the claims and volumes recorded before.
    ExpectSameStorage,
    /// Delete the StatefulSet (its claims stay) and wait until its pods are gone.
    DeleteStatefulset,
    /// Apply the fixture's manifests again.
    ApplyFixture,
    /// Delete one member's pod.
    DeletePod { member: Member },
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
        member: Member,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// Send a signal to the server process of `member` (KILL, or STOP to freeze it).
    Signal { member: Member, signal: ProcessSignal },
    /// The member's server container was restarted since the last `signal` step.
    ExpectRestart {
        member: Member,
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
    StopNode { member: Member },
    /// The cluster has noticed: the node of `member` is no longer Ready.
    ExpectNodeDown {
        member: Member,
        #[serde(default, with = "duration_opt")]
        within: Option<Duration>,
    },
    /// Start every node this test stopped and wait until it is Ready.
    StartNodes,
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

mod duration_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom)).transpose()
    }
}
