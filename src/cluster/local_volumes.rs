//! Local PersistentVolumes on eligible nodes, the node setup a fixture asks
//! for with a `LocalVolumes` object (apiVersion `stateproof.io/v1`) beside
//! its manifests: nodes carrying a label (labelled here when too few do),
//! a host directory per volume on each of them, a no-provisioner
//! StorageClass that binds when a pod is scheduled, and per eligible node
//! one PersistentVolume of each kind listed, pinned to that node. Everything
//! made here is marked with the suite's namespace as it is made, so that
//! `reap` finds and removes exactly that: after a suite, after an interrupted
//! run, or for a run that died.

use super::Cluster;
use crate::k8s::FIELD_MANAGER;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

pub const API_VERSION: &str = "stateproof.io/v1";
pub const KIND: &str = "LocalVolumes";
const OWNER_LABEL: &str = "stateproof.io/local-volumes-of";
const NODE_LABEL: &str = "stateproof.io/node";
/// On a node this setup labelled: `<owner namespace> <label key>`.
const LABELLED_ANNOTATION: &str = "stateproof.io/labelled-for";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalVolumesSpec {
    pub storage_class: String,
    /// The label that marks eligible nodes, e.g. `has-local-fast-storage: "yes"`.
    pub node_label: BTreeMap<String, String>,
    /// How many nodes must be eligible.
    pub nodes: usize,
    /// Where on each node the volumes' directories are made.
    #[serde(default = "default_host_path")]
    pub host_path: String,
    /// The volumes each eligible node gets, one of each.
    pub volumes: Vec<VolumeSpec>,
    /// Pin each volume to its node. The API refuses a `local` volume without
    /// node affinity, so `false` makes plain hostPath volumes: what a manifest
    /// that drops the node affinity ends up with.
    #[serde(default = "pinned")]
    pub node_affinity: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: String,
    pub capacity: String,
}

fn default_host_path() -> String {
    "/mnt/local-pv".into()
}

fn pinned() -> bool {
    true
}

impl LocalVolumesSpec {
    /// Reads the spec from a fixture document of kind `LocalVolumes`.
    pub fn from_object(object: &serde_json::Value) -> Result<Self> {
        let spec = object.get("spec").context("LocalVolumes has no spec")?;
        let spec: Self = serde_json::from_value(spec.clone()).context("invalid LocalVolumes spec")?;
        if spec.node_label.len() != 1 {
            bail!("LocalVolumes nodeLabel must hold exactly one label, not {}", spec.node_label.len());
        }
        if spec.volumes.is_empty() || spec.nodes == 0 {
            bail!("LocalVolumes needs at least one node and one volume");
        }
        for volume in &spec.volumes {
            bytes(&volume.capacity).with_context(|| format!("volume {}", volume.name))?;
        }
        Ok(spec)
    }

    pub fn label(&self) -> (&str, &str) {
        let (key, value) = self.node_label.iter().next().expect("one label, checked when read");
        (key, value)
    }

    /// Claims (name, requested size) this spec's volumes cannot satisfy: a
    /// claim asking more than the largest volume would stay Pending forever.
    pub fn unsatisfiable<'a>(&self, claims: &'a [(String, String)]) -> Result<Vec<&'a str>> {
        let largest = self.volumes.iter().map(|volume| bytes(&volume.capacity)).collect::<Result<Vec<_>>>()?;
        let largest = largest.into_iter().max().unwrap_or(0);
        let mut refused = Vec::new();
        for (name, request) in claims {
            if bytes(request).with_context(|| format!("claim template {name}"))? > largest {
                refused.push(name.as_str());
            }
        }
        Ok(refused)
    }
}

/// A Kubernetes quantity (`10Gi`, `500M`, `1024`) in bytes.
pub fn bytes(quantity: &str) -> Result<u128> {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u128 = number.parse().with_context(|| format!("{quantity:?} is not a size"))?;
    let scale: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => bail!("{quantity:?}: unknown unit {suffix:?}"),
    };
    Ok(number * scale)
}

/// Sets up the volumes for the suite in `owner` (its namespace) and
/// returns the eligible nodes. Each volume is created before its directory,
/// so that whatever exists can be found by `reap`.
pub async fn setup(cluster: &Cluster, spec: &LocalVolumesSpec, owner: &str) -> Result<Vec<String>> {
    let nodes = eligible_nodes(cluster, spec, owner).await?;
    ensure_storage_class(cluster, spec, owner).await?;
    for node in &nodes {
        let directory = format!("{}/{owner}", spec.host_path.trim_end_matches('/'));
        let mut paths = Vec::new();
        for volume in &spec.volumes {
            let path = format!("{directory}/{}", volume.name);
            create_volume(cluster, spec, owner, node, volume, &path).await?;
            paths.push(path);
        }
        cluster
            .run_on_node(node, &format!("mkdir -p {}", paths.join(" ")))
            .await
            .with_context(|| format!("making the local volume directories on node {node}"))?;
    }
    Ok(nodes)
}

