//! A suite's environment: its namespace on the cluster, the fixture applied
//! in it, and the system adapter that talks to the members.

use crate::cluster::Cluster;
use crate::k8s::apply::{self, Applier, Manifest};
use crate::k8s::conditions::statefulset_rolled_out;
use crate::k8s::namespace;
use crate::settings::Settings;
use crate::suite::{LoadedSuite, Suite};
use crate::systems::{Adapter, Members};
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

const NAMESPACE_DELETE_TIMEOUT: Duration = Duration::from_secs(180);

pub struct SuiteEnv {
    pub suite: Suite,
    pub cluster: Arc<Cluster>,
    pub namespace: String,
    pub manifests: Vec<Manifest>,
    pub members: Members,
    pub adapter: Adapter,
    pub sets: Api<StatefulSet>,
}

/// Why a suite cannot run here at all (its tests are skipped, never passed).
pub enum Readiness {
    Ready(Box<SuiteEnv>),
    Unavailable(String),
}

impl SuiteEnv {
    /// Everything but the deployment: manifests read, images provided, the
    /// namespace created. The caller owns the namespace from here on.
    pub async fn prepare(
        loaded: &LoadedSuite,
        settings: &Settings,
        cluster: Arc<Cluster>,
        run: &str,
    ) -> Result<Readiness> {
        let suite = loaded.suite.clone();
        let folders: Vec<_> = suite.fixture.iter().map(|name| settings.fixture_dir(name)).collect();
        let mut manifests = Vec::new();
        for folder in &folders {
            manifests.extend(apply::read_dir(folder)?);
        }
        let images: Vec<String> = apply::images(&manifests).into_iter().collect();
        let missing = cluster.provide_images(&images).await?;
        if !missing.is_empty() {
            return Ok(Readiness::Unavailable(format!(
                "image(s) {} cannot be had: not in the local Docker engine, and `docker pull` failed",
                missing.join(", ")
            )));
        }
        let namespace = namespace_name(&suite.name);
        namespace::create(&cluster.client, &namespace, run).await?;
        let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace);
        let members =
            Members { pods, statefulset: suite.params.statefulset.clone(), client_port: suite.params.client_port };
        let env = SuiteEnv {
            adapter: Adapter::new(suite.system, &members),
            sets: Api::namespaced(cluster.client.clone(), &namespace),
            suite,
            cluster,
            namespace,
            manifests,
            members,
        };
        let shown: Vec<_> = folders.iter().map(|folder| folder.display().to_string()).collect();
        eprintln!("stateproof: [{}] applying {} in namespace {}", env.suite.name, shown.join(" + "), env.namespace);
        Ok(Readiness::Ready(Box::new(env)))
    }

    /// Applies the fixture and waits until the system is healthy.
    pub async fn deploy(&self) -> Result<()> {
        self.apply().await?;
        self.wait_ready(self.suite.params.ready_timeout()).await.context("the fixture never became ready")
    }

    pub async fn apply(&self) -> Result<()> {
        Applier::new(self.cluster.client.clone(), &self.namespace).apply(&self.manifests).await
    }

    pub async fn replicas(&self) -> Result<u32> {
        let set = self.sets.get(&self.suite.params.statefulset).await?;
        Ok(set.spec.and_then(|spec| spec.replicas).unwrap_or(1).max(0) as u32)
    }

    /// The StatefulSet is rolled out and the system itself reports health.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let name = &self.suite.params.statefulset;
        let started = std::time::Instant::now();
        wait::until(&format!("StatefulSet {name} to roll out"), timeout, || async {
            Ok(match self.sets.get_opt(name).await? {
                None => Probe::Pending("does not exist".into()),
                Some(set) => match statefulset_rolled_out(&set) {
                    Ok(()) => Probe::Done(()),
                    Err(missing) => Probe::Pending(missing),
                },
            })
        })
        .await?;
        let replicas = self.replicas().await?;
        let remaining = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(30));
        wait::until(&format!("{} members to report a healthy ensemble", replicas), remaining, || async {
            Ok(match self.adapter.health(replicas).await? {
                Ok(()) => Probe::Done(()),
                Err(why) => Probe::Pending(why),
            })
        })
        .await?;
        Ok(())
    }

    pub async fn teardown(&self, keep: bool) -> Result<()> {
        if keep {
            eprintln!("stateproof: keeping namespace {}", self.namespace);
            return namespace::mark_kept(&self.cluster.client, &self.namespace).await;
        }
        namespace::delete(&self.cluster.client, &self.namespace, NAMESPACE_DELETE_TIMEOUT).await?;
        Applier::new(self.cluster.client.clone(), &self.namespace).delete_cluster_scoped(&self.manifests).await
    }
}

/// `sp-<suite>-<5 letters>`: letters only, because some systems derive peer
/// names by replacing digits in their own FQDN.
fn namespace_name(suite: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
    let base: String = suite.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("sp-{}-{suffix}", base.trim_matches('-').chars().take(40).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::namespace_name;

    #[test]
    fn namespace_names_are_valid_and_distinct() {
        let (a, b) = (namespace_name("ZooKeeper suite"), namespace_name("ZooKeeper suite"));
        assert!(a.starts_with("sp-zookeeper-suite-"), "{a}");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
