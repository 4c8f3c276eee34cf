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
use crate::suite::fixture::{LocalVolumesSpec, VolumeSpec, bytes};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeSet;

pub(super) const OWNER_LABEL: &str = "stateproof.io/local-volumes-of";
pub(super) const NODE_LABEL: &str = "stateproof.io/node";
/// On a node a setup labelled: `<label key>=<owner> <owner>...`, every suite
/// that relies on the label, so that the last one to finish removes it.
const LABELLED_ANNOTATION: &str = "stateproof.io/labelled-for";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// Sets up the volumes for the suite in `owner` (its namespace) and
/// returns the eligible nodes. Each volume is created before its directory,
/// so that whatever exists can be found by `reap`.
pub async fn setup(cluster: &Cluster, spec: &LocalVolumesSpec, owner: &str) -> Result<Vec<String>> {
    let nodes = eligible_nodes(cluster, spec, owner).await?;
    ensure_storage_class(cluster, spec, owner).await?;
    for node in &nodes {
        let directory = format!("{}/{owner}", spec.host_path.trim_end_matches('/'));
        let mut script = Vec::new();
        for (name, volume) in spec.volumes_per_node() {
            let path = format!("{directory}/{name}");
            create_volume(cluster, spec, owner, node, (&name, volume), &path).await?;
            script.push(format!("mkdir -p {path}"));
            if volume.tmpfs {
                script.push(format!("mount -t tmpfs -o size={} tmpfs {path}", bytes(&volume.capacity)?));
            }
        }
        cluster
            .run_on_node(node, &script.join(" && "))
            .await
            .with_context(|| format!("making the local volumes' directories and filesystems on node {node}"))?;
    }
    Ok(nodes)
}

/// Serializes this process's changes to node labels: suites side by side
/// add themselves to, and remove themselves from, the same annotation.
static LABELLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// As many nodes carrying the label as asked, in name order; when fewer
/// carry it, schedulable workers without it are labelled. A label an
/// earlier setup added gets this owner too, so that it stays while this
/// suite needs it.
async fn eligible_nodes(cluster: &Cluster, spec: &LocalVolumesSpec, owner: &str) -> Result<Vec<String>> {
    let _labelling = LABELLING.lock().await;
    let api: Api<Node> = Api::all(cluster.client.clone());
    let (key, value) = spec.label();
    let mut eligible = Vec::new();
    let mut candidates = Vec::new();
    let mut listed = api.list(&Default::default()).await.context("listing nodes")?.items;
    listed.sort_by_key(|node| node.name_any());
    for node in listed {
        let name = node.name_any();
        let labelled = node.metadata.labels.as_ref().and_then(|labels| labels.get(key)).is_some_and(|v| v == value);
        // Exactly as many nodes as asked: volumes on more would let members
        // land where the suite says they cannot (another suite may have
        // labelled more).
        if labelled && eligible.len() < spec.nodes {
            if let Some(mut owners) = Owners::of(&node).filter(|owners| owners.key == key) {
                owners.names.insert(owner.to_string());
                annotate(&api, &name, Some(&owners)).await?;
            }
            eligible.push(name);
        } else if !labelled && is_worker(&node) {
            candidates.push(name);
        }
    }
    for node in candidates {
        if eligible.len() >= spec.nodes {
            break;
        }
        let owners = Owners { key: key.to_string(), names: BTreeSet::from([owner.to_string()]) };
        let patch = json!({ "metadata": {
            "labels": { key: value },
            "annotations": { LABELLED_ANNOTATION: owners.to_string() },
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

/// The suites relying on a label a setup added to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owners {
    key: String,
    names: BTreeSet<String>,
}

impl Owners {
    fn of(node: &Node) -> Option<Owners> {
        Owners::parse(node.annotations().get(LABELLED_ANNOTATION)?)
    }

    fn parse(mark: &str) -> Option<Owners> {
        let (key, names) = mark.split_once('=')?;
        Some(Owners { key: key.to_string(), names: names.split_whitespace().map(str::to_string).collect() })
    }
}

impl std::fmt::Display for Owners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.key, self.names.iter().cloned().collect::<Vec<_>>().join(" "))
    }
}

/// Sets the owners of a node's label; with none left, removes the label.
async fn annotate(api: &Api<Node>, node: &str, owners: Option<&Owners>) -> Result<()> {
    let patch = match owners {
        Some(owners) => json!({ "metadata": { "annotations": { LABELLED_ANNOTATION: owners.to_string() } } }),
        None => json!({ "metadata": { "annotations": { LABELLED_ANNOTATION: null } } }),
    };
    api.patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("marking who relies on node {node}'s label"))?;
    Ok(())
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
    (volume_name, volume): (&str, &VolumeSpec),
    path: &str,
) -> Result<()> {
    let name = format!("{owner}-{node}-{volume_name}");
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
        // Filesystems mounted on volumes go first, then the directories.
        let script = format!(
            "for m in $(awk -v d='{directory}/' 'index($2, d) == 1 {{print $2}}' /proc/mounts); do umount \"$m\"; done; rm -rf {directory}"
        );
        let removed = cluster.run_on_node(&node, &script).await.map(drop);
        outcome = outcome.and(removed.with_context(|| format!("removing {directory} on node {node}")));
    }
    outcome.and(unlabel_nodes(cluster, owner).await)
}

