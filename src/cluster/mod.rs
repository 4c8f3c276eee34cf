//! Cluster providers: a kind cluster built from `kind-config/` (created,
//! reused by name, deleted at the end unless kept) or any cluster reachable
//! through a kubeconfig. Faults that act on nodes go through the provider:
//! kind's through its node containers, any other's through the node agent.

pub mod forge;
mod health;
mod image_probe;
pub mod kind;
pub mod local_volumes;
mod node_agent;
pub mod signal;
pub mod volume_recycler;

use crate::k8s::apply::Manifest;
use crate::settings::{ClusterChoice, Settings};
use anyhow::{Context, Result, bail};
use forge::Forged;
use kube::Client;
use node_agent::NodeAgent;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A node's service logs in a failed test's diagnostics: its kubelet's and
/// container runtime's journal, the last `NODE_LOG_LINES` lines of the last
/// `NODE_LOG_WINDOW`: enough to see its probes and kills, not the whole run's.
const NODE_LOG_WINDOW: Duration = Duration::from_secs(15 * 60);
const NODE_LOG_LINES: usize = 2000;

fn journal_command() -> Vec<String> {
    let since = format!("-{}s", NODE_LOG_WINDOW.as_secs());
    ["journalctl", "--no-pager", "-o", "short-iso", "-u", "kubelet", "-u", "containerd", "--since", &since, "-n"]
        .into_iter()
        .map(str::to_string)
        .chain([NODE_LOG_LINES.to_string()])
        .collect()
}

pub struct Cluster {
    pub client: Client,
    /// What the forge builds: never pulled, loaded from the host.
    forged: Forged,
    /// A client that takes 429 for an answer (see `k8s::client::Clients`).
    pub literal_client: Client,
    pub description: String,
    /// The custom resource definitions this run installed here, shared by
    /// the operators that rely on them.
    pub definitions: crate::k8s::crds::Installed,
    provider: Provider,
}

enum Provider {
    Kind(kind::KindCluster),
    Kubeconfig(Box<Reached>),
}

/// A cluster from a kubeconfig.
struct Reached {
    /// Its file, unless the default.
    path: Option<PathBuf>,
    /// Where its nodes pull the forged images from, if the user named one.
    image_registry: Option<String>,
    /// The run, whose label the agent's namespace carries.
    run: String,
    /// Installed on first use.
    agent: tokio::sync::OnceCell<NodeAgent>,
}

