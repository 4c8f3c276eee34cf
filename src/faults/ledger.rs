//! Node faults in force, recorded so that whoever ends them — the test that
//! made them, or an interrupted run — can undo every one.

use super::set_unschedulable;
use crate::cluster::Cluster;
use crate::k8s::conditions::node_ready_status;
use crate::wait::{self, Probe};
use anyhow::Result;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeFault {
    Cordoned(String),
    Stopped(String),
}

struct Entry {
    owner: String,
    cluster: Arc<Cluster>,
    fault: NodeFault,
}

#[derive(Default)]
pub struct Ledger {
    entries: Mutex<Vec<Entry>>,
}

impl Ledger {
    pub fn record(&self, owner: &str, cluster: &Arc<Cluster>, fault: NodeFault) {
        let entry = Entry { owner: owner.to_string(), cluster: cluster.clone(), fault };
        self.entries.lock().unwrap().push(entry);
    }

    /// Removes and returns the faults `owner` made that `select` picks, in
    /// the order they were made; with no owner, every fault.
    pub fn take(&self, owner: Option<&str>, select: fn(&NodeFault) -> bool) -> Vec<(Arc<Cluster>, NodeFault)> {
        let mut entries = self.entries.lock().unwrap();
        let (taken, kept): (Vec<Entry>, Vec<Entry>) =
            entries.drain(..).partition(|entry| owner.is_none_or(|owner| entry.owner == owner) && select(&entry.fault));
        *entries = kept;
        taken.into_iter().map(|entry| (entry.cluster, entry.fault)).collect()
    }
}

/// Undoes one fault: uncordon, or start the node and wait until it is Ready.
pub async fn undo(cluster: &Cluster, fault: &NodeFault, ready_within: Duration) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    match fault {
        NodeFault::Cordoned(node) => set_unschedulable(&nodes, node, false).await,
        NodeFault::Stopped(node) => {
            cluster.start_node(node).await?;
            wait::until(&format!("node {node} to be Ready again"), ready_within, || async {
                let status = node_ready_status(&nodes.get(node).await?);
                Ok(if status == "True" { Probe::Done(()) } else { Probe::Pending(format!("Ready={status}")) })
            })
            .await?;
            Ok(())
        }
    }
}
