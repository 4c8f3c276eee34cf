//! Faults in force, recorded before they are made, so that whoever ends them
//! (the test that made them, or an interrupted run) can undo every one. A
//! fault leaves the ledger only once undoing it succeeded; an undo that
//! fails is tried again, within a bound, and what still fails is reported.
//! An interrupted run closes the ledger before it undoes what is in force:
//! a test still running makes no fault after that.

use super::{set_unschedulable, signal_pod};
use crate::cluster::Cluster;
use crate::k8s::conditions::{node_ready_status, restart_count};
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::Api;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Cordoned(String),
    Stopped(String),
    /// A container's main process stopped with SIGSTOP.
    Frozen {
        namespace: String,
        pod: String,
        uid: String,
        container: String,
        restarts: i32,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Cordoned(node) => write!(f, "node {node} cordoned"),
            Fault::Stopped(node) => write!(f, "node {node} stopped"),
            Fault::Frozen { pod, container, .. } => write!(f, "{pod}/{container} frozen"),
        }
    }
}

impl Fault {
    pub fn is_node_fault(&self) -> bool {
        matches!(self, Fault::Cordoned(_) | Fault::Stopped(_))
    }
}

struct Entry<H> {
    owner: String,
    cluster: H,
    fault: Fault,
}

/// How often an undo is tried before it is reported as failed.
const UNDO_ATTEMPTS: u32 = 3;
const UNDO_PAUSE: Duration = Duration::from_secs(5);

/// The faults in force, each with the cluster (`H`) it was made on.
pub struct Ledger<H = Arc<Cluster>> {
    entries: Mutex<Vec<Entry<H>>>,
    closed: AtomicBool,
}

impl<H> Default for Ledger<H> {
    fn default() -> Self {
        Ledger { entries: Mutex::new(Vec::new()), closed: AtomicBool::new(false) }
    }
}

/// What undoing one fault came to.
pub struct Undone {
    pub fault: Fault,
    pub result: Result<()>,
}

impl<H: Clone> Ledger<H> {
    /// Records a fault about to be made; a closed ledger refuses it, and
    /// the fault must then not be made.
    pub fn record(&self, owner: &str, cluster: &H, fault: Fault) -> Result<()> {
        let mut entries = self.entries.lock().unwrap();
        if self.is_closed() {
            return Err(anyhow!("the run was interrupted: {fault} was not made"));
        }
        entries.push(Entry { owner: owner.to_string(), cluster: cluster.clone(), fault });
        Ok(())
    }

    /// From now on no fault is recorded, so none is made.
    pub fn close(&self) {
        let _entries = self.entries.lock().unwrap();
        self.closed.store(true, Ordering::SeqCst);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Undoes, in reverse order of making, the faults `owner` made that
    /// `select` picks (with no owner, every fault), each with `undo`. Each
    /// one undone leaves the ledger; one whose undo failed stays.
    async fn undo_with<F, Fut>(&self, owner: Option<&str>, select: fn(&Fault) -> bool, undo: F) -> Vec<Undone>
    where
        F: Fn(H, Fault) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let chosen: Vec<(H, Fault)> = {
            let entries = self.entries.lock().unwrap();
            entries
                .iter()
                .rev()
                .filter(|entry| owner.is_none_or(|owner| entry.owner == owner) && select(&entry.fault))
                .map(|entry| (entry.cluster.clone(), entry.fault.clone()))
                .collect()
        };
        let mut outcomes = Vec::new();
        for (cluster, fault) in chosen {
            let result = undo(cluster, fault.clone()).await;
            if result.is_ok() {
                self.entries.lock().unwrap().retain(|entry| entry.fault != fault);
            }
            outcomes.push(Undone { fault, result });
        }
        outcomes
    }

    /// Whether a node that `owner` cordoned or stopped is not back yet.
    pub fn holds_node_faults(&self, owner: &str) -> bool {
        self.entries.lock().unwrap().iter().any(|entry| entry.owner == owner && entry.fault.is_node_fault())
    }

    /// The faults still in force, for the end of a run to report.
    pub fn remaining(&self) -> Vec<String> {
        self.entries.lock().unwrap().iter().map(|entry| format!("{} (by {})", entry.fault, entry.owner)).collect()
    }
}

impl Ledger {
    /// Undoes the faults `owner` made that `select` picks, each tried
    /// again within a bound before it is reported as failed.
    pub async fn undo(&self, owner: Option<&str>, select: fn(&Fault) -> bool, ready_within: Duration) -> Vec<Undone> {
        self.undo_with(owner, select, |cluster, fault| async move {
            undo_with_retries(&cluster, &fault, ready_within).await
        })
        .await
    }
}

