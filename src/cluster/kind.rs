//! kind clusters: created from a kind config with the forged node image,
//! reused when one of the same name exists, deleted at the end only when
//! this run (or an interrupted earlier run) created it.

use crate::k8s::conditions::node_ready_status;
use crate::process;
use crate::settings::Settings;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NODES_READY_TIMEOUT: Duration = Duration::from_secs(300);
const FORGE_CACHE_KIND: &str = "/var/cache/stateproof/forge/bin/kind";

pub struct KindCluster {
    pub name: String,
    pub kubeconfig: PathBuf,
    created_marker: PathBuf,
    kind: String,
}

/// A container of a pod, as the node's runtime labels it.
pub struct ContainerRef<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
}

/// kind from PATH, else the one the forge installed.
fn kind_binary(settings: &Settings) -> String {
    if let Some(explicit) = &settings.kind_binary {
        return explicit.clone();
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("kind").is_file()));
    if on_path || !Path::new(FORGE_CACHE_KIND).is_file() { "kind".into() } else { FORGE_CACHE_KIND.into() }
}

/// The forged node image for the pinned Kubernetes version.
pub fn forged_node_image(settings: &Settings) -> Result<String> {
    let pins = settings.forge.with_file_name("forge.d").join("pins.env");
    let text = std::fs::read_to_string(&pins).with_context(|| format!("cannot read {}", pins.display()))?;
    let version = text
        .lines()
        .find_map(|line| line.strip_prefix("K8S_VERSION="))
        .with_context(|| format!("{} has no K8S_VERSION", pins.display()))?;
    Ok(format!("stateproof/kind-node:{}", version.trim()))
}

impl KindCluster {
    pub async fn ensure(settings: &Settings, name: &str, config: &Path, node_image: Option<&str>) -> Result<Self> {
        let kind = kind_binary(settings);
        if !process::succeeds("docker", &["info"]).await {
            bail!(
                "no Docker engine answers (`docker info` failed): start one, or run scripts/forge, which starts dockerd"
            );
        }
        let state_dir = settings.report_dir.join("clusters");
        std::fs::create_dir_all(&state_dir)?;
        let cluster = KindCluster {
            name: name.to_string(),
            kubeconfig: std::path::absolute(state_dir.join(format!("{name}.kubeconfig")))?,
            created_marker: state_dir.join(format!("{name}.created-by-stateproof")),
            kind,
        };
        let existing = process::output(&cluster.kind, &["get", "clusters"]).await?;
        if existing.lines().any(|line| line.trim() == name) {
            eprintln!("stateproof: reusing kind cluster '{name}'");
        } else {
            cluster.create(settings, config, node_image).await?;
        }
        let kubeconfig = process::output(&cluster.kind, &["get", "kubeconfig", "--name", name]).await?;
        std::fs::write(&cluster.kubeconfig, kubeconfig)?;
        Ok(cluster)
    }

    async fn create(&self, settings: &Settings, config: &Path, node_image: Option<&str>) -> Result<()> {
        if !config.is_file() {
            bail!("kind config {} not found", config.display());
        }
        let image = match node_image {
            Some(image) => image.to_string(),
            None => {
                let image = forged_node_image(settings)?;
                ensure_forged(settings, &image).await?;
                image
            }
        };
        let config = config.display().to_string();
        eprintln!("stateproof: creating kind cluster '{}' from {config} with {image}", self.name);
        let started = Instant::now();
        std::fs::write(&self.created_marker, "")?;
        process::visible(
            &self.kind,
            &["create", "cluster", "--name", &self.name, "--config", &config, "--image", &image],
        )
        .await
        .with_context(|| {
            format!("creating kind cluster '{}' (node logs: `kind export logs --name {}`)", self.name, self.name)
        })?;
        eprintln!("stateproof: kind cluster '{}' created in {:.0}s", self.name, started.elapsed().as_secs_f64());
        Ok(())
    }

    pub async fn wait_nodes_ready(&self, client: &Client) -> Result<()> {
        let nodes = Api::<Node>::all(client.clone());
        wait::until(&format!("every node of '{}' to be Ready", self.name), NODES_READY_TIMEOUT, || async {
            let list = nodes.list(&ListParams::default()).await?;
            let not_ready: Vec<String> = list
                .items
                .iter()
                .filter(|node| node_ready_status(node) != "True")
                .map(|node| node.name_any())
                .collect();
            Ok(if not_ready.is_empty() && !list.items.is_empty() {
                Probe::Done(())
            } else {
                Probe::Pending(format!("not Ready: {}", not_ready.join(", ")))
            })
        })
        .await?;
        Ok(())
    }

    pub async fn load_images(&self, images: &[String]) -> Result<Vec<String>> {
        let mut missing = Vec::new();
        let mut present = Vec::new();
        for image in images {
            let local = process::succeeds("docker", &["image", "inspect", image]).await
                || process::succeeds("docker", &["pull", "--quiet", image]).await;
            if local {
                present.push(image.as_str());
            } else {
                missing.push(image.clone());
            }
        }
        if !present.is_empty() {
            let mut args = vec!["load", "docker-image", "--name", &self.name];
            args.extend(present.iter().copied());
            wait::on_cluster(process::output(&self.kind, &args)).await?;
        }
        Ok(missing)
    }

    pub async fn stop_node(&self, node: &str) -> Result<()> {
        process::output("docker", &["stop", "--time", "5", node]).await.map(drop)
    }

    pub async fn start_node(&self, node: &str) -> Result<()> {
        process::output("docker", &["start", node]).await.map(drop)
    }

    pub async fn signal_container(&self, node: &str, target: &ContainerRef<'_>, signal: &str) -> Result<()> {
        let script = format!(
            "pid=''; for id in $(ctr -n k8s.io containers ls -q \
               'labels.\"io.kubernetes.pod.name\"=={pod},labels.\"io.kubernetes.pod.namespace\"=={namespace},labels.\"io.kubernetes.container.name\"=={container}'); do \
               pid=${{pid:-$(ctr -n k8s.io tasks ls | awk -v id=\"$id\" '$1 == id && $3 == \"RUNNING\" {{print $2}}')}}; done; \
             [ -n \"$pid\" ] || {{ echo 'no running container {container} in pod {pod}' >&2; exit 1; }}; \
             kill -{signal} \"$pid\"",
            container = target.container,
            pod = target.pod,
            namespace = target.namespace,
        );
        process::output("docker", &["exec", node, "sh", "-c", &script]).await.map(drop)
    }

    pub async fn finish(&self, keep: bool) -> Result<()> {
        if !self.created_marker.exists() {
            return Ok(());
        }
        if keep {
            eprintln!("stateproof: keeping kind cluster '{}' (kubeconfig {})", self.name, self.kubeconfig.display());
            return Ok(());
        }
        eprintln!("stateproof: deleting kind cluster '{}', which this run created", self.name);
        process::output(&self.kind, &["delete", "cluster", "--name", &self.name]).await?;
        std::fs::remove_file(&self.created_marker).ok();
        Ok(())
    }
}

/// Builds the node image with the forge when it is missing.
async fn ensure_forged(settings: &Settings, image: &str) -> Result<()> {
    if process::succeeds("docker", &["image", "inspect", image]).await {
        return Ok(());
    }
    let forge = settings.forge.display().to_string();
    eprintln!("stateproof: node image {image} is missing; running {forge} (cold: about an hour)");
    process::visible(&forge, &[]).await.with_context(|| format!("the forge could not build {image}"))
}
