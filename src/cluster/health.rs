//! Whether a cluster can run suites at all: every node Ready and every
//! control-plane pod that the cluster shows Ready. A reused kind cluster
//! whose Docker engine restarted can come back with a controller manager
//! that never turns Ready again: its StatefulSets are never observed and
//! its namespaces never deleted, and every suite would time out for a
//! reason that has nothing to do with the manifests.

use crate::k8s::conditions::{node_ready_status, pod_ready};
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use std::time::Duration;

const NODES_READY_TIMEOUT: Duration = Duration::from_secs(300);
const CONTROL_PLANE_READY_TIMEOUT: Duration = Duration::from_secs(90);

/// `remedy` says what the user can do about a control plane that is not
/// Ready.
pub async fn wait_healthy(client: &Client, cluster: &str, remedy: &str) -> Result<()> {
    wait_nodes_ready(client, cluster).await?;
    wait_control_plane_ready(client, cluster).await.with_context(|| {
        format!("{cluster} is not healthy (a control plane that is not Ready fails every suite for its own reasons): {remedy}")
    })
}

async fn wait_nodes_ready(client: &Client, cluster: &str) -> Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    wait::until(&format!("every node of {cluster} to be Ready"), NODES_READY_TIMEOUT, || async {
        let list = nodes.list(&ListParams::default()).await?;
        let not_ready: Vec<String> =
            list.items.iter().filter(|node| !is_usable(node)).map(|node| node.name_any()).collect();
        Ok(if not_ready.is_empty() && !list.items.is_empty() {
            Probe::Done(())
        } else {
            Probe::Pending(format!("not Ready, or still tainted not-ready: {}", not_ready.join(", ")))
        })
    })
    .await?;
    Ok(())
}

/// Ready, and no longer tainted not-ready: the node lifecycle controller
/// lifts that taint a moment after Ready, and until then nothing schedules
/// there (a new cluster's only worker offered no node for local volumes).
fn is_usable(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|spec| spec.taints.as_ref());
    let tainted = taints.is_some_and(|taints| taints.iter().any(|taint| taint.key == "node.kubernetes.io/not-ready"));
    node_ready_status(node) == "True" && !tainted
}

/// kubeadm's static pods (kind's among them) carry `tier=control-plane`; a
/// managed cluster shows none, and then there is nothing to wait for.
async fn wait_control_plane_ready(client: &Client, cluster: &str) -> Result<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    let selector = ListParams::default().labels("tier=control-plane");
    wait::until(&format!("the control plane of {cluster} to be Ready"), CONTROL_PLANE_READY_TIMEOUT, || async {
        let not_ready = not_ready(&pods.list(&selector).await?.items);
        Ok(if not_ready.is_empty() {
            Probe::Done(())
        } else {
            Probe::Pending(format!("not Ready: {}", not_ready.join(", ")))
        })
    })
    .await?;
    Ok(())
}

fn not_ready(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|pod| !pod_ready(pod))
        .map(|pod| format!("{} ({} restarts)", pod.name_any(), restarts(pod)))
        .collect()
}

fn restarts(pod: &Pod) -> i32 {
    let statuses = pod.status.as_ref().and_then(|status| status.container_statuses.as_ref());
    statuses.map_or(0, |statuses| statuses.iter().map(|status| status.restart_count).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: &str, restarts: i32) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"tier": "control-plane"}},
            "status": {
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": ready == "True",
                    "restartCount": restarts}]
            }
        }))
        .unwrap()
    }

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "worker"},
            "spec": {"taints": taints},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_node_is_usable_once_ready_and_no_longer_tainted_not_ready() {
        let not_ready_taint = serde_json::json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]);
        assert!(!is_usable(&node("True", not_ready_taint.clone())), "Ready, but the taint is still there");
        assert!(!is_usable(&node("False", serde_json::json!([]))));
        assert!(is_usable(&node("True", serde_json::json!([]))));
        let other = serde_json::json!([{"key": "has-local-fast-storage", "effect": "NoSchedule"}]);
        assert!(is_usable(&node("True", other)), "only the not-ready taint says the node is new");
    }

    #[test]
    fn a_control_plane_pod_not_ready_is_named_with_its_restarts() {
        let pods = [pod("etcd-cp", "True", 0), pod("kube-controller-manager-cp", "False", 1)];
        assert_eq!(not_ready(&pods), vec!["kube-controller-manager-cp (1 restarts)".to_string()]);
        assert!(not_ready(&pods[..1]).is_empty());
    }
}