/// Nodes carrying the label; when fewer than asked do, schedulable workers
/// without it are labelled, in name order.
async fn eligible_nodes(cluster: &Cluster, spec: &LocalVolumesSpec, owner: &str) -> Result<Vec<String>> {
    let api: Api<Node> = Api::all(cluster.client.clone());
    let (key, value) = spec.label();
    let mut eligible = Vec::new();
    let mut candidates = Vec::new();
    for node in api.list(&Default::default()).await.context("listing nodes")? {
        let name = node.metadata.name.clone().unwrap_or_default();
        if node.metadata.labels.as_ref().and_then(|labels| labels.get(key)).is_some_and(|v| v == value) {
            eligible.push(name);
        } else if is_worker(&node) {
            candidates.push(name);
        }
    }
    eligible.sort();
    candidates.sort();
    for node in candidates {
        if eligible.len() >= spec.nodes {
            break;
        }
        let patch = json!({ "metadata": {
            "labels": { key: value },
            "annotations": { LABELLED_ANNOTATION: format!("{owner} {key}") },
        }});
        api.patch(&node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("labelling node {node} {key}={value}"))?;
        eprintln!("stateproof: labelled node {node} {key}={value}");
        eligible.push(node);
    }
    if eligible.len() < spec.nodes {
        bail!("LocalVolumes needs {} eligible nodes; the cluster has only {}", spec.nodes, eligible.len());
    }
    Ok(eligible)
}

fn is_worker(node: &Node) -> bool {
    let control_plane = node
        .metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key("node-role.kubernetes.io/control-plane"));
    let unschedulable = node.spec.as_ref().is_some_and(|spec| {
        spec.unschedulable == Some(true)
            || spec.taints.iter().flatten().any(|taint| taint.effect == "NoSchedule" || taint.effect == "NoExecute")
    });
    !control_plane && !unschedulable
}

/// The StorageClass: made when missing; when it exists already it must be a
/// no-provisioner one, else the claims would be provisioned elsewhere.
async fn ensure_storage_class(cluster: &Cluster, spec: &LocalVolumesSpec, owner: &str) -> Result<()> {
    let api: Api<StorageClass> = Api::all(cluster.client.clone());
    let name = &spec.storage_class;
    if let Some(existing) = api.get_opt(name).await.with_context(|| format!("reading StorageClass {name}"))? {
        if existing.provisioner != NO_PROVISIONER {
            bail!("StorageClass {name} exists with provisioner {}, not {NO_PROVISIONER}", existing.provisioner);
        }
        return Ok(());
    }
    let class: StorageClass = serde_json::from_value(json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": { "name": name, "labels": { OWNER_LABEL: owner } },
        "provisioner": NO_PROVISIONER,
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Retain",
    }))?;
    api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &class)
        .await
        .with_context(|| format!("creating StorageClass {name}"))?;
    Ok(())
}

async fn create_volume(
    cluster: &Cluster,
    spec: &LocalVolumesSpec,
    owner: &str,
    node: &str,
    volume: &VolumeSpec,
    path: &str,
) -> Result<()> {
    let name = format!("{owner}-{node}-{}", volume.name);
    let pv: PersistentVolume = serde_json::from_value(volume_manifest(spec, &name, owner, node, volume, path))?;
    let api: Api<PersistentVolume> = Api::all(cluster.client.clone());
    api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &pv)
        .await
        .with_context(|| format!("creating PersistentVolume {name}"))?;
    Ok(())
}

fn volume_manifest(
    spec: &LocalVolumesSpec,
    name: &str,
    owner: &str,
    node: &str,
    volume: &VolumeSpec,
    path: &str,
) -> serde_json::Value {
    let mut pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": { "name": name, "labels": { OWNER_LABEL: owner, NODE_LABEL: node } },
        "spec": {
            "capacity": { "storage": volume.capacity },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class,
            "volumeMode": "Filesystem",
        }
    });
    if spec.node_affinity {
        pv["spec"]["local"] = json!({ "path": path });
        pv["spec"]["nodeAffinity"] = json!({ "required": { "nodeSelectorTerms": [{ "matchExpressions": [
            { "key": "kubernetes.io/hostname", "operator": "In", "values": [node] }
        ]}]}});
    } else {
        pv["spec"]["hostPath"] = json!({ "path": path, "type": "Directory" });
    }
    pv
}

