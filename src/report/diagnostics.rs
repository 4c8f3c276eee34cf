//! What a failed test leaves behind, so that it can be understood without a
//! re-run: events, objects as YAML, container logs (previous ones too), node
//! conditions, and the kubelet's and container runtime's logs of the nodes
//! its pods run on, under `<report dir>/<run>/<suite>/<test>/`.

use crate::cluster::Cluster;
use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use std::path::Path;

/// Collects into `dir` and returns it, or says why it could not and
/// returns nothing: a failed collection must not hide the test's failure.
pub async fn capture(cluster: &Cluster, namespace: &str, dir: &Path) -> Option<std::path::PathBuf> {
    match collect(cluster, namespace, dir).await {
        Ok(()) => Some(dir.to_path_buf()),
        Err(error) => {
            eprintln!("stateproof: could not collect diagnostics into {}: {error:#}", dir.display());
            None
        }
    }
}

async fn collect(cluster: &Cluster, namespace: &str, dir: &Path) -> Result<()> {
    let client = &cluster.client;
    std::fs::create_dir_all(dir)?;
    let namespaced = |file: &str| dir.join(file);
    dump(&Api::<Event>::namespaced(client.clone(), namespace), &namespaced("events.yaml")).await;
    dump(&Api::<StatefulSet>::namespaced(client.clone(), namespace), &namespaced("statefulsets.yaml")).await;
    dump(&Api::<Pod>::namespaced(client.clone(), namespace), &namespaced("pods.yaml")).await;
    dump(&Api::<PersistentVolumeClaim>::namespaced(client.clone(), namespace), &namespaced("pvcs.yaml")).await;
    dump(&Api::<Service>::namespaced(client.clone(), namespace), &namespaced("services.yaml")).await;
    dump(&Api::<PodDisruptionBudget>::namespaced(client.clone(), namespace), &namespaced("pdbs.yaml")).await;
    dump(&Api::<PersistentVolume>::all(client.clone()), &namespaced("pvs.yaml")).await;
    node_conditions(client, &namespaced("nodes.txt")).await;
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    if let Ok(list) = pods.list(&ListParams::default()).await {
        logs(&pods, &list.items, &dir.join("logs")).await;
        node_logs(cluster, &list.items, &dir.join("nodes")).await;
    }
    Ok(())
}

/// The service logs of each node one of `pods` is placed on: what the
/// kubelet and the runtime did to them (probes, kills, mounts).
async fn node_logs(cluster: &Cluster, pods: &[Pod], dir: &Path) {
    let nodes: std::collections::BTreeSet<&str> =
        pods.iter().filter_map(|pod| pod.spec.as_ref()?.node_name.as_deref()).collect();
    let _ = std::fs::create_dir_all(dir);
    for node in nodes {
        let text = cluster.node_service_logs(node).await.unwrap_or_else(|error| format!("not collected: {error:#}\n"));
        let _ = std::fs::write(dir.join(format!("{node}.log")), text);
    }
}

/// Lists every object of a kind into one YAML file; a failure to collect is
/// written in place of the objects rather than hiding the test's failure.
async fn dump<K>(api: &Api<K>, file: &Path)
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let text = match api.list(&ListParams::default()).await {
        Ok(list) => {
            serde_saphyr::to_string_multiple(&list.items).unwrap_or_else(|error| format!("# cannot render: {error}\n"))
        }
        Err(error) => format!("# cannot list: {error}\n"),
    };
    let _ = std::fs::write(file, text);
}

async fn node_conditions(client: &Client, file: &Path) {
    let mut text = String::new();
    match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
        Ok(nodes) => {
            for node in nodes.items {
                text.push_str(&format!(
                    "{} unschedulable={}\n",
                    node.name_any(),
                    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
                ));
                for condition in node.status.and_then(|status| status.conditions).unwrap_or_default() {
                    text.push_str(&format!(
                        "  {}={} {} {}\n",
                        condition.type_,
                        condition.status,
                        condition.reason.unwrap_or_default(),
                        condition.message.unwrap_or_default()
                    ));
                }
            }
        }
        Err(error) => text = format!("cannot list nodes: {error}\n"),
    }
    let _ = std::fs::write(file, text);
}

/// Every container's log of `pods`, and its previous container's.
async fn logs(api: &Api<Pod>, pods: &[Pod], dir: &Path) {
    let _ = std::fs::create_dir_all(dir);
    for pod in pods {
        let name = pod.name_any();
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|spec| spec.init_containers.iter().flatten().chain(&spec.containers))
            .map(|container| container.name.clone())
            .collect();
        for container in containers {
            for previous in [false, true] {
                let params = LogParams { container: Some(container.clone()), previous, ..Default::default() };
                if let Ok(text) = api.logs(&name, &params).await {
                    let suffix = if previous { ".previous" } else { "" };
                    let _ = std::fs::write(dir.join(format!("{name}.{container}{suffix}.log")), text);
                }
            }
        }
    }
}
