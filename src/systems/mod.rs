//! System adapters: how stateproof writes to, reads from and judges the
//! health of each system under test, as its own clients would.

pub mod reach;
pub mod zookeeper;

use crate::suite::{Member, SystemKind};
use anyhow::Result;
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
}

impl Adapter {
    pub fn new(kind: SystemKind, reach: Reach) -> Self {
        match kind {
            SystemKind::Zookeeper => Adapter::ZooKeeper(zookeeper::ZooKeeper::new(reach)),
        }
    }

    pub async fn write(&self, member: Member, key: &str, value: &str) -> Result<Record> {
        match self {
            Adapter::ZooKeeper(zk) => zk.write(member, key, value).await,
        }
    }

    pub async fn read(&self, member: Member, key: &str) -> Result<Option<Record>> {
        match self {
            Adapter::ZooKeeper(zk) => zk.read(member, key).await,
        }
    }

    /// The system's own verdict on whether all `replicas` members serve
    /// together (ZooKeeper: one leader, every other member a synced follower).
    pub async fn health(&self, replicas: u32) -> Result<Result<(), String>> {
        match self {
            Adapter::ZooKeeper(zk) => zk.quorum(replicas).await,
        }
    }
}
