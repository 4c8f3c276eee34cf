//! What the cluster did while a suite ran, as watches saw it: pods created,
//! ready or not, restarted, deleted; nodes turning NotReady and Ready again.
//! Each observation goes into the histories of the tests it happened in
//! (their timelines), and every change wakes the waits that watch for one,
//! instead of their polling.

use crate::history::{Millis, Observed, now};
use crate::k8s::conditions::{node_ready_status, pod_ready};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Observer {
    seen: Arc<Mutex<Vec<Observed>>>,
    changes: watch::Receiver<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl Observer {
    /// Watches the pods of `namespace` and the cluster's nodes.
    pub fn watch(client: &Client, namespace: &str) -> Observer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (changed, changes) = watch::channel(0u64);
        let changed = Arc::new(changed);
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let nodes: Api<Node> = Api::all(client.clone());
        let tasks = vec![
            tokio::spawn(follow(pods, Pods::default(), seen.clone(), changed.clone())),
            tokio::spawn(follow(nodes, Nodes::default(), seen.clone(), changed)),
        ];
        Observer { seen, changes, tasks }
    }

    /// A receiver that changes whenever a watched object does.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// What was observed from `from` to `to`, in time order.
    pub fn between(&self, from: Millis, to: Millis) -> Vec<Observed> {
        let mut found: Vec<Observed> =
            self.seen.lock().unwrap().iter().filter(|seen| (from..=to).contains(&seen.at)).cloned().collect();
        found.sort_by_key(|seen| seen.at);
        found
    }
}

/// Turns the objects a watch reports into observations of what changed.
trait Tracker<K>: Send + 'static {
    /// Whether waiters hear of every change, or only of those observed.
    const EVERY_CHANGE_MATTERS: bool;
    fn applied(&mut self, object: &K) -> Vec<Observed>;
    fn deleted(&mut self, object: &K) -> Vec<Observed>;
}

async fn follow<K, T>(api: Api<K>, mut tracker: T, seen: Arc<Mutex<Vec<Observed>>>, changed: Arc<watch::Sender<u64>>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    T: Tracker<K>,
{
    let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
    while let Some(event) = events.next().await {
        let observed = match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => tracker.applied(&object),
            Ok(Event::Delete(object)) => tracker.deleted(&object),
            Ok(Event::Init | Event::InitDone) | Err(_) => continue,
        };
        if observed.is_empty() && !T::EVERY_CHANGE_MATTERS {
            continue;
        }
        seen.lock().unwrap().extend(observed);
        changed.send_modify(|count| *count += 1);
    }
}

/// A pod as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodState {
    uid: String,
    ready: bool,
    restarts: i32,
    node: Option<String>,
}

#[derive(Default)]
struct Pods {
    known: HashMap<String, PodState>,
}

impl Tracker<Pod> for Pods {
    /// A wait may look for any of a pod's conditions, not only those observed.
    const EVERY_CHANGE_MATTERS: bool = true;

    fn applied(&mut self, pod: &Pod) -> Vec<Observed> {
        let name = pod.name_any();
        let state = PodState {
            uid: pod.uid().unwrap_or_default(),
            ready: pod_ready(pod),
            restarts: restarts(pod),
            node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
        };
        let mark = |what: String| Observed { at: now(), subject: name.clone(), what };
        let before = self.known.get(&name).filter(|before| before.uid == state.uid).cloned();
        let mut observed = Vec::new();
        if before.is_none() {
            observed.push(mark("created".into()));
        }
        let before = before.unwrap_or(PodState { ready: false, restarts: 0, node: None, ..state.clone() });
        if state.node != before.node
            && let Some(node) = &state.node
        {
            observed.push(mark(format!("scheduled on {node}")));
        }
        if state.restarts > before.restarts {
            observed.push(mark(format!("restarted ({} restarts)", state.restarts)));
        }
        if state.ready != before.ready {
            observed.push(mark(if state.ready { "ready" } else { "not ready" }.into()));
        }
        self.known.insert(name, state);
        observed
    }

    fn deleted(&mut self, pod: &Pod) -> Vec<Observed> {
        self.known.remove(&pod.name_any());
        vec![Observed { at: now(), subject: pod.name_any(), what: "deleted".into() }]
    }
}

fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|status| status.container_statuses.as_ref());
    statuses.into_iter().flatten().map(|status| status.restart_count).sum()
}

/// Nodes by whether they are Ready.
#[derive(Default)]
struct Nodes {
    ready: HashMap<String, bool>,
}

impl Tracker<Node> for Nodes {
    /// Kubelets post their node's status every few seconds: waits hear only
    /// of a node turning Ready or NotReady.
    const EVERY_CHANGE_MATTERS: bool = false;

    fn applied(&mut self, node: &Node) -> Vec<Observed> {
        let name = node.name_any();
        let ready = node_ready_status(node) == "True";
        let before = self.ready.insert(name.clone(), ready);
        match before {
            Some(before) if before != ready => {
                let what = if ready { "node Ready" } else { "node NotReady" };
                vec![Observed { at: now(), subject: name, what: what.into() }]
            }
            _ => Vec::new(),
        }
    }

    fn deleted(&mut self, node: &Node) -> Vec<Observed> {
        self.ready.remove(&node.name_any());
        Vec::new()
    }
}

/// The time Kubernetes and the system needed to bring pods up within a
/// test's window: the union of the intervals from each pod's creation or
/// restart to its next Ready. No harness could run the test faster.
pub fn floor(observed: &[Observed], from: Millis, to: Millis) -> Millis {
    let mut starting: HashMap<&str, Millis> = HashMap::new();
    let mut intervals = Vec::new();
    for seen in observed {
        let what = seen.what.as_str();
        if what == "created" || what.starts_with("restarted") || what == "not ready" {
            starting.entry(seen.subject.as_str()).or_insert(seen.at);
        } else if what == "ready"
            && let Some(began) = starting.remove(seen.subject.as_str())
        {
            intervals.push((began.max(from), seen.at.min(to)));
        }
    }
    intervals.sort_unstable();
    let mut total = 0;
    let mut covered_to = from;
    for (start, end) in intervals {
        let start = start.max(covered_to);
        if end > start {
            total += end - start;
            covered_to = end;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, ready: bool, restarts: i32, node: Option<&str>) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "zk-1", "uid": uid},
            "spec": {"containers": [], "nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "containerStatuses": [{"name": "zk", "image": "i", "imageID": "", "ready": ready, "restartCount": restarts}]}
        }))
        .unwrap()
    }

    fn whats(observed: &[Observed]) -> Vec<&str> {
        observed.iter().map(|seen| seen.what.as_str()).collect()
    }

    #[test]
    fn a_pods_life_is_observed_as_its_changes() {
        let mut pods = Pods::default();
        assert_eq!(whats(&pods.applied(&pod("a", false, 0, None))), ["created"]);
        assert_eq!(whats(&pods.applied(&pod("a", false, 0, Some("w1")))), ["scheduled on w1"]);
        assert_eq!(whats(&pods.applied(&pod("a", true, 0, Some("w1")))), ["ready"]);
        assert!(pods.applied(&pod("a", true, 0, Some("w1"))).is_empty(), "nothing changed");
        assert_eq!(whats(&pods.applied(&pod("a", false, 1, Some("w1")))), ["restarted (1 restarts)", "not ready"]);
        assert_eq!(whats(&pods.deleted(&pod("a", false, 1, Some("w1")))), ["deleted"]);
        assert_eq!(whats(&pods.applied(&pod("b", false, 0, Some("w2")))), ["created", "scheduled on w2"]);
    }

    fn seen(at: Millis, subject: &str, what: &str) -> Observed {
        Observed { at, subject: subject.into(), what: what.into() }
    }

    #[test]
    fn the_floor_is_the_union_of_the_times_pods_took_to_come_up() {
        let observed = [
            seen(100, "zk-0", "created"),
            seen(150, "zk-1", "created"),
            seen(300, "zk-0", "ready"),
            seen(400, "zk-1", "ready"),
            seen(500, "zk-1", "restarted (1 restarts)"),
            seen(600, "zk-1", "ready"),
        ];
        assert_eq!(floor(&observed, 0, 1000), 300 + 100, "100..400 overlapping, then 500..600");
        assert_eq!(floor(&observed, 200, 550), 200 + 50, "clipped to the window");
    }
}