async fn undo_with_retries(cluster: &Cluster, fault: &Fault, ready_within: Duration) -> Result<()> {
    let mut last = anyhow!("not tried");
    for attempt in 1..=UNDO_ATTEMPTS {
        match undo(cluster, fault, ready_within).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                eprintln!("stateproof: undoing {fault} failed (attempt {attempt}/{UNDO_ATTEMPTS}): {error:#}");
                last = error;
            }
        }
        if attempt < UNDO_ATTEMPTS {
            tokio::time::sleep(UNDO_PAUSE).await;
        }
    }
    Err(last.context(format!("undoing {fault} failed {UNDO_ATTEMPTS} times")))
}

/// Undoes one fault: uncordon; start the node and wait until it is Ready;
/// thaw the process, unless its pod is gone or replaced.
async fn undo(cluster: &Cluster, fault: &Fault, ready_within: Duration) -> Result<()> {
    let nodes = Api::<Node>::all(cluster.client.clone());
    match fault {
        Fault::Cordoned(node) => set_unschedulable(&nodes, node, false).await,
        Fault::Stopped(node) => {
            cluster.start_node(node).await?;
            wait::until(&format!("node {node} to be Ready again"), ready_within, || async {
                let status = node_ready_status(&nodes.get(node).await?);
                Ok(if status == "True" { Probe::Done(()) } else { Probe::Pending(format!("Ready={status}")) })
            })
            .await?;
            Ok(())
        }
        Fault::Frozen { namespace, pod, uid, container, restarts } => {
            let pods = Api::<Pod>::namespaced(cluster.client.clone(), namespace);
            let found = pods.get_opt(pod).await.with_context(|| format!("reading pod {pod}"))?;
            // Replaced, or restarted by its probe: the frozen process is gone.
            let Some(found) = found.filter(|found| found.uid().as_deref() == Some(uid.as_str())) else { return Ok(()) };
            if restart_count(&found, container) > *restarts {
                return Ok(());
            }
            signal_pod(cluster, &found, container, "CONT").await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything(_: &Fault) -> bool {
        true
    }

    #[tokio::test]
    async fn a_fault_whose_undo_failed_stays_in_the_ledger_to_be_undone_later() {
        let ledger: Ledger<()> = Ledger::default();
        ledger.record("t", &(), Fault::Cordoned("w1".into())).unwrap();
        ledger.record("t", &(), Fault::Stopped("w2".into())).unwrap();
        let failing = |_: (), fault: Fault| async move {
            match fault {
                Fault::Stopped(_) => Err(anyhow!("docker start failed")),
                _ => Ok(()),
            }
        };
        let undone = ledger.undo_with(Some("t"), everything, failing).await;
        assert_eq!(undone.len(), 2);
        assert!(undone[0].result.is_err(), "the most recent fault is undone first");
        assert_eq!(ledger.remaining(), ["node w2 stopped (by t)"]);
        let retried = ledger.undo_with(None, everything, |_, _| async { Ok(()) }).await;
        assert_eq!(retried.len(), 1);
        assert!(ledger.remaining().is_empty());
    }

    #[tokio::test]
    async fn only_the_owners_selected_faults_are_undone() {
        let ledger: Ledger<()> = Ledger::default();
        ledger.record("a", &(), Fault::Cordoned("w1".into())).unwrap();
        ledger.record("b", &(), Fault::Cordoned("w2".into())).unwrap();
        ledger.record("a", &(), Fault::Stopped("w3".into())).unwrap();
        let cordons = |fault: &Fault| matches!(fault, Fault::Cordoned(_));
        let undone = ledger.undo_with(Some("a"), cordons, |_, _| async { Ok(()) }).await;
        assert_eq!(undone.iter().map(|u| u.fault.to_string()).collect::<Vec<_>>(), ["node w1 cordoned"]);
        assert_eq!(ledger.remaining().len(), 2);
        assert!(ledger.holds_node_faults("a"), "a's node w3 is still stopped");
        let _ = ledger.undo_with(Some("a"), everything, |_, _| async { Ok(()) }).await;
        assert!(!ledger.holds_node_faults("a"));
        assert!(ledger.holds_node_faults("b"));
    }

    #[test]
    fn a_closed_ledger_refuses_a_new_fault_and_keeps_those_in_force() {
        let ledger: Ledger<()> = Ledger::default();
        ledger.record("t", &(), Fault::Cordoned("w1".into())).unwrap();
        ledger.close();
        let refused = ledger.record("t", &(), Fault::Stopped("w2".into())).unwrap_err();
        assert_eq!(refused.to_string(), "the run was interrupted: node w2 stopped was not made");
        assert_eq!(ledger.remaining(), ["node w1 cordoned (by t)"]);
    }
}
