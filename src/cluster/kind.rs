//! kind clusters: created from a kind config with the forged node image,
//! reused when one of the same name exists, deleted at the end only when
//! this run (or an interrupted earlier run) created it.

use super::forge::{Forged, Registry};
use crate::process;
use crate::settings::Settings;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

const FORGE_CACHE_KIND: &str = "/var/cache/stateproof/forge/bin/kind";

pub struct KindCluster {
    pub name: String,
    pub kubeconfig: PathBuf,
    created_marker: PathBuf,
    kind: String,
    /// Set once the nodes pull from the local registry.
    registry_joined: tokio::sync::OnceCell<()>,
}

/// The docker network of kind's nodes.
const KIND_NETWORK: &str = "kind";
/// kind picks its API server's host port as it starts the control plane:
/// two clusters created at once may pick the same one (seen: "Bind for
/// 127.0.0.1:45371 failed: port is already allocated"), and the second one
/// is deleted again by kind. A new attempt picks another port.
const CREATE_ATTEMPTS: u32 = 3;

fn lost_port_race(failure: &str) -> bool {
    failure.contains("port is already allocated")
}

/// A container of a pod, as the node's runtime labels it.
pub struct ContainerRef<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container: &'a str,
    /// The runtime's id, from the pod's status when it was read.
    pub id: Option<&'a str>,
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

/// The cluster's kubeconfig, and the marker that says this run (or an
/// interrupted earlier one) created it.
fn state_files(settings: &Settings, name: &str) -> Result<(PathBuf, PathBuf)> {
    let state_dir = settings.report_dir.join("clusters");
    std::fs::create_dir_all(&state_dir)?;
    let kubeconfig = std::path::absolute(state_dir.join(format!("{name}.kubeconfig")))?;
    Ok((kubeconfig, state_dir.join(format!("{name}.created-by-stateproof"))))
}

/// Deletes a cluster whose creation this run began and did not see finish
/// (interrupted, or failed with kind killed): no `KindCluster` knows it. An
/// interrupted `kind create` may still be making nodes, so it is deleted
/// until no node of it is left.
pub async fn delete_unfinished(settings: &Settings, name: &str) -> Result<()> {
    let (kubeconfig, created_marker) = state_files(settings, name)?;
    if !created_marker.exists() {
        return Ok(());
    }
    eprintln!("stateproof: deleting kind cluster '{name}', whose creation did not finish");
    let kind = kind_binary(settings);
    let kubeconfig = kubeconfig.display().to_string();
    wait::until(&format!("kind cluster '{name}' to be gone"), UNFINISHED_GONE_WITHIN, || async {
        process::output(&kind, &["delete", "cluster", "--name", name, "--kubeconfig", &kubeconfig]).await?;
        let left = process::output(&kind, &["get", "nodes", "--name", name]).await?;
        Ok(if left.trim().is_empty() { Probe::Done(()) } else { Probe::Pending(format!("nodes left: {left}")) })
    })
    .await?;
    std::fs::remove_file(&created_marker).ok();
    Ok(())
}

const UNFINISHED_GONE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

