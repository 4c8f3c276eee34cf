//! Offers a local volume again once its claim is deleted, as the local
//! static provisioner does for the volumes it discovers: the directory
//! wiped, the claim reference cleared, the volume Available. Without it a
//! scale-down that deletes claims (an autoscaler's) would use up a fixture's
//! volumes for good.

use super::Cluster;
use super::local_volumes::{NODE_LABEL, OWNER_LABEL, volume_path};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Recycles the released volumes of one setup while it lives.
pub struct VolumeRecycler {
    task: JoinHandle<()>,
}

impl VolumeRecycler {
    /// Watches the volumes a setup for `owner` makes, from before they exist.
    pub fn start(cluster: Arc<Cluster>, owner: &str) -> VolumeRecycler {
        VolumeRecycler { task: tokio::spawn(recycle_released(cluster, owner.to_string())) }
    }

    /// Stops before the setup's volumes are reaped, so that no wipe races
    /// their removal.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for VolumeRecycler {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn recycle_released(cluster: Arc<Cluster>, owner: String) {
    let api: Api<PersistentVolume> = Api::all(cluster.client.clone());
    let config = watcher::Config::default().labels(&format!("{OWNER_LABEL}={owner}"));
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config));
    while let Some(event) = events.next().await {
        let Ok(Event::Apply(volume) | Event::InitApply(volume)) = event else { continue };
        // Released and still naming its old claim: the event of our own
        // patch (the claim gone, the phase not yet Available) is not another
        // release, and its volume may be bound anew by the time it is read.
        let released = volume.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Released");
        if !released || volume.spec.as_ref().is_none_or(|spec| spec.claim_ref.is_none()) {
            continue;
        }
        let name = volume.name_any();
        match offer_again(&cluster, &api, &volume).await {
            Ok(()) => eprintln!("stateproof: volume {name} released by its claim: wiped and offered again"),
            Err(error) => eprintln!("stateproof: volume {name} stays Released: {error:#}"),
        }
    }
}

async fn offer_again(cluster: &Cluster, api: &Api<PersistentVolume>, volume: &PersistentVolume) -> Result<()> {
    let (Some(node), Some(path)) = (volume.labels().get(NODE_LABEL), volume_path(volume)) else {
        bail!("it names no node or path");
    };
    // The contents only: a volume that is a filesystem of its own stays mounted.
    cluster
        .run_on_node(node, &format!("find '{path}' -mindepth 1 -delete"))
        .await
        .with_context(|| format!("wiping {path} on node {node}"))?;
    let patch = json!({ "spec": { "claimRef": null } });
    api.patch(&volume.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .context("clearing its claim reference")?;
    Ok(())
}
