//! How many suites run at once: on each cluster, a bound on the suites
//! running shared tests; on the host, a bound on the memory their deployed
//! pods request. The tests of one suite share its fixture and run one after
//! another; who may use a cluster at the same time is the gate's (`gate.rs`).

use crate::k8s::apply::Manifest;
use std::sync::Arc;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The memory (MiB) the pods of every running suite may request together,
/// whatever cluster they run on.
pub struct MemoryBudget {
    permits: Semaphore,
    mib: u32,
}

impl MemoryBudget {
    pub fn new(mib: u32) -> Arc<Self> {
        Arc::new(MemoryBudget { permits: Semaphore::new(mib as usize), mib })
    }
}

/// How many suites may be deployed at once on one cluster, within the
/// memory budget.
pub struct Admission {
    suites: Semaphore,
    memory: Arc<MemoryBudget>,
}

/// Held by a suite from its setup to its teardown.
pub struct Admitted<'a> {
    admission: &'a Admission,
    suite: Option<SemaphorePermit<'a>>,
    _memory: SemaphorePermit<'a>,
}

impl Admitted<'_> {
    /// A suite waiting for a window alone on the cluster (its next test
    /// stops or drains nodes) does not count among those running: another
    /// may come in and work meanwhile. Its pods stay, and so does their memory.
    pub fn step_aside(&mut self) {
        self.suite = None;
    }

    /// Counts again among the suites running, at once: a suite back from
    /// its window must not queue behind those admitted while it was away (it
    /// would idle, deployed, until one of them ends). It takes a free place
    /// if there is one; if not, it runs above the bound until it ends.
    pub fn come_back(&mut self) {
        if self.suite.is_none() {
            self.suite = self.admission.suites.try_acquire().ok();
        }
    }
}

impl Admission {
    pub fn new(suites: usize, memory: Arc<MemoryBudget>) -> Self {
        Admission { suites: Semaphore::new(suites.max(1)), memory }
    }

    /// Waits until the suite fits; one larger than the whole budget runs
    /// with the budget to itself.
    pub async fn admit(&self, memory_mib: u32) -> Admitted<'_> {
        let suite = self.suites.acquire().await.expect("the admission is never closed");
        let wanted = memory_mib.clamp(1, self.memory.mib.max(1));
        let memory = self.memory.permits.acquire_many(wanted).await.expect("never closed");
        Admitted { admission: self, suite: Some(suite), _memory: memory }
    }
}

/// The memory (MiB) a fixture's pods request: each pod template's
/// containers, times its replicas.
pub fn memory_requested(manifests: &[Manifest]) -> u32 {
    let mut total = 0u128;
    for manifest in manifests {
        let data = &manifest.object.data;
        let Some(template) = data["spec"]["template"]["spec"].as_object() else { continue };
        let replicas = data["spec"]["replicas"].as_u64().unwrap_or(1) as u128;
        let containers = template.get("containers").and_then(|containers| containers.as_array());
        let per_pod: u128 = containers
            .into_iter()
            .flatten()
            .filter_map(|container| container["resources"]["requests"]["memory"].as_str())
            .filter_map(|quantity| crate::suite::fixture::bytes(quantity).ok())
            .sum();
        total += per_pod * replicas;
    }
    u32::try_from(total >> 20).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::apply::parse;

    #[test]
    fn the_memory_of_a_fixture_is_its_requests_times_replicas() {
        let text = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: zk}\nspec:\n  replicas: 3\n  template:\n    \
                    spec:\n      containers:\n        - {name: zk, resources: {requests: {memory: 384Mi}}}\n        \
                    - {name: sidecar}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {}\n";
        let manifests: Vec<Manifest> =
            parse(text).unwrap().into_iter().map(|object| Manifest { file: "f.yaml".into(), object }).collect();
        assert_eq!(memory_requested(&manifests), 3 * 384);
    }

    #[tokio::test]
    async fn a_suite_waits_until_enough_memory_is_free() {
        let admission = Admission::new(3, MemoryBudget::new(1000));
        let first = admission.admit(700).await;
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(400)).await;
        assert!(waiting.is_err(), "700 + 400 exceed the budget of 1000");
        drop(first);
        let second = admission.admit(400).await;
        drop(second);
        let huge = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(5000)).await;
        assert!(huge.is_ok(), "alone, a suite larger than the budget runs");
    }

    #[tokio::test]
    async fn suites_on_two_clusters_count_apart_but_share_the_memory() {
        let memory = MemoryBudget::new(1000);
        let (default, autoscaling) = (Admission::new(1, memory.clone()), Admission::new(1, memory));
        let first = default.admit(600).await;
        let beside = tokio::time::timeout(std::time::Duration::from_millis(50), autoscaling.admit(300)).await;
        let beside = beside.expect("one suite per cluster: the other cluster has room");
        let over = tokio::time::timeout(std::time::Duration::from_millis(50), default.admit(50)).await;
        assert!(over.is_err(), "the default cluster runs its one suite");
        drop(beside);
        let too_big = tokio::time::timeout(std::time::Duration::from_millis(50), autoscaling.admit(500)).await;
        assert!(too_big.is_err(), "600 + 500 exceed the host's budget of 1000, whatever the cluster");
        drop(first);
    }

    #[tokio::test]
    async fn a_suite_that_steps_aside_lets_another_in_and_comes_back_at_once() {
        let admission = Admission::new(1, MemoryBudget::new(1000));
        let mut first = admission.admit(100).await;
        let blocked = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(100)).await;
        assert!(blocked.is_err(), "one suite at a time");
        first.step_aside();
        let second = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(100)).await;
        let second = second.expect("the first stepped aside");
        first.come_back();
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(100)).await;
        assert!(third.is_err(), "the place is the second's; the first runs above the bound");
        drop(first);
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), admission.admit(100)).await;
        assert!(third.is_err(), "the first, back without a place, frees none when it ends");
        drop(second);
        admission.admit(100).await;
    }
}
