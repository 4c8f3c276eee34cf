//! Who may use the cluster at the same time. A suite's test shares it; a
//! test that stops or drains nodes has it alone; a chained suite shares it
//! from its first test to its teardown, since its state lives between its
//! tests and another suite's node fault in between would break the next.
//!
//! A node test that waits blocks newcomers, so that it is not starved,
//! except while a chain holds the cluster: it could not go before the chain
//! ends anyway, and the other suites' tests would idle for the whole chain.

use crate::suite::Disruption;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// One test of a suite, or a suite's teardown.
    Shared,
    /// A chained suite, from its first test to its teardown.
    Chain,
    /// A test that stops or drains nodes.
    Alone,
}

impl From<Disruption> for Access {
    fn from(disruption: Disruption) -> Self {
        match disruption {
            Disruption::Suite => Access::Shared,
            Disruption::Nodes => Access::Alone,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Holders {
    shared: usize,
    chains: usize,
    alone: bool,
    alone_waiting: usize,
}

impl Holders {
    fn admits(&self, access: Access) -> bool {
        match access {
            Access::Shared => !self.alone && (self.alone_waiting == 0 || self.chains > 0),
            Access::Chain => !self.alone && self.alone_waiting == 0,
            Access::Alone => !self.alone && self.shared == 0 && self.chains == 0,
        }
    }

    fn count(&mut self, access: Access, entering: bool) {
        let step = |n: &mut usize| if entering { *n += 1 } else { *n -= 1 };
        match access {
            Access::Shared => step(&mut self.shared),
            Access::Chain => step(&mut self.chains),
            Access::Alone => self.alone = entering,
        }
    }
}

#[derive(Default)]
pub struct ClusterGate {
    holders: watch::Sender<Holders>,
}

/// Held for as long as the access lasts; dropping it lets others in.
pub struct Pass<'a> {
    gate: &'a ClusterGate,
    access: Access,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.holders.send_modify(|holders| holders.count(self.access, false));
    }
}

/// A node test's place in the queue, given up however its wait ends.
struct Waiting<'a>(&'a ClusterGate);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.holders.send_modify(|holders| holders.alone_waiting -= 1);
    }
}

impl ClusterGate {
    pub async fn enter(&self, access: Access) -> Pass<'_> {
        let _queued = (access == Access::Alone).then(|| {
            self.holders.send_modify(|holders| holders.alone_waiting += 1);
            Waiting(self)
        });
        let mut changes = self.holders.subscribe();
        loop {
            let entered = self.holders.send_if_modified(|holders| {
                let admitted = holders.admits(access);
                if admitted {
                    holders.count(access, true);
                }
                admitted
            });
            if entered {
                return Pass { gate: self, access };
            }
            changes.changed().await.expect("the gate outlives its waiters");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn enters(gate: &ClusterGate, access: Access) -> bool {
        tokio::time::timeout(Duration::from_millis(50), gate.enter(access)).await.is_ok()
    }

    #[tokio::test]
    async fn a_node_test_waits_for_shared_tests_and_then_goes_before_newcomers() {
        let gate = ClusterGate::default();
        let shared = gate.enter(Access::Shared).await;
        assert!(!enters(&gate, Access::Alone).await, "a shared test is running");
        let queued = gate.enter(Access::Alone);
        tokio::pin!(queued);
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued).await.is_err());
        assert!(!enters(&gate, Access::Shared).await, "a node test waits: newcomers queue behind it");
        drop(shared);
        let alone = queued.await;
        assert!(!enters(&gate, Access::Shared).await, "nodes are being stopped");
        drop(alone);
        assert!(enters(&gate, Access::Shared).await);
    }

    #[tokio::test]
    async fn while_a_chain_holds_the_cluster_a_waiting_node_test_does_not_idle_the_rest() {
        let gate = ClusterGate::default();
        let chain = gate.enter(Access::Chain).await;
        let queued = gate.enter(Access::Alone);
        tokio::pin!(queued);
        assert!(tokio::time::timeout(Duration::from_millis(20), &mut queued).await.is_err());
        assert!(enters(&gate, Access::Shared).await, "other suites' tests go on beside the chain");
        assert!(!enters(&gate, Access::Chain).await, "a new chain waits for the node test");
        drop(chain);
        let alone = tokio::time::timeout(Duration::from_millis(50), queued).await.expect("the chain ended");
        drop(alone);
        assert!(enters(&gate, Access::Chain).await);
    }

    #[tokio::test]
    async fn a_node_test_that_stops_waiting_leaves_the_queue() {
        let gate = ClusterGate::default();
        let shared = gate.enter(Access::Shared).await;
        assert!(!enters(&gate, Access::Alone).await);
        assert!(enters(&gate, Access::Shared).await, "the node test that gave up no longer holds newcomers back");
        drop(shared);
    }
}