impl KindCluster {
    /// Reuses the cluster of that name, or creates it from `config` with
    /// `node_image`.
    pub async fn ensure(settings: &Settings, name: &str, config: &Path, node_image: &str) -> Result<Self> {
        let kind = kind_binary(settings);
        if !process::succeeds("docker", &["info"]).await {
            bail!(
                "no Docker engine answers (`docker info` failed): start one, or run scripts/forge, which starts dockerd"
            );
        }
        let (kubeconfig, created_marker) = state_files(settings, name)?;
        let cluster = KindCluster {
            name: name.to_string(),
            kubeconfig,
            created_marker,
            kind,
            registry_joined: tokio::sync::OnceCell::new(),
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

    async fn create(&self, settings: &Settings, config: &Path, image: &str) -> Result<()> {
        if !config.is_file() {
            bail!("kind config {} not found", config.display());
        }
        let config = config.display().to_string();
        eprintln!("stateproof: creating kind cluster '{}' from {config} with {image}", self.name);
        let started = Instant::now();
        std::fs::write(&self.created_marker, "")?;
        // A kubeconfig file of its own: kind refuses to write a file another
        // kind holds locked, and two clusters may be created at once.
        let kubeconfig = self.kubeconfig.display().to_string();
        let args = ["create", "cluster", "--name", &self.name, "--config", &config, "--image", image];
        let args = [&args[..], &["--kubeconfig", &kubeconfig]].concat();
        let mut attempt = 1;
        while let Err(error) = process::visible(&self.kind, &args).await {
            if attempt == CREATE_ATTEMPTS || !lost_port_race(&format!("{error:#}")) {
                // kind deletes what it made, unless it was killed.
                if let Err(left) = delete_unfinished(settings, &self.name).await {
                    eprintln!("stateproof: {left:#}");
                }
                return Err(error).with_context(|| {
                    format!(
                        "creating kind cluster '{}' (node logs: `kind export logs --name {}`)",
                        self.name, self.name
                    )
                });
            }
            eprintln!(
                "stateproof: kind cluster '{}' lost its API server port to a cluster created beside it: creating it again",
                self.name
            );
            attempt += 1;
        }
        eprintln!("stateproof: kind cluster '{}' created in {:.0}s", self.name, started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Makes the images available to the nodes. A forged image must be in
    /// the local registry, which the nodes pull from (it is never pulled from
    /// anywhere else); another image is loaded from the host's Docker, which
    /// may pull it; when an external one cannot be had its reason is
    /// returned; any other image that cannot be had is an error.
    pub async fn load_images(&self, images: &[String], forged: &Forged) -> Result<()> {
        let mut host = Vec::new();
        for image in images {
            if forged.stage_of(image).is_some() {
                self.registry_joined.get_or_try_init(|| self.join_registry(&forged.registry)).await?;
                match published(&forged.registry, image).await {
                    Ok(digest) => forged.pin(image, digest),
                    Err(error) => return Err(anyhow!("{} ({error:#})", missing(image, forged.stage_of(image), None))),
                }
                continue;
            }
            if is_project_image(image) {
                bail!(
                    "image {image} is named as the forge names its images, but no forge stage builds it \
                     (scripts/forge --images lists them); a name of the project's is never pulled"
                );
            }
            match pulled_image_id(image).await {
                Some(id) => host.push(HostImage::new(image, id)),
                None => bail!("{}", missing(image, None, None)),
            }
        }
        if !host.is_empty() {
            wait::on_cluster(self.load_lacking(&host)).await?;
        }
        Ok(())
    }

    /// The nodes have no crictl, which kind needs to see that a node already
    /// holds an image, so a plain `kind load` re-imports every image into
    /// every node each suite: we check the nodes ourselves and load only
    /// what each one lacks.
    async fn load_lacking(&self, images: &[HostImage]) -> Result<()> {
        let nodes = self.node_names().await?;
        let holdings = holdings_of(&nodes, images).await;
        let mut everywhere = Vec::new();
        for image in images {
            let lacking: Vec<&str> = nodes
                .iter()
                .zip(&holdings)
                .filter(|(_, held)| !image.is_held_in(held))
                .map(|(node, _)| node.as_str())
                .collect();
            if lacking.is_empty() {
                everywhere.push(image.reference.as_str());
            } else {
                self.load_into(&image.reference, &lacking, nodes.len()).await?;
            }
        }
        if !everywhere.is_empty() {
            eprintln!("stateproof: already on every node of {}: {}", self.name, everywhere.join(", "));
        }
        Ok(())
    }

    async fn node_names(&self) -> Result<Vec<String>> {
        let listed = process::output(&self.kind, &["get", "nodes", "--name", &self.name]).await?;
        let nodes: Vec<String> = listed.split_whitespace().map(str::to_string).collect();
        if nodes.is_empty() {
            bail!("kind lists no nodes for cluster '{}'", self.name);
        }
        Ok(nodes)
    }

    async fn load_into(&self, image: &str, nodes: &[&str], of: usize) -> Result<()> {
        eprintln!("stateproof: loading {image} into {} of {of} nodes of {} (kind load)", nodes.len(), self.name);
        let nodes = nodes.join(",");
        let args = ["load", "docker-image", "--name", &self.name, "--nodes", &nodes, image];
        process::output(&self.kind, &args).await.map(drop)
    }

    /// Lets the nodes pull from the local registry (kind's documented
    /// pattern): its container joins the nodes' network, and containerd on
    /// each node maps the registry's host name to it.
    async fn join_registry(&self, registry: &Registry) -> Result<()> {
        let networks =
            process::output("docker", &["inspect", "-f", "{{json .NetworkSettings.Networks}}", &registry.container])
                .await
                .with_context(|| {
                    format!(
                        "the local registry ({}) is not running: scripts/forge registry starts it",
                        registry.container
                    )
                })?;
        if !networks.contains(&format!("\"{KIND_NETWORK}\"")) {
            process::output("docker", &["network", "connect", KIND_NETWORK, &registry.container]).await?;
        }
        let directory = format!("/etc/containerd/certs.d/{}", registry.push);
        let hosts = format!("[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n", registry.pull);
        let script = format!("mkdir -p '{directory}' && printf '%s' '{hosts}' > '{directory}/hosts.toml'");
        for node in self.node_names().await? {
            self.run_on_node(&node, &script)
                .await
                .with_context(|| format!("pointing node {node} at the local registry"))?;
        }
        eprintln!(
            "stateproof: the nodes of {} pull forged images from {} ({})",
            self.name, registry.push, registry.pull
        );
        Ok(())
    }

    pub async fn stop_node(&self, node: &str) -> Result<()> {
        process::output("docker", &["kill", node]).await.map(drop)
    }

    pub async fn start_node(&self, node: &str) -> Result<()> {
        process::output("docker", &["start", node]).await.map(drop)
    }

    pub async fn run_on_node(&self, node: &str, script: &str) -> Result<String> {
        process::output("docker", &["exec", node, "sh", "-c", script]).await
    }

    /// Runs a command on a node, as root, outside any pod.
    pub async fn run_command(&self, node: &str, command: &[&str]) -> Result<String> {
        process::output("docker", &[&["exec", node][..], command].concat()).await
    }

    pub async fn signal_container(&self, node: &str, target: &ContainerRef<'_>, signal: &str) -> Result<()> {
        self.run_on_node(node, &super::signal::script(target, signal)?).await.map(drop)
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
        let kubeconfig = self.kubeconfig.display().to_string();
        process::output(&self.kind, &["delete", "cluster", "--name", &self.name, "--kubeconfig", &kubeconfig]).await?;
        std::fs::remove_file(&self.created_marker).ok();
        Ok(())
    }
}

/// An image the host's Docker holds. Its ID is its config digest (Docker's
/// classic image store), which a node's containerd shows for the same image.
struct HostImage {
    reference: String,
    id: String,
    /// The name `kind load` gives it in the nodes; `None` when we cannot tell,
    /// which makes the image count as lacking everywhere.
    containerd_name: Option<String>,
}

impl HostImage {
    fn new(reference: &str, id: String) -> Self {
        HostImage { reference: reference.to_string(), id, containerd_name: containerd_name(reference) }
    }

    fn is_held_in(&self, holdings: &HashMap<String, String>) -> bool {
        self.containerd_name.as_ref().and_then(|name| holdings.get(name)) == Some(&self.id)
    }
}

/// What a missing image means for its suite.
/// The external images of `images` (declared so, not forged) neither in the
/// local Docker engine nor pullable, each with the fixture's reason: they
/// skip the suite.
pub async fn unavailable_external(
    images: &[String],
    external: &BTreeMap<String, String>,
    forged: &Forged,
) -> Vec<String> {
    let mut unavailable = Vec::new();
    for image in images.iter().filter(|image| forged.stage_of(image).is_none()) {
        if let Some(reason) = external.get(image)
            && pulled_image_id(image).await.is_none()
        {
            unavailable.push(missing(image, None, Some(reason)));
        }
    }
    unavailable
}

/// Why an image is missing: a forged one names the stage that builds it (it
/// is never pulled, even if declared external); an external one gives the
/// fixture's reason; any other says that nothing declares it.
fn missing(image: &str, forged_stage: Option<&str>, external: Option<&str>) -> String {
    match (forged_stage, external) {
        (Some(stage), _) => format!(
            "image {image} is not in the local registry: the forge's stage '{stage}' builds and publishes it \
             (scripts/forge {stage}); it is never pulled from anywhere else"
        ),
        (None, Some(reason)) => format!(
            "external image {image} cannot be had (not in the local Docker engine, and `docker pull` failed): {reason}"
        ),
        (None, None) => format!(
            "image {image} cannot be had: not in the local Docker engine, and `docker pull` failed; the forge does \
             not build it, and no ExternalImages object of the fixture declares it"
        ),
    }
}

/// The digest of the image the local registry holds under its tag.
async fn published(registry: &Registry, image: &str) -> Result<String> {
    let (name, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
    let address = tokio::net::lookup_host(&registry.push)
        .await?
        .next()
        .with_context(|| format!("{} resolves to no address", registry.push))?;
    let accept = [("Accept", "application/vnd.docker.distribution.manifest.v2+json")];
    let manifest = crate::http::get_with(address, &format!("/v2/{name}/manifests/{tag}"), &accept).await?;
    Ok(manifest_digest(&manifest))
}

/// A manifest's digest, as the registry names it: the SHA-256 of its bytes.
fn manifest_digest(manifest: &str) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, manifest.as_bytes());
    let hex: String = hash.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// The image's ID in the host's Docker, never pulling it.
async fn local_image_id(image: &str) -> Result<String> {
    let id = process::output("docker", &["image", "inspect", "--format", "{{.Id}}", image]).await?;
    Ok(id.trim().to_string())
}

/// Named in the project's namespace (`stateproof/...`), where anyone could
/// publish an image on a public registry under a name the forge uses.
fn is_project_image(image: &str) -> bool {
    containerd_name(image).is_some_and(|name| name.starts_with("docker.io/stateproof/"))
}

/// The image's ID in the host's Docker, pulling it when it is not there.
async fn pulled_image_id(image: &str) -> Option<String> {
    if let Ok(id) = local_image_id(image).await {
        return Some(id);
    }
    process::succeeds("docker", &["pull", "--quiet", image]).await.then_some(())?;
    local_image_id(image).await.ok()
}

/// A reference as containerd names it once `kind load` has imported the
/// `docker save` archive: normalized the way Docker does (`kafka:3.9` is
/// `docker.io/library/kafka:3.9`). `None` for a reference by digest, which
/// the archive does not name.
fn containerd_name(reference: &str) -> Option<String> {
    if reference.contains('@') || reference.is_empty() {
        return None;
    }
    let (domain, path) = match reference.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => ("docker.io", reference),
    };
    let domain = if domain == "index.docker.io" { "docker.io" } else { domain };
    let library = if domain == "docker.io" && !path.contains('/') { "library/" } else { "" };
    let tag = if path.rsplit('/').next().unwrap_or_default().contains(':') { "" } else { ":latest" };
    Some(format!("{domain}/{library}{path}{tag}"))
}

/// Marks each manifest in a node's report; it cannot start a line of JSON.
const MANIFEST_MARK: &str = "--- manifest ";

/// Lists the named images of the node's containerd, then prints the manifest
/// of each: `ctr` is all a node has (no crictl), and one `docker exec` per
/// node keeps the check to about a second. `images check` rather than
/// `images ls` because it also says whether all the content is there (an
/// import cut short by a node restart). `$@` are `name==` filters, which
/// `ctr` ORs. Ends in success so that one unreadable manifest costs only
/// that image.
const HOLDINGS_SCRIPT: &str = r#"
listed=$(ctr -n k8s.io images check "$@") || exit 1
printf '%s\n' "$listed"
for digest in $(printf '%s\n' "$listed" | awk 'NR > 1 && !seen[$3]++ {print $3}'); do
  printf '\n--- manifest %s\n' "$digest"
  ctr -n k8s.io content get "$digest"
done
exit 0
"#;

/// For each node, in parallel, what it holds of the images.
async fn holdings_of(nodes: &[String], images: &[HostImage]) -> Vec<HashMap<String, String>> {
    let filters: Vec<String> =
        images.iter().filter_map(|image| image.containerd_name.as_ref()).map(|name| format!("name=={name}")).collect();
    if filters.is_empty() {
        return vec![HashMap::new(); nodes.len()];
    }
    let checks: Vec<_> = nodes.iter().map(|node| tokio::spawn(node_holdings(node.clone(), filters.clone()))).collect();
    let mut holdings = Vec::new();
    for check in checks {
        holdings.push(check.await.unwrap_or_default());
    }
    holdings
}

/// What one node holds, by containerd name: the config digest of each
/// image. Empty when the node cannot be asked, so that everything is loaded.
async fn node_holdings(node: String, filters: Vec<String>) -> HashMap<String, String> {
    let mut args = vec!["exec", node.as_str(), "sh", "-c", HOLDINGS_SCRIPT, "sh"];
    args.extend(filters.iter().map(String::as_str));
    match process::output("docker", &args).await {
        Ok(report) => parse_holdings(&report),
        Err(_) => HashMap::new(),
    }
}

/// Reads a report of `HOLDINGS_SCRIPT`: image name to config digest, for
/// the images whose manifest names a config.
fn parse_holdings(report: &str) -> HashMap<String, String> {
    let mark = format!("\n{MANIFEST_MARK}");
    let mut sections = report.split(&mark);
    let listed = manifest_digests(sections.next().unwrap_or_default());
    let configs: HashMap<&str, String> = sections
        .filter_map(|section| {
            let (digest, manifest) = section.split_once('\n')?;
            Some((digest.trim(), config_digest(manifest)?))
        })
        .collect();
    listed.into_iter().filter_map(|(name, manifest)| Some((name.to_string(), configs.get(manifest)?.clone()))).collect()
}

/// Image name to manifest digest, from `ctr images check`, whose columns are
/// REF TYPE DIGEST STATUS SIZE UNPACKED, STATUS `complete (6/6)` when all the
/// content is there. Incomplete images are left out, to be loaded again.
fn manifest_digests(listed: &str) -> HashMap<&str, &str> {
    listed
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (name, digest, status) = (fields.next()?, fields.nth(1)?, fields.next()?);
            (digest.starts_with("sha256:") && status == "complete").then_some((name, digest))
        })
        .collect()
}

/// The config digest an image manifest names. `None` for anything else,
/// such as an index, which makes the image count as lacking.
fn config_digest(manifest: &str) -> Option<String> {
    let manifest: serde_json::Value = serde_json::from_str(manifest).ok()?;
    let digest = manifest.get("config")?.get("digest")?.as_str()?;
    digest.starts_with("sha256:").then(|| digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_port_taken_by_a_cluster_created_beside_is_worth_another_attempt() {
        // as a CI run printed it, two clusters created at once
        let lost = "`kind create cluster --name stateproof-autoscaling ...` failed (exit status: 1): docker: Error \
                    response from daemon: driver failed programming external connectivity on endpoint \
                    stateproof-autoscaling-control-plane (7d76e391): Bind for 127.0.0.1:45371 failed: port is \
                    already allocated";
        assert!(lost_port_race(lost));
        assert!(!lost_port_race("ERROR: failed to create cluster: node(s) already exist for a cluster"));
    }

    const KAFKA_CONFIG: &str = "sha256:59bd414c288c94b470caa46e1b7df85dbffef63d9cac299b36dcefe543c60092";
    const KAFKA_MANIFEST: &str = "sha256:cb59e3fc83849bf6c56214a201d3556b31ad8c7db4079f946adb3538f4c5f2ad";
    const ZOOKEEPER_MANIFEST: &str = "sha256:86627d681fe9bdbbbfd161cae8bfde45e86bbdf7a6ef40657be4b7ac33ec610f";

    /// As `ctr -n k8s.io images check name==... name==...` prints it
    /// (containerd 2.2); the third image is made up.
    const LISTED: &str = "\
REF                                TYPE                                                 DIGEST                                                                  STATUS         SIZE                UNPACKED
docker.io/stateproof/kafka:3.9     application/vnd.docker.distribution.manifest.v2+json sha256:cb59e3fc83849bf6c56214a201d3556b31ad8c7db4079f946adb3538f4c5f2ad complete (6/6) 393.6 MiB/393.6 MiB true
docker.io/stateproof/zookeeper:3.8 application/vnd.docker.distribution.manifest.v2+json sha256:86627d681fe9bdbbbfd161cae8bfde45e86bbdf7a6ef40657be4b7ac33ec610f complete (5/5) 380.6 MiB/380.6 MiB true
docker.io/stateproof/pulsar:4.0    application/vnd.docker.distribution.manifest.v2+json sha256:1111111111111111111111111111111111111111111111111111111111111111 incomplete (2/6) 12.0 MiB/393.6 MiB false
";

    /// As `ctr content get` prints the manifest `kind load` imported.
    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:59bd414c288c94b470caa46e1b7df85dbffef63d9cac299b36dcefe543c60092","size":4532},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar","digest":"sha256:d4636f3826eaf7470f52fb4d3b8349ca98564fd81b89f5619cbdb11063859502","size":354115584}]}"#;

    #[test]
    fn the_manifest_digest_comes_from_the_digest_column_of_complete_images() {
        let digests = manifest_digests(LISTED);
        assert_eq!(digests.len(), 2, "{digests:?}");
        assert_eq!(digests["docker.io/stateproof/kafka:3.9"], KAFKA_MANIFEST);
    }

    #[test]
    fn a_listing_without_images_has_no_digests() {
        assert!(manifest_digests("REF TYPE DIGEST STATUS SIZE UNPACKED \n").is_empty());
        assert!(manifest_digests("").is_empty());
    }

    #[test]
    fn the_config_digest_comes_from_the_manifest() {
        assert_eq!(config_digest(MANIFEST).as_deref(), Some(KAFKA_CONFIG));
        assert_eq!(config_digest(&format!("{MANIFEST}\n")).as_deref(), Some(KAFKA_CONFIG));
    }

    #[test]
    fn an_index_or_garbage_has_no_config_digest() {
        assert_eq!(config_digest(r#"{"schemaVersion":2,"manifests":[]}"#), None);
        assert_eq!(config_digest(""), None);
        assert_eq!(config_digest("ctr: not found"), None);
    }

    #[test]
    fn a_report_maps_names_to_config_digests() {
        let report =
            format!("{LISTED}\n{MANIFEST_MARK}{KAFKA_MANIFEST}\n{MANIFEST}\n{MANIFEST_MARK}{ZOOKEEPER_MANIFEST}\n");
        let holdings = parse_holdings(&report);
        assert_eq!(holdings.len(), 1, "zookeeper's manifest is unreadable: {holdings:?}");
        assert_eq!(holdings["docker.io/stateproof/kafka:3.9"], KAFKA_CONFIG);
    }

    #[test]
    fn the_script_marks_manifests_as_the_parser_expects() {
        assert!(HOLDINGS_SCRIPT.contains(&format!("\\n{MANIFEST_MARK}%s")));
    }

    #[test]
    fn an_image_is_held_only_with_the_same_id() {
        let image = HostImage::new("stateproof/kafka:3.9", KAFKA_CONFIG.to_string());
        let held = HashMap::from([("docker.io/stateproof/kafka:3.9".to_string(), KAFKA_CONFIG.to_string())]);
        let stale = HashMap::from([("docker.io/stateproof/kafka:3.9".to_string(), "sha256:0ld".to_string())]);
        assert!(image.is_held_in(&held));
        assert!(!image.is_held_in(&stale));
        assert!(!image.is_held_in(&HashMap::new()));
    }

    #[test]
    fn a_missing_image_is_explained_by_what_should_have_provided_it() {
        let forged = missing("stateproof/kafka:3.9", Some("kafka"), Some("declared external by mistake"));
        assert!(forged.contains("scripts/forge kafka"), "{forged}");
        let external = missing("raftkeeper/raftkeeper-k8s:latest", None, Some("built by RaftKeeper"));
        assert!(external.starts_with("external image") && external.ends_with("built by RaftKeeper"), "{external}");
        let stray = missing("busybox:1", None, None);
        assert!(stray.contains("no ExternalImages object"), "{stray}");
    }

    #[test]
    fn names_are_normalized_as_docker_does() {
        let name = |reference| containerd_name(reference);
        assert_eq!(name("stateproof/kafka:3.9").as_deref(), Some("docker.io/stateproof/kafka:3.9"));
        assert_eq!(name("busybox:1.36").as_deref(), Some("docker.io/library/busybox:1.36"));
        assert_eq!(name("busybox").as_deref(), Some("docker.io/library/busybox:latest"));
        assert_eq!(name("quay.io/strimzi/kafka").as_deref(), Some("quay.io/strimzi/kafka:latest"));
        assert_eq!(name("localhost:5000/kafka").as_deref(), Some("localhost:5000/kafka:latest"));
        assert_eq!(name("localhost/kafka:1").as_deref(), Some("localhost/kafka:1"));
        assert_eq!(name("docker.io/busybox").as_deref(), Some("docker.io/library/busybox:latest"));
        assert_eq!(name("index.docker.io/stateproof/kafka:3.9").as_deref(), Some("docker.io/stateproof/kafka:3.9"));
        assert_eq!(name("busybox@sha256:abc"), None);
    }

    #[test]
    fn a_name_of_the_project_is_never_pulled() {
        for forged_or_typo in ["stateproof/kafka:3.9", "stateproof/kafak:3.9", "docker.io/stateproof/zookeeper:3.8"] {
            assert!(is_project_image(forged_or_typo), "{forged_or_typo}");
        }
        for other in ["raftkeeper/raftkeeper-k8s:latest", "busybox", "localhost:5001/stateproof/kafka:3.9"] {
            assert!(!is_project_image(other), "{other}");
        }
    }

    #[test]
    fn a_manifest_digest_is_the_sha256_of_its_bytes() {
        assert_eq!(manifest_digest(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
