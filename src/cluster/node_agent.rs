//! stateproof's node agent: the harness's hands on the nodes of a cluster it
//! reaches only through a kubeconfig. A privileged DaemonSet (node_agent.yaml;
//! its image from the forge, pulled from the user's registry), installed into
//! a namespace of its own on first use and deleted with it at the end of the
//! run. Every action is an exec into the agent's pod on the node: most enter
//! the host's namespaces with nsenter; a stopped node is started again
//! through the API server (no exec reaches a node whose kubelet is down).

use super::kind::ContainerRef;
use super::signal;
use crate::k8s::apply::{self, Applier, Manifest};
use crate::k8s::conditions::{FirstPullFailure, pull_failure};
use crate::k8s::exec::exec_ok;
use crate::k8s::namespace;
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use std::path::PathBuf;
use std::time::Duration;

const MANIFEST: &str = include_str!("node_agent.yaml");
const DAEMONSET: &str = "node-agent";
const CONTAINER: &str = "agent";
const SELECTOR: &str = "app=stateproof-node-agent";
/// node-agent reads it: a node's key set to "start" ends that node's stop.
const START_CONFIGMAP: &str = "node-start";
const READY_TIMEOUT: Duration = Duration::from_secs(180);
const REMOVE_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a node stays stopped when the harness never asks for it
/// again (it died): node-stop starts the kubelet by itself then.
const NODE_STOP_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// Into every namespace of the host's init process, as root.
const ON_HOST: [&str; 8] = ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p"];

pub struct NodeAgent {
    client: Client,
    namespace: String,
    pods: Api<Pod>,
}

impl NodeAgent {
    /// Installs the agent for the run `run` and waits until it runs on
    /// every node; an image its nodes cannot pull ends the wait at once.
    pub async fn install(client: &Client, run: &str, image: &str) -> Result<NodeAgent> {
        let namespace = namespace::name_for("node-agent");
        eprintln!("stateproof: installing stateproof's node agent ({image}) in namespace {namespace}");
        namespace::create(client, &namespace, run).await?;
        let agent = NodeAgent { client: client.clone(), pods: Api::namespaced(client.clone(), &namespace), namespace };
        let started = async {
            Applier::new(client.clone(), &agent.namespace).apply(&manifests(&agent.namespace, image)?).await?;
            agent.wait_running(image).await
        };
        if let Err(error) = started.await {
            // Asked again, it installs anew: this namespace would be left.
            agent.remove().await.ok();
            return Err(error.context("stateproof's node agent did not start"));
        }
        Ok(agent)
    }

    async fn wait_running(&self, image: &str) -> Result<()> {
        let sets = Api::<DaemonSet>::namespaced(self.client.clone(), &self.namespace);
        wait::until("the node agent to run on every node", READY_TIMEOUT, || async {
            let status = sets.get(DAEMONSET).await?.status.unwrap_or_default();
            if let Some(why) = self.cannot_pull(image).await? {
                return Ok(Probe::Never(why));
            }
            let (ready, wanted) = (status.number_ready, status.desired_number_scheduled);
            Ok(if wanted > 0 && ready == wanted {
                Probe::Done(())
            } else {
                Probe::Pending(format!("{ready}/{wanted} ready"))
            })
        })
        .await?;
        Ok(())
    }

    async fn cannot_pull(&self, image: &str) -> Result<Option<String>> {
        let pods = self.pods.list(&ListParams::default().labels(SELECTOR)).await?;
        Ok(pods.items.iter().find_map(|pod| {
            let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
            let why = pull_failure(status, FirstPullFailure::Counts)?;
            Some(format!(
                "its pod {} cannot pull {image} ({why}); is STATEPROOF_IMAGE_REGISTRY a registry its nodes reach, \
                 and did the forge push to it?",
                pod.name_any(),
            ))
        }))
    }

