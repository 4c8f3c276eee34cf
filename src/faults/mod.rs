//! Faults: what stateproof does to a running system. Each is a small action
//! on the cluster; the ledger holds those that must be undone.

pub mod ledger;

use crate::cluster::Cluster;
use crate::cluster::kind::ContainerRef;
use crate::k8s::conditions::container_id;
use crate::k8s::evict::{self, Eviction};
use crate::k8s::statefulset;
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use std::time::Duration;

/// Deletes a pod and waits until that very pod is gone (its replacement,
/// with the same name, may already exist): later steps must not mistake
/// the old pod, still shutting down, for the member having come back.
/// `force` skips the grace period: the API forgets the pod without its
/// node's word, as `kubectl delete --force --grace-period=0` does for a pod
/// on a dead node.
pub async fn delete_pod(pods: &Api<Pod>, pod: &str, force: bool, timeout: Duration) -> Result<()> {
    let uid = pods.get(pod).await.with_context(|| format!("reading pod {pod}"))?.uid();
    let params = if force { DeleteParams::default().grace_period(0) } else { DeleteParams::default() };
    pods.delete(pod, &params).await.with_context(|| format!("deleting pod {pod}"))?;
    wait::until(&format!("pod {pod} to be gone"), timeout, || async {
        Ok(match pods.get_opt(pod).await?.filter(|found| found.uid() == uid) {
            Some(_) => Probe::Pending("still terminating".into()),
            None => Probe::Done(()),
        })
    })
    .await?;
    Ok(())
}

/// Deletes the StatefulSet, as `kubectl delete sts` does (its pods go, its
/// claims stay unless its retention policy says otherwise), and waits until
/// the set and all its pods are gone.
pub async fn delete_statefulset(sets: &Api<StatefulSet>, pods: &Api<Pod>, name: &str, timeout: Duration) -> Result<()> {
    let set = sets.get(name).await.with_context(|| format!("reading StatefulSet {name}"))?;
    let selector = statefulset::selector_of(&set)?;
    sets.delete(name, &DeleteParams::background()).await.with_context(|| format!("deleting StatefulSet {name}"))?;
    wait::until(&format!("StatefulSet {name} and its pods to be gone"), timeout, || async {
        let remaining = pods.list(&ListParams::default().labels(&selector)).await?;
        let set_exists = sets.get_opt(name).await?.is_some();
        Ok(if remaining.items.is_empty() && !set_exists {
            Probe::Done(())
        } else {
            let names: Vec<String> = remaining.items.iter().map(|pod| pod.name_any()).collect();
            Probe::Pending(format!("set exists: {set_exists}; pods left: {}", names.join(", ")))
        })
    })
    .await?;
    Ok(())
}

/// Sends `signal` to the main process of the pod's container, from its node.
pub async fn signal_pod(cluster: &Cluster, pod: &Pod, container: &str, signal: &str) -> Result<()> {
    let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone()).context("pod is not on a node")?;
    let namespace = pod.namespace().unwrap_or_default();
    let target =
        ContainerRef { namespace: &namespace, pod: &pod.name_any(), container, id: container_id(pod, container) };
    cluster.signal_container(&node, &target, signal).await
}

pub async fn set_unschedulable(nodes: &Api<Node>, node: &str, unschedulable: bool) -> Result<()> {
    let patch = serde_json::json!({ "spec": { "unschedulable": unschedulable } });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("{} node {node}", if unschedulable { "cordoning" } else { "uncordoning" }))?;
    Ok(())
}

/// Cordons `node` and evicts the pods of `pods`' namespace that run on it,
/// through the Eviction API. Returns each pod with its outcome.
pub async fn drain(nodes: &Api<Node>, pods: &Api<Pod>, node: &str) -> Result<Vec<(String, Eviction)>> {
    set_unschedulable(nodes, node, true).await?;
    let on_node = pods.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await?;
    let mut outcomes = Vec::new();
    for pod in on_node.items {
        let name = pod.name_any();
        let outcome = evict::evict(pods, &name).await?;
        outcomes.push((name, outcome));
    }
    Ok(outcomes)
}
