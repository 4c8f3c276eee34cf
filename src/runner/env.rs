//! A suite's environment: its namespace on the cluster, the fixture applied
//! in it, and the system adapter that talks to the members.

use crate::cluster::Cluster;
use crate::cluster::local_volumes::{self, LocalVolumesSpec};
use crate::k8s::apply::{self, Applier, Manifest};
use crate::k8s::conditions::statefulset_rolled_out;
use crate::k8s::namespace;
use crate::settings::Settings;
use crate::suite::{LoadedSuite, Suite};
use crate::systems::{Adapter, Members};
use crate::wait::{self, Probe};
use anyhow::{Context, Result, bail};
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
    /// The node setup the fixture asks for.
    pub local_volumes: Option<LocalVolumesSpec>,
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
        let local_volumes = take_local_volumes(&mut manifests, &namespace)?;
        if let Some(replicas) = suite.deploy.replicas {
            set_replicas(&mut manifests, &suite.params.statefulset, replicas)?;
        }
        let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace);
        let members =
            Members { pods, statefulset: suite.params.statefulset.clone(), client_port: suite.params.client_port };
        let adapter = Adapter::new(suite.system, &members, suite.params.front.clone())?;
        namespace::create(&cluster.client, &namespace, run).await?;
        let env = SuiteEnv {
            adapter,
            sets: Api::namespaced(cluster.client.clone(), &namespace),
            local_volumes,
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

    /// Applies the fixture and, unless the suite says it will not get there,
    /// waits until the system is healthy.
    pub async fn deploy(&self) -> Result<()> {
        if let Some(spec) = &self.local_volumes {
            let nodes = local_volumes::setup(&self.cluster, spec, &self.namespace)
                .await
                .context("setting up the fixture's LocalVolumes")?;
            eprintln!(
                "stateproof: [{}] local volumes {:?} on nodes {}",
                self.suite.name,
                spec.volumes.iter().map(|volume| &volume.name).collect::<Vec<_>>(),
                nodes.join(", ")
            );
        }
        self.apply().await?;
        if !self.suite.deploy.wait_ready {
            return Ok(());
        }
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
        let started = std::time::Instant::now();
        self.wait_rolled_out(timeout).await?;
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

    /// The StatefulSet under test has every replica ready, at its current revision.
    pub async fn wait_rolled_out(&self, timeout: Duration) -> Result<(), wait::TimedOut> {
        let name = &self.suite.params.statefulset;
        wait::until(&format!("StatefulSet {name} to roll out"), timeout, || async {
            Ok(match self.sets.get_opt(name).await? {
                None => Probe::Pending("does not exist".into()),
                Some(set) => match statefulset_rolled_out(&set) {
                    Ok(()) => Probe::Done(()),
                    Err(missing) => Probe::Pending(missing),
                },
            })
        })
        .await
    }

    pub async fn teardown(&self, keep: bool) -> Result<()> {
        if keep {
            eprintln!("stateproof: keeping namespace {}", self.namespace);
            return namespace::mark_kept(&self.cluster.client, &self.namespace).await;
        }
        // Volumes go after their claims' namespace, and whatever happened to it.
        let deleted = namespace::delete(&self.cluster.client, &self.namespace, NAMESPACE_DELETE_TIMEOUT).await;
        let cluster_scoped = match deleted {
            Ok(()) => {
                Applier::new(self.cluster.client.clone(), &self.namespace).delete_cluster_scoped(&self.manifests).await
            }
            Err(error) => Err(error),
        };
        cluster_scoped.and(local_volumes::reap(&self.cluster, &self.namespace).await)
    }
}

/// Takes the fixture's `LocalVolumes` object (stateproof's, not the API
/// server's) out of the manifests, and checks that its volumes can hold what
/// the StatefulSets' claims of its StorageClass ask. The StorageClass gets
/// the suite's namespace in its name, in the spec and in the claims that use
/// it, so that suites running side by side never bind each other's volumes.
fn take_local_volumes(manifests: &mut Vec<Manifest>, namespace: &str) -> Result<Option<LocalVolumesSpec>> {
    let is_ours =
        |manifest: &Manifest| {
            manifest.object.types.as_ref().is_some_and(|types| {
                types.api_version == local_volumes::API_VERSION && types.kind == local_volumes::KIND
            })
        };
    let (ours, theirs): (Vec<Manifest>, Vec<Manifest>) = std::mem::take(manifests).into_iter().partition(is_ours);
    *manifests = theirs;
    let Some(found) = ours.first() else { return Ok(None) };
    if ours.len() > 1 {
        bail!("the fixture holds {} LocalVolumes objects; one is supported", ours.len());
    }
    let mut spec = LocalVolumesSpec::from_object(&found.object.data)
        .with_context(|| format!("{}: LocalVolumes", found.file.display()))?;
    let claims = apply::claim_requests(manifests, &spec.storage_class);
    let refused = spec.unsatisfiable(&claims)?;
    if !refused.is_empty() {
        bail!(
            "{}: claim template(s) {} of StorageClass {} ask more than the largest local volume: they would stay Pending",
            found.file.display(),
            refused.join(", "),
            spec.storage_class
        );
    }
    let own_class = format!("{}-{namespace}", spec.storage_class);
    apply::rename_storage_class(manifests, &spec.storage_class, &own_class);
    spec.storage_class = own_class;
    Ok(Some(spec))
}

/// Sets the replicas of the StatefulSet `name` among the manifests.
fn set_replicas(manifests: &mut [Manifest], name: &str, replicas: u32) -> Result<()> {
    let found = manifests.iter_mut().find(|manifest| {
        manifest.object.types.as_ref().is_some_and(|types| types.kind == "StatefulSet")
            && manifest.object.metadata.name.as_deref() == Some(name)
    });
    let manifest =
        found.with_context(|| format!("the fixture has no StatefulSet {name} to deploy with {replicas} replicas"))?;
    manifest.object.data["spec"]["replicas"] = replicas.into();
    Ok(())
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
    use super::{namespace_name, set_replicas, take_local_volumes};
    use crate::k8s::apply::{Manifest, parse};

    fn manifests(journal_request: &str) -> Vec<Manifest> {
        let text = format!(
            r#"
apiVersion: stateproof.io/v1
kind: LocalVolumes
metadata: {{name: disks}}
spec:
  storageClass: fast-local
  nodeLabel: {{fast: "yes"}}
  nodes: 2
  volumes: [{{name: journal, capacity: 12Gi}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: bookie}}
spec:
  replicas: 2
  volumeClaimTemplates:
    - metadata: {{name: journal-disk}}
      spec: {{storageClassName: fast-local, resources: {{requests: {{storage: {journal_request}}}}}}}
"#
        );
        parse(&text).unwrap().into_iter().map(|object| Manifest { file: "f/bookies.yaml".into(), object }).collect()
    }

    #[test]
    fn local_volumes_are_taken_out_and_their_class_made_the_suites_own() {
        let mut found = manifests("12Gi");
        let spec = take_local_volumes(&mut found, "sp-x").unwrap().unwrap();
        assert_eq!(spec.storage_class, "fast-local-sp-x");
        assert_eq!(found.len(), 1, "the LocalVolumes object is not applied");
        let class = &found[0].object.data["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"];
        assert_eq!(class, "fast-local-sp-x");
    }

    #[test]
    fn a_claim_larger_than_the_volumes_is_refused_by_name() {
        let error = take_local_volumes(&mut manifests("13Gi"), "sp-x").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("f/bookies.yaml") && text.contains("journal-disk (13Gi)"), "{text}");
    }

    #[test]
    fn replicas_are_set_on_the_named_statefulset_only() {
        let mut found = manifests("1Gi");
        set_replicas(&mut found, "bookie", 3).unwrap();
        assert_eq!(found[1].object.data["spec"]["replicas"], 3);
        assert!(set_replicas(&mut found, "zk", 3).is_err());
    }

    #[test]
    fn namespace_names_are_valid_and_distinct() {
        let (a, b) = (namespace_name("ZooKeeper suite"), namespace_name("ZooKeeper suite"));
        assert!(a.starts_with("sp-zookeeper-suite-"), "{a}");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }
}
