//! System adapters: how stateproof writes to, reads from and judges the
//! health of each system under test, as its own clients would. A system is
//! a folder here that exports a [`SystemKind`]: its name, what it offers
//! (the capabilities steps need) and how to build its adapter from the
//! suite's members and typed parameters. The runner knows systems only
//! through the traits below; the folders are found by the build script, so
//! that adding a system touches no file outside its own folder.

pub mod gateway;
pub mod reach;

include!(concat!(env!("OUT_DIR"), "/systems.rs"));

use crate::history::{Millis, Offset, PartitionRead, Position, SendReport};
use crate::suite::{Acks, Capability, Member};
use anyhow::{Context, Result};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use reach::Reach;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A kind of system a suite can name (`system: kafka`).
pub struct SystemKind {
    pub name: &'static str,
    /// What its adapter offers; a suite whose steps need more is refused
    /// when it is loaded.
    pub offers: &'static [Capability],
    /// Checks the suite's `params` (typed, unknown keys refused).
    pub check_params: fn(&serde_json::Value) -> Result<()>,
    /// Builds the adapter for the members from the suite's `params`.
    pub build: fn(&Members, &serde_json::Value) -> Result<Box<dyn System>>,
}

impl SystemKind {
    pub fn named(name: &str) -> Option<&'static SystemKind> {
        kinds().into_iter().find(|kind| kind.name == name)
    }

    pub fn names() -> Vec<&'static str> {
        kinds().into_iter().map(|kind| kind.name).collect()
    }

    pub fn offers(&self) -> BTreeSet<Capability> {
        self.offers.iter().copied().collect()
    }
}

/// Reads a system's typed parameters from the suite's `params`.
pub fn params<T: serde::de::DeserializeOwned>(system: &str, value: &serde_json::Value) -> Result<T> {
    let value = if value.is_null() { serde_json::Value::Object(Default::default()) } else { value.clone() };
    serde_json::from_value(value).with_context(|| format!("params of a {system} suite"))
}

/// What a member's client reports about a record: its value and the
/// system's own version of it (ZooKeeper: the mzxid; etcd: the mod revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub version: i64,
}

/// Where the members are: pods `<statefulset>-<ordinal>` of one namespace,
/// the system's server in `container`.
#[derive(Clone)]
pub struct Members {
    pub pods: Api<Pod>,
    pub statefulset: String,
    pub container: String,
}

impl Members {
    pub fn pod(&self, member: Member) -> String {
        format!("{}-{member}", self.statefulset)
    }

    /// The member a pod of the StatefulSet is, from its name.
    pub fn ordinal(&self, pod: &str) -> Option<Member> {
        pod.strip_prefix(&self.statefulset)?.strip_prefix('-')?.parse().ok()
    }

    pub fn reach(&self, port: u16) -> Reach {
        Reach::PortForward { pods: Box::new(self.pods.clone()), statefulset: self.statefulset.clone(), port }
    }
}

/// A system under test, as the runner sees it.
#[async_trait]
pub trait System: Send + Sync {
    /// The system's own verdict on whether all `members` (the StatefulSet's
    /// ordinals) serve together; `Err(why)` while they do not.
    async fn health(&self, members: &[Member]) -> Result<Result<(), String>>;

    fn key_value(&self) -> Option<&dyn KeyValue> {
        None
    }

    fn log(&self) -> Option<&dyn Log> {
        None
    }

    fn replicated_log(&self) -> Option<&dyn ReplicatedLog> {
        None
    }

    fn bookies(&self) -> Option<&dyn Bookies> {
        None
    }

    /// The directories where the server on `member` keeps its data, as the
    /// server itself reports them; `None` when the system cannot say.
    async fn data_directories(&self, _member: Member) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// Files the system adds to a failed test's diagnostics: name and text.
    async fn diagnostics(&self, _members: &[Member]) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Records written and read on a chosen member.
#[async_trait]
pub trait KeyValue: Send + Sync {
    async fn write(&self, member: Member, key: &str, value: &str) -> Result<Record>;
    /// The record as `member` serves it, after every write committed before
    /// the read began (a linearizable or synced read).
    async fn read(&self, member: Member, key: &str) -> Result<Option<Record>>;
}

/// What a producer is asked to send: `count` messages numbered from `first`.
#[derive(Debug, Clone, Copy)]
pub struct Produce<'a> {
    pub topic: &'a str,
    /// The member to bootstrap through, where the system has that choice.
    pub via: Option<Member>,
    pub acks: Acks,
    pub first: u64,
    pub count: u64,
}