/// The owner's directory on the node: the parent of the volume's path.
fn volume_directory(volume: &PersistentVolume) -> Option<String> {
    let path = volume_path(volume)?;
    path.rsplit_once('/').map(|(parent, _)| parent.to_string()).filter(|parent| !parent.is_empty())
}

/// The host directory a volume of a setup is.
pub(super) fn volume_path(volume: &PersistentVolume) -> Option<&str> {
    let spec = volume.spec.as_ref()?;
    let path = spec.local.as_ref().map(|local| &local.path).or(spec.host_path.as_ref().map(|host| &host.path))?;
    Some(path.as_str())
}

/// Takes `owner` off the labels a setup added; the last owner of a label
/// removes it.
async fn unlabel_nodes(cluster: &Cluster, owner: &str) -> Result<()> {
    let _labelling = LABELLING.lock().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    for node in nodes.list(&ListParams::default()).await.context("listing nodes")? {
        let Some(mut owners) = Owners::of(&node).filter(|owners| owners.names.contains(owner)) else { continue };
        owners.names.remove(owner);
        let name = node.name_any();
        if !owners.names.is_empty() {
            annotate(&nodes, &name, Some(&owners)).await?;
            continue;
        }
        let key = &owners.key;
        let patch = json!({ "metadata": { "labels": { key: null }, "annotations": { LABELLED_ANNOTATION: null } } });
        nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("removing label {key} from node {name}"))?;
    }
    Ok(())
}

/// What a setup for any of `owners` made and is still there: volumes,
/// storage classes, labels held for them, directories under `host_paths` on
/// the nodes. Empty after a clean teardown.
pub async fn leftovers(cluster: &Cluster, owners: &[String], host_paths: &BTreeSet<String>) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for owner in owners {
        let mine = ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"));
        for volume in Api::<PersistentVolume>::all(cluster.client.clone()).list(&mine).await? {
            found.push(format!("PersistentVolume {}", volume.name_any()));
        }
        for class in Api::<StorageClass>::all(cluster.client.clone()).list(&mine).await? {
            found.push(format!("StorageClass {}", class.name_any()));
        }
    }
    let nodes = Api::<Node>::all(cluster.client.clone()).list(&ListParams::default()).await?;
    for node in &nodes {
        if let Some(owners_of) = Owners::of(node).filter(|marked| marked.names.iter().any(|name| owners.contains(name)))
        {
            found.push(format!("label {} on node {} (held for {})", owners_of.key, node.name_any(), owners_of));
        }
    }
    if owners.is_empty() || host_paths.is_empty() {
        return Ok(found);
    }
    let candidates: Vec<String> = host_paths
        .iter()
        .flat_map(|path| owners.iter().map(move |owner| format!("{}/{owner}", path.trim_end_matches('/'))))
        .collect();
    let script = format!("for d in {}; do [ -e \"$d\" ] && echo \"$d\"; done; true", candidates.join(" "));
    for node in nodes.iter().map(|node| node.name_any()) {
        let listed =
            cluster.run_on_node(&node, &script).await.with_context(|| format!("looking for directories on {node}"))?;
        found.extend(listed.lines().map(|directory| format!("directory {directory} on node {node}")));
    }
    Ok(found)
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
        LocalVolumesSpec::from_spec(json!({
            "storageClass": "local-storage",
            "nodeLabel": { "has-local-fast-storage": "yes" },
            "nodes": 2,
            "volumes": [{ "name": "journal", "capacity": "2Gi" }, { "name": "ledgers", "capacity": "10Gi" }],
            "nodeAffinity": affinity,
        }))
        .unwrap()
    }

    #[test]
    fn owners_of_a_label_read_and_write_the_same_text() {
        let owners = Owners::parse("has-local-fast-storage=sp-a sp-b").unwrap();
        assert_eq!(owners.names.len(), 2);
        assert_eq!(owners.to_string(), "has-local-fast-storage=sp-a sp-b");
        assert_eq!(Owners::parse("sp-a has-local-fast-storage"), None, "the old format names no key");
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
}
