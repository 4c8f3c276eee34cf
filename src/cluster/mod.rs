//! Cluster providers: a kind cluster built from `kind-config/` (created,
//! reused by name, deleted at the end unless kept) or any cluster reachable
//! through a kubeconfig. Faults that act on nodes go through the provider.

pub mod kind;
pub mod local_volumes;

use crate::settings::{ClusterChoice, Settings};
use anyhow::{Result, bail};
use kube::Client;
use std::path::PathBuf;

pub struct Cluster {
    pub client: Client,
    /// A client that takes 429 for an answer (see `k8s::client::Clients`).
    pub literal_client: Client,
    pub description: String,
    provider: Provider,
}

enum Provider {
    Kind(kind::KindCluster),
    Kubeconfig,
}

impl Cluster {
    /// Brings up (or reaches) the cluster the settings ask for. `kind_config`
    /// names the kind config a created cluster is built from.
    pub async fn provide(settings: &Settings, kind_config: &str) -> Result<Cluster> {
        match &settings.cluster {
            ClusterChoice::Kind { name, node_image } => {
                let config = settings.kind_config(kind_config);
                let cluster = kind::KindCluster::ensure(settings, name, &config, node_image.as_deref()).await?;
                let clients = crate::k8s::client::connect(Some(&cluster.kubeconfig), None).await?;
                cluster.wait_nodes_ready(&clients.client).await?;
                Ok(Cluster {
                    client: clients.client,
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
                Ok(Cluster {
                    client: clients.client,
                    literal_client: clients.literal,
                    description,
                    provider: Provider::Kubeconfig,
                })
            }
        }
    }

    fn kind(&self, what: &str) -> Result<&kind::KindCluster> {
        match &self.provider {
            Provider::Kind(cluster) => Ok(cluster),
            Provider::Kubeconfig => bail!("{what} needs the kind provider: {} is not a kind cluster", self.description),
        }
    }

    /// Makes the images available to the nodes without a pull. Returns the
    /// images that could not be had, for the caller to report.
    pub async fn provide_images(&self, images: &[String]) -> Result<Vec<String>> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.load_images(images).await,
            Provider::Kubeconfig => Ok(Vec::new()),
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

    /// Tears down what this run created, unless the user asked to keep it.
    pub async fn finish(&self, keep: bool) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.finish(keep).await,
            Provider::Kubeconfig => Ok(()),
        }
    }
}