    async fn pod_on(&self, node: &str) -> Result<String> {
        let on_node = ListParams::default().labels(SELECTOR).fields(&format!("spec.nodeName={node}"));
        let pods = self.pods.list(&on_node).await?;
        pods.items
            .iter()
            .find(|pod| pod.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Running"))
            .map(|pod| pod.name_any())
            .with_context(|| format!("no node agent runs on node {node}"))
    }

    async fn exec(&self, node: &str, command: &[&str]) -> Result<String> {
        let pod = self.pod_on(node).await?;
        exec_ok(&self.pods, &pod, CONTAINER, command).await.with_context(|| format!("on node {node}"))
    }

    /// Runs a shell script on the node, as root, in the host's namespaces.
    pub async fn run_on_node(&self, node: &str, script: &str) -> Result<String> {
        self.exec(node, &[&ON_HOST[..], &["--", "sh", "-c", script]].concat()).await
    }

    /// Runs a command on the node, as root, in the host's namespaces.
    pub async fn run_command(&self, node: &str, command: &[&str]) -> Result<String> {
        self.exec(node, &[&ON_HOST[..], &["--"], command].concat()).await
    }

    /// Signals the main process of a pod's container (`signal::script`).
    pub async fn signal_container(&self, node: &str, target: &ContainerRef<'_>, signal: &str) -> Result<()> {
        self.exec(node, &["sh", "-c", &signal::script(target, signal)?]).await.map(drop)
    }

    /// Stops the node's kubelet and kills its pods (node-stop), until
    /// `start_node` or the deadline.
    pub async fn stop_node(&self, node: &str) -> Result<()> {
        self.ask_start(node, None).await?;
        let script = format!(
            "cp /usr/local/bin/node-stop /host/run/stateproof-node-stop && {} -- systemd-run --unit \
             stateproof-node-stop --collect --quiet sh /run/stateproof-node-stop {} {}",
            ON_HOST.join(" "),
            self.namespace,
            NODE_STOP_DEADLINE.as_secs()
        );
        self.exec(node, &["sh", "-c", &script]).await.map(drop)
    }

    /// Asks the agent on a stopped node to start it again: it looks every 2 s.
    pub async fn start_node(&self, node: &str) -> Result<()> {
        self.ask_start(node, Some("start")).await
    }

    async fn ask_start(&self, node: &str, value: Option<&str>) -> Result<()> {
        let configmaps = Api::<ConfigMap>::namespaced(self.client.clone(), &self.namespace);
        let patch = serde_json::json!({ "data": { node: value } });
        configmaps
            .patch(START_CONFIGMAP, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("asking the node agent to start node {node}"))?;
        Ok(())
    }

    pub async fn remove(&self) -> Result<()> {
        namespace::delete(&self.client, &self.namespace, REMOVE_TIMEOUT).await
    }
}

fn manifests(namespace: &str, image: &str) -> Result<Vec<Manifest>> {
    let text = MANIFEST.replace("{namespace}", namespace).replace("{image}", image);
    let file = PathBuf::from(file!()).with_file_name("node_agent.yaml");
    Ok(apply::parse(&text)?.into_iter().map(|object| Manifest { file: file.clone(), object }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_the_namespace_and_the_image_everywhere_they_belong() {
        let manifests = manifests("sp-node-agent-abcde", "registry.example/stateproof/node-agent:1").unwrap();
        let text = serde_json::to_string(&manifests.iter().map(|m| &m.object).collect::<Vec<_>>()).unwrap();
        assert!(!text.contains("{namespace}") && !text.contains("{image}"), "{text}");
        let binding = manifests.iter().find(|m| m.object.types.as_ref().unwrap().kind == "RoleBinding").unwrap();
        assert_eq!(binding.object.data["subjects"][0]["namespace"], "sp-node-agent-abcde");
        assert_eq!(
            apply::images(&manifests).into_iter().collect::<Vec<_>>(),
            ["registry.example/stateproof/node-agent:1"]
        );
    }
}
