//! System adapters: how stateproof writes to, reads from and judges the
//! health of each system under test, as its own clients would.

pub mod gateway;
pub mod kafka;
pub mod pulsar;
pub mod reach;
pub mod zookeeper;

use crate::suite::{Front, Member, SystemKind};
use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use reach::Reach;

/// What a member's client reports about a record: its value and the
/// system's own version of it (ZooKeeper: the mzxid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub version: i64,
}

/// Where the members are: pods `<statefulset>-<ordinal>` of one namespace.
#[derive(Clone)]
pub struct Members {
    pub pods: Api<Pod>,
    pub statefulset: String,
    pub client_port: u16,
}

impl Members {
    pub fn pod(&self, member: Member) -> String {
        format!("{}-{member}", self.statefulset)
    }

    /// The member a pod of the StatefulSet is, from its name.
    pub fn ordinal(&self, pod: &str) -> Option<Member> {
        pod.strip_prefix(&self.statefulset)?.strip_prefix('-')?.parse().ok()
    }

    pub fn reach(&self) -> Reach {
        Reach::PortForward {
            pods: Box::new(self.pods.clone()),
            statefulset: self.statefulset.clone(),
            port: self.client_port,
        }
    }
}

pub enum Adapter {
    ZooKeeper(zookeeper::ZooKeeper),
    Kafka(Box<kafka::Kafka>),
    Pulsar(Box<pulsar::Pulsar>),
}

/// A system whose clients produce to and consume from topics.
pub enum Log<'a> {
    Kafka(&'a kafka::Kafka),
    Pulsar(&'a pulsar::Pulsar),
}

impl Adapter {
    pub fn new(kind: SystemKind, members: &Members, front: Option<Front>) -> Result<Self> {
        Ok(match kind {
            SystemKind::Zookeeper => Adapter::ZooKeeper(zookeeper::ZooKeeper::new(members.reach())),
            SystemKind::Kafka => Adapter::Kafka(Box::new(kafka::Kafka::new(members.clone()))),
            SystemKind::Pulsar => Adapter::Pulsar(Box::new(pulsar::Pulsar::new(members.clone(), front)?)),
        })
    }

    fn key_value(&self) -> Result<&zookeeper::ZooKeeper> {
        match self {
            Adapter::ZooKeeper(zk) => Ok(zk),
            _ => bail!("write and read steps are for key-value systems; logs produce and consume"),
        }
    }

    pub fn kafka(&self) -> Result<&kafka::Kafka> {
        match self {
            Adapter::Kafka(kafka) => Ok(kafka),
            _ => bail!("this step needs a Kafka system"),
        }
    }

    pub fn log(&self) -> Result<Log<'_>> {
        match self {
            Adapter::Kafka(kafka) => Ok(Log::Kafka(kafka)),
            Adapter::Pulsar(pulsar) => Ok(Log::Pulsar(pulsar)),
            Adapter::ZooKeeper(_) => bail!("this step needs a log (Kafka or Pulsar); ZooKeeper writes and reads"),
        }
    }

    pub async fn write(&self, member: Member, key: &str, value: &str) -> Result<Record> {
        self.key_value()?.write(member, key, value).await
    }

    pub async fn read(&self, member: Member, key: &str) -> Result<Option<Record>> {
        self.key_value()?.read(member, key).await
    }

    /// The system's own verdict on whether all `replicas` members serve
    /// together (ZooKeeper: one leader, every other member a synced follower;
    /// Kafka: every member registered as a broker; Pulsar: every member a
    /// writable bookie and the broker Ready).
    pub async fn health(&self, replicas: u32) -> Result<Result<(), String>> {
        match self {
            Adapter::ZooKeeper(zk) => zk.quorum(replicas).await,
            Adapter::Kafka(kafka) => kafka.health(replicas).await,
            Adapter::Pulsar(pulsar) => pulsar.health(replicas).await,
        }
    }
}
