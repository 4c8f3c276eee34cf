//! Cluster providers: a kind cluster built from `kind-config/` (created,
//! reused by name, deleted at the end unless kept) or any cluster reachable
//! through a kubeconfig. Faults that act on nodes go through the provider.

pub mod forge;
mod health;
pub mod kind;
pub mod local_volumes;
pub mod volume_recycler;

use crate::k8s::apply::Manifest;
use crate::settings::{ClusterChoice, Settings};
use anyhow::{Context, Result, bail};
use forge::Forged;
use kube::Client;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct Cluster {
    pub client: Client,
    /// What the forge builds: never pulled, loaded from the host.
    forged: Forged,
    /// A client that takes 429 for an answer (see `k8s::client::Clients`).
    pub literal_client: Client,
    pub description: String,
    provider: Provider,
}

enum Provider {
    Kind(kind::KindCluster),
    /// Its file, unless the default.
    Kubeconfig(Option<PathBuf>),
}

impl Cluster {
    /// Brings up (or reaches) the cluster the settings ask for. `kind_config`
    /// names the kind config a created cluster is built from.
    pub async fn provide(settings: &Settings, kind_config: &str, forged: &Forged) -> Result<Cluster> {
        let forged = forged.clone();
        match &settings.cluster.for_kind_config(kind_config) {
            ClusterChoice::Kind { name, node_image } => {
                let config = settings.kind_config(kind_config);
                let node_image = match node_image {
                    Some(image) => image.as_str(),
                    None => forged.node_image().context("the forge lists no node image (scripts/forge --images)")?,
                };
                let cluster = kind::KindCluster::ensure(settings, name, &config, node_image).await?;
                let clients = crate::k8s::client::connect(Some(&cluster.kubeconfig), None).await?;
                let remedy = format!("recreate it (kind delete cluster --name {name})");
                health::wait_healthy(&clients.client, &format!("kind cluster '{name}'"), &remedy).await?;
                Ok(Cluster {
                    client: clients.client,
                    forged,
                    literal_client: clients.literal,
                    description: format!("kind cluster '{name}'"),
                    provider: Provider::Kind(cluster),
                })
            }
            ClusterChoice::Kubeconfig { path, context } => {
                let clients = crate::k8s::client::connect(path.as_deref(), context.as_deref()).await?;
                let description = format!(
                    "cluster of {} (context {})",
                    path.as_ref().map_or("the default kubeconfig".into(), |p: &PathBuf| p.display().to_string()),
                    context.as_deref().unwrap_or("current")
                );
                health::wait_healthy(&clients.client, &description, "repair its control plane").await?;
                Ok(Cluster {
                    client: clients.client,
                    forged,
                    literal_client: clients.literal,
                    description,
                    provider: Provider::Kubeconfig(path.clone()),
                })
            }
        }
    }

    fn kind(&self, what: &str) -> Result<&kind::KindCluster> {
        match &self.provider {
            Provider::Kind(cluster) => Ok(cluster),
            Provider::Kubeconfig(_) => {
                bail!("{what} needs the kind provider: {} is not a kind cluster", self.description)
            }
        }
    }

    /// The kubeconfig that reaches this cluster, for programs run beside the
    /// harness; none for the default one.
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        match &self.provider {
            Provider::Kind(cluster) => Some(&cluster.kubeconfig),
            Provider::Kubeconfig(path) => path.as_deref(),
        }
    }

    /// Makes the images available to the nodes. Returns why external images
    /// cannot be had (the suite is skipped); any other image that cannot be
    /// had is an error (the suite fails).
    pub async fn provide_images(&self, images: &[String], external: &BTreeMap<String, String>) -> Result<Vec<String>> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.load_images(images, external, &self.forged).await,
            Provider::Kubeconfig(_) => Ok(Vec::new()),
        }
    }

    /// Points the manifests at the images as this cluster's nodes get them:
    /// forged images from the local registry.
    pub fn use_provided_images(&self, manifests: &mut [Manifest]) {
        if let Provider::Kind(_) = &self.provider {
            crate::k8s::apply::rewrite_images(manifests, |image| self.forged.published(image));
        }
    }

    pub async fn stop_node(&self, node: &str) -> Result<()> {
        self.kind("stopping a node")?.stop_node(node).await
    }

    pub async fn start_node(&self, node: &str) -> Result<()> {
        self.kind("starting a node")?.start_node(node).await
    }

    /// Runs a shell script on a node, as root, outside any pod.
    pub async fn run_on_node(&self, node: &str, script: &str) -> Result<String> {
        self.kind("running a command on a node")?.run_on_node(node, script).await
    }

    /// Signals the main process of a pod's container from its node: a
    /// container's PID 1 ignores SIGKILL and SIGSTOP sent from inside.
    pub async fn signal_container(&self, node: &str, target: &kind::ContainerRef<'_>, signal: &str) -> Result<()> {
        self.kind("signalling a process")?.signal_container(node, target, signal).await
    }

    /// The recent logs of a node's kubelet and container runtime.
    pub async fn node_service_logs(&self, node: &str) -> Result<String> {
        self.kind("reading a node's service logs")?.node_service_logs(node).await
    }

    /// Tears down what this run created, unless the user asked to keep it.
    pub async fn finish(&self, keep: bool) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.finish(keep).await,
            Provider::Kubeconfig(_) => Ok(()),
        }
    }
}