/// Removes what a setup for `owner` made: its volumes, its StorageClass,
/// the volumes' directories on their nodes, and the labels it added.
pub async fn reap(cluster: &Cluster, owner: &str) -> Result<()> {
    let mine = ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"));
    let volumes: Api<PersistentVolume> = Api::all(cluster.client.clone());
    let mut outcome = Ok(());
    let mut directories = BTreeSet::new();
    for volume in volumes.list(&mine).await.context("listing local volumes")? {
        let name = volume.metadata.name.clone().unwrap_or_default();
        if let (Some(node), Some(directory)) = (volume.labels().get(NODE_LABEL), volume_directory(&volume)) {
            directories.insert((node.clone(), directory));
        }
        let deleted = volumes.delete(&name, &DeleteParams::default()).await.map(drop);
        outcome = outcome.and(gone_is_fine(deleted).with_context(|| format!("deleting PersistentVolume {name}")));
    }
    let classes: Api<StorageClass> = Api::all(cluster.client.clone());
    for class in classes.list(&mine).await.context("listing storage classes")? {
        let name = class.metadata.name.clone().unwrap_or_default();
        let deleted = classes.delete(&name, &DeleteParams::default()).await.map(drop);
        outcome = outcome.and(gone_is_fine(deleted).with_context(|| format!("deleting StorageClass {name}")));
    }
    for (node, directory) in directories {
        let removed = cluster.run_on_node(&node, &format!("rm -rf {directory}")).await.map(drop);
        outcome = outcome.and(removed.with_context(|| format!("removing {directory} on node {node}")));
    }
    outcome.and(unlabel_nodes(cluster, owner).await)
}

/// The owner's directory on the node: the parent of the volume's path.
fn volume_directory(volume: &PersistentVolume) -> Option<String> {
    let spec = volume.spec.as_ref()?;
    let path = spec.local.as_ref().map(|local| &local.path).or(spec.host_path.as_ref().map(|host| &host.path))?;
    path.rsplit_once('/').map(|(parent, _)| parent.to_string()).filter(|parent| !parent.is_empty())
}

async fn unlabel_nodes(cluster: &Cluster, owner: &str) -> Result<()> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for node in nodes.list(&ListParams::default()).await.context("listing nodes")? {
        let Some(mark) = node.annotations().get(LABELLED_ANNOTATION) else { continue };
        let Some((marked_owner, key)) = mark.split_once(' ') else { continue };
        if marked_owner != owner {
            continue;
        }
        let name = node.name_any();
        let patch = json!({ "metadata": { "labels": { key: null }, "annotations": { LABELLED_ANNOTATION: null } } });
        nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("removing label {key} from node {name}"))?;
    }
    Ok(())
}

fn gone_is_fine(deleted: Result<(), kube::Error>) -> Result<()> {
    match deleted {
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(affinity: bool) -> LocalVolumesSpec {
        LocalVolumesSpec::from_object(&json!({ "spec": {
            "storageClass": "local-storage",
            "nodeLabel": { "has-local-fast-storage": "yes" },
            "nodes": 2,
            "volumes": [{ "name": "journal", "capacity": "2Gi" }, { "name": "ledgers", "capacity": "10Gi" }],
            "nodeAffinity": affinity,
        }}))
        .unwrap()
    }

    #[test]
    fn sizes_parse_in_both_unit_systems() {
        assert_eq!(bytes("10Gi").unwrap(), 10 << 30);
        assert_eq!(bytes("12G").unwrap(), 12_000_000_000);
        assert_eq!(bytes("512").unwrap(), 512);
        assert!(bytes("10 Gi").is_err());
        assert!(bytes("Gi").is_err());
    }

    #[test]
    fn a_claim_larger_than_every_volume_is_named() {
        let claims = vec![("journal".to_string(), "1Gi".to_string()), ("ledgers".to_string(), "12Gi".to_string())];
        assert_eq!(spec(true).unsatisfiable(&claims).unwrap(), vec!["ledgers"]);
        let fitting = vec![("ledgers".to_string(), "10Gi".to_string())];
        assert!(spec(true).unsatisfiable(&fitting).unwrap().is_empty());
    }

    #[test]
    fn volumes_are_pinned_to_their_node_unless_asked_not_to() {
        let spec_pinned = spec(true);
        let pinned = volume_manifest(&spec_pinned, "v", "ns", "worker2", &spec_pinned.volumes[0], "/mnt/x");
        assert_eq!(pinned["spec"]["local"]["path"], "/mnt/x");
        let values = &pinned["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0];
        assert_eq!(values["values"][0], "worker2");
        let spec_loose = spec(false);
        let loose = volume_manifest(&spec_loose, "v", "ns", "worker2", &spec_loose.volumes[0], "/mnt/x");
        assert!(loose["spec"].get("nodeAffinity").is_none());
        assert_eq!(loose["spec"]["hostPath"]["path"], "/mnt/x");
    }

    #[test]
    fn a_volumes_directory_is_its_owners_folder() {
        let spec = spec(true);
        for affinity in [true, false] {
            let spec = LocalVolumesSpec { node_affinity: affinity, ..spec.clone() };
            let manifest = volume_manifest(&spec, "v", "ns", "w", &spec.volumes[0], "/mnt/local-pv/ns/journal");
            let volume: PersistentVolume = serde_json::from_value(manifest).unwrap();
            assert_eq!(volume_directory(&volume).as_deref(), Some("/mnt/local-pv/ns"));
        }
    }

    #[test]
    fn a_spec_with_two_labels_is_refused() {
        let two = json!({ "spec": { "storageClass": "s", "nodeLabel": { "a": "1", "b": "2" }, "nodes": 1,
            "volumes": [{ "name": "v", "capacity": "1Gi" }] } });
        assert!(LocalVolumesSpec::from_object(&two).is_err());
    }
}
