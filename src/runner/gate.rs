//! Who may use the cluster at the same time. A suite's test shares it; a
//! test that stops or drains nodes has it alone; a chained suite shares it
//! from its first test to its teardown, since its state lives between its
//! tests and another suite's node fault in between would break the next.
//!
//! A node test that waits blocks newcomers, so that it is not starved,
//! except while a chain holds the cluster: it could not go before the chain
//! ends anyway, and the other suites' tests would idle for the whole chain.
//!
//! A node test whose nodes are all back shares the cluster for the rest of
//! it (its own members' recovery, its last reads): other suites' tests wait
//! for their fixtures to be ready before they start, and another node test
//! still waits for it to end.

use crate::suite::Disruption;
use std::sync::Mutex;
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
    access: Mutex<Access>,
}

impl Pass<'_> {
    /// A test that had the cluster alone shares it from now on.
    pub fn share(&self) {
        let mut access = self.access.lock().unwrap();
        if *access == Access::Alone {
            self.gate.holders.send_modify(|holders| {
                holders.count(Access::Alone, false);
                holders.count(Access::Shared, true);
            });
            *access = Access::Shared;
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let access = *self.access.get_mut().unwrap();
        self.gate.holders.send_modify(|holders| holders.count(access, false));
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
                return Pass { gate: self, access: Mutex::new(access) };
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
    async fn a_node_test_that_shares_lets_other_tests_in_but_not_another_node_test() {
        let gate = ClusterGate::default();
        let alone = gate.enter(Access::Alone).await;
        assert!(!enters(&gate, Access::Shared).await, "nodes are being stopped");
        alone.share();
        let shared = tokio::time::timeout(Duration::from_millis(50), gate.enter(Access::Shared))
            .await
            .expect("its nodes are back: other tests may run");
        assert!(!enters(&gate, Access::Alone).await, "the first node test is still running");
        drop(shared);
        assert!(!enters(&gate, Access::Alone).await, "the first node test is still running");
        drop(alone);
        assert!(enters(&gate, Access::Alone).await);
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