impl Cluster {
    /// Brings up (or reaches) the cluster the settings ask for. `kind_config`
    /// names the kind config a created cluster is built from; `run` is the run
    /// whose label what it installs carries.
    pub async fn provide(settings: &Settings, kind_config: &str, forged: &Forged, run: &str) -> Result<Cluster> {
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
                    definitions: Default::default(),
                    provider: Provider::Kind(cluster),
                })
            }
            ClusterChoice::Kubeconfig { path, context, image_registry } => {
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
                    definitions: Default::default(),
                    provider: Provider::Kubeconfig(Box::new(Reached {
                        path: path.clone(),
                        image_registry: image_registry.clone(),
                        run: run.to_string(),
                        agent: Default::default(),
                    })),
                })
            }
        }
    }

    /// The node agent of a cluster from a kubeconfig, installed on first use.
    async fn agent<'a>(&self, reached: &'a Reached, what: &str) -> Result<&'a NodeAgent> {
        let Some(registry) = &reached.image_registry else {
            bail!(
                "{what} on {} needs stateproof's node agent, whose image its nodes pull from the registry \
                 STATEPROOF_IMAGE_REGISTRY names (unset)",
                self.description
            )
        };
        let image = self
            .forged
            .image_of(forge::NODE_AGENT_STAGE)
            .and_then(|image| self.forged.published_to(registry, image))
            .context("the forge lists no node agent image (scripts/forge --images)")?;
        reached.agent.get_or_try_init(|| NodeAgent::install(&self.client, &reached.run, &image)).await
    }

    /// The kubeconfig that reaches this cluster, for programs run beside the
    /// harness; none for the default one.
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        match &self.provider {
            Provider::Kind(cluster) => Some(&cluster.kubeconfig),
            Provider::Kubeconfig(reached) => reached.path.as_deref(),
        }
    }

    /// Makes the images available to the nodes. Returns why external images
    /// cannot be had (the suite is skipped); any other image that cannot be
    /// had is an error (the suite fails).
    /// The reasons, one per external image of `images` this cluster cannot
    /// have: on kind, neither in the local Docker engine nor pullable; on a
    /// cluster from a kubeconfig, not pullable by its nodes (tried there).
    pub async fn unavailable_images(
        &self,
        images: &[String],
        external: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        match &self.provider {
            Provider::Kind(_) => Ok(kind::unavailable_external(images, external, &self.forged).await),
            Provider::Kubeconfig(reached) => self.try_external(reached, images, external).await,
        }
    }

    /// Makes `images` available to the nodes: on kind, forged images from
    /// the local registry, any other loaded from the host; a cluster from a
    /// kubeconfig pulls them itself.
    pub async fn provide_images(&self, images: &[String]) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.load_images(images, &self.forged).await,
            Provider::Kubeconfig(_) => Ok(()),
        }
    }

    /// Each external image is tried on the cluster's nodes: one they cannot
    /// pull skips the suite, with the fixture's reason. Forged images come
    /// from the user's registry.
    async fn try_external(
        &self,
        reached: &Reached,
        images: &[String],
        external: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let mut unavailable = Vec::new();
        for (image, reason) in images.iter().filter_map(|image| Some((image, external.get(image)?))) {
            if let Err(why) = image_probe::pullable(&self.client, &reached.run, image).await? {
                unavailable
                    .push(format!("external image {image} cannot be had (its nodes cannot pull it: {why}): {reason}"));
            }
        }
        Ok(unavailable)
    }

    /// Points the manifests at the images as this cluster's nodes get them:
    /// forged images from the local registry (kind) or the user's.
    pub fn use_provided_images(&self, manifests: &mut [Manifest]) {
        match &self.provider {
            Provider::Kind(_) => crate::k8s::apply::rewrite_images(manifests, |image| self.forged.published(image)),
            Provider::Kubeconfig(reached) => {
                if let Some(registry) = &reached.image_registry {
                    crate::k8s::apply::rewrite_images(manifests, |image| self.forged.published_to(registry, image))
                }
            }
        }
    }

    /// Stops a node as a machine that fails: kind stops its container; the
    /// agent stops its kubelet and kills its pods.
    pub async fn stop_node(&self, node: &str) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.stop_node(node).await,
            Provider::Kubeconfig(reached) => self.agent(reached, "stopping a node").await?.stop_node(node).await,
        }
    }

    pub async fn start_node(&self, node: &str) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.start_node(node).await,
            Provider::Kubeconfig(reached) => self.agent(reached, "starting a node").await?.start_node(node).await,
        }
    }

    /// Runs a shell script on a node, as root, outside any pod.
    pub async fn run_on_node(&self, node: &str, script: &str) -> Result<String> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.run_on_node(node, script).await,
            Provider::Kubeconfig(reached) => {
                self.agent(reached, "running a command on a node").await?.run_on_node(node, script).await
            }
        }
    }

    /// Signals the main process of a pod's container from its node: a
    /// container's PID 1 ignores SIGKILL and SIGSTOP sent from inside.
    pub async fn signal_container(&self, node: &str, target: &kind::ContainerRef<'_>, signal: &str) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.signal_container(node, target, signal).await,
            Provider::Kubeconfig(reached) => {
                self.agent(reached, "signalling a process").await?.signal_container(node, target, signal).await
            }
        }
    }

    /// The recent logs of a node's kubelet and container runtime.
    pub async fn node_service_logs(&self, node: &str) -> Result<String> {
        let command = journal_command();
        let command: Vec<&str> = command.iter().map(String::as_str).collect();
        match &self.provider {
            Provider::Kind(cluster) => cluster.run_command(node, &command).await,
            Provider::Kubeconfig(reached) => {
                self.agent(reached, "reading a node's service logs").await?.run_command(node, &command).await
            }
        }
    }

    /// Tears down what this run created, unless the user asked to keep it.
    pub async fn finish(&self, keep: bool) -> Result<()> {
        match &self.provider {
            Provider::Kind(cluster) => cluster.finish(keep).await,
            Provider::Kubeconfig(reached) => match reached.agent.get() {
                Some(agent) if !keep => agent.remove().await,
                _ => Ok(()),
            },
        }
    }
}