/// A producer sending `rate` messages a second until stopped.
#[derive(Debug, Clone, Copy)]
pub struct Traffic<'a> {
    pub topic: &'a str,
    pub via: Option<Member>,
    pub acks: Acks,
    pub first: u64,
    pub rate: u32,
}

/// What a read from the beginning found: every record with where it sits
/// and when it was read, how far it got per partition, and how long it
/// fetched (from the assignment to the last record).
pub struct Reading {
    pub records: Vec<(String, Position, Millis)>,
    pub partitions: Vec<PartitionRead>,
    pub fetching: Duration,
}

/// A system whose clients produce to and consume from topics.
#[async_trait]
pub trait Log: Send + Sync {
    /// Sends and returns every send with its outcome, in send order.
    async fn produce(&self, produce: Produce<'_>) -> Result<Vec<SendReport>>;

    async fn start_traffic(&self, traffic: Traffic<'_>) -> Result<Box<dyn Running>>;

    /// Reads `topic` from its beginning with a new consumer, up to the end
    /// it had when the read began and at least every position in `acked`
    /// (per partition, the highest acknowledged), until `within` is up.
    /// Positions acknowledged but never offered for reading are not an
    /// error: the partitions say how far the log went. A read that stops
    /// short of what the log offered is one.
    async fn read(
        &self,
        topic: &str,
        via: Option<Member>,
        acked: &BTreeMap<i32, Offset>,
        within: Duration,
    ) -> Result<Reading>;
}

/// A producer at work in the background.
#[async_trait]
pub trait Running: Send + Sync {
    /// Stops it and returns every send with its outcome, in send order.
    async fn finish(self: Box<Self>) -> Result<Vec<SendReport>>;
}

/// One partition as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync: Vec<i32>,
}

impl PartitionState {
    pub fn fully_in_sync(&self) -> bool {
        let (mut replicas, mut in_sync) = (self.replicas.clone(), self.in_sync.clone());
        replicas.sort_unstable();
        in_sync.sort_unstable();
        !replicas.is_empty() && replicas == in_sync
    }
}

/// A log whose topics are partitioned and replicated across the members
/// (brokers), each member a numbered broker.
#[async_trait]
pub trait ReplicatedLog: Send + Sync {
    /// Each call reaches the cluster through any of `members`.
    async fn create_topic(&self, members: &[Member], topic: &str, partitions: i32, replication: i32) -> Result<()>;
    async fn partitions(&self, members: &[Member], topic: &str) -> Result<Vec<PartitionState>>;
    /// The member whose broker leads the partition.
    async fn leader(&self, members: &[Member], topic: &str, partition: i32) -> Result<Member>;
    /// Registered broker ids, each with the pod that serves it (None when
    /// it is none of the members).
    async fn brokers(&self, members: &[Member]) -> Result<BTreeMap<i32, Option<String>>>;
}

/// A bookie as its HTTP admin API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookie {
    pub member: Member,
    /// Running, neither read-only nor shutting down.
    pub writable: bool,
    /// The ledger disks' used and total bytes (the journal's not counted).
    pub used: u64,
    pub total: u64,
}

impl Bookie {
    pub fn usage(&self) -> f64 {
        if self.total == 0 { 1.0 } else { self.used as f64 / self.total as f64 }
    }
}

/// The bookies of a BookKeeper cluster, as autoscaling suites watch and
/// drive them.
#[async_trait]
pub trait Bookies: Send + Sync {
    /// Each member that answers, with its state and disk usage.
    async fn bookies(&self, members: &[Member]) -> Result<Vec<Bookie>>;
    async fn set_read_only(&self, member: Member, read_only: bool) -> Result<()>;
    /// Fills the member's ledger disk to `usage` (0 to 1) with a file of its
    /// own; `None` removes the file.
    async fn fill_disk(&self, member: Member, usage: Option<f64>) -> Result<()>;
    /// Every ledger, with the pods whose bookies its metadata names.
    async fn ledgers(&self, members: &[Member]) -> Result<BTreeMap<u64, BTreeSet<String>>>;
    /// The pods whose bookies have a cookie (a registered identity).
    async fn cookies(&self) -> Result<BTreeSet<String>>;
    /// The elected auditor's bookie id, as a bookie reports it; none when
    /// no auditor is elected.
    async fn auditor(&self, members: &[Member]) -> Result<Option<String>>;
}
