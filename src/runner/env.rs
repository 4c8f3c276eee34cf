//! A suite's environment: its namespace on the cluster, the fixture applied
//! in it, and the system adapter that talks to the members.

use super::gate::{Access, ClusterGate};
use super::observer::Observer;
use super::operator::{self, HostOperator, Located};
use crate::checks::members;
use crate::cluster::Cluster;
use crate::cluster::local_volumes;
use crate::cluster::volume_recycler::VolumeRecycler;
use crate::k8s::apply::{self, Applier, Manifest};
use crate::k8s::conditions::{restart_count, statefulset_rolled_out};
use crate::k8s::namespace;
use crate::suite::fixture::{LocalVolumesSpec, Reclaim};
use crate::suite::{LoadedSuite, Member, Suite};
use crate::systems::{Members, System, SystemKind};
use crate::wait::{self, Probe};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const NAMESPACE_DELETE_TIMEOUT: Duration = Duration::from_secs(180);
const LOG_TAIL_LINES: i64 = 15;

pub struct SuiteEnv {
    pub suite: Suite,
    pub cluster: Arc<Cluster>,
    pub namespace: String,
    pub manifests: Vec<Manifest>,
    pub members: Members,
    pub system: Box<dyn System>,
    pub sets: Api<StatefulSet>,
    /// The node setup the fixture asks for, its StorageClass made the suite's own.
    pub local_volumes: Option<LocalVolumesSpec>,
    /// Offers its released volumes again, where the setup asks for that.
    pub recycler: Option<VolumeRecycler>,
    /// Watches of the namespace's pods and the cluster's nodes.
    pub observer: Observer,
    /// In a chained suite, what each test hands to the next.
    pub handover: std::sync::Mutex<Handover>,
    /// The operator the fixture needs, where the settings put it; its log.
    operator: Option<(Located, PathBuf)>,
    running_operator: tokio::sync::Mutex<Option<HostOperator>>,
}

/// What a test of a chained suite hands to the next: the producers and
/// sends so far, whose messages a later test may read and judge, and the
/// next message number, so that ids stay unique across the suite.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    pub sends: Vec<crate::history::Event>,
    pub next_message: u64,
}

impl SuiteEnv {
    /// Why the suite cannot run at all, if the operator its fixture needs
    /// cannot be had. Its tests are then skipped, never passed; asked, with
    /// `images_missing`, before the suite takes a place on the cluster, which
    /// it would hold for nothing.
    pub fn operator_missing(loaded: &LoadedSuite) -> Option<String> {
        loaded.fixture.operator.as_ref().map(operator::locate)?.err()
    }

    /// Why the suite cannot run on this cluster, if an external image its
    /// fixture needs cannot be had there.
    pub async fn images_missing(loaded: &LoadedSuite, cluster: &Cluster) -> Result<Option<String>> {
        let images: Vec<String> = apply::images(&loaded.fixture.manifests).into_iter().collect();
        let unavailable = cluster.unavailable_images(&images, &loaded.fixture.external_images).await?;
        Ok((!unavailable.is_empty()).then(|| unavailable.join("; ")))
    }

    /// Everything but the deployment: images provided, the operator found,
    /// the namespace created. The caller owns the namespace from here on;
    /// `logs` is the suite's folder for what programs beside it write.
    pub async fn prepare(loaded: &LoadedSuite, cluster: Arc<Cluster>, run: &str, logs: &Path) -> Result<Self> {
        let suite = loaded.suite.clone();
        let located = loaded.fixture.operator.as_ref().map(operator::locate).transpose().map_err(anyhow::Error::msg)?;
        let operator = located.map(|located| (located, logs.join("operator.log")));
        let mut manifests = loaded.fixture.manifests.clone();
        let images: Vec<String> = apply::images(&manifests).into_iter().collect();
        cluster.provide_images(&images).await?;
        cluster.use_provided_images(&mut manifests);
        let namespace = namespace::name_for(&loaded.label());
        let local_volumes = loaded.fixture.local_volumes.clone().map(|mut spec| {
            // The suite's own class, so that suites side by side never bind each other's volumes.
            let own_class = format!("{}-{namespace}", spec.storage_class);
            apply::rename_storage_class(&mut manifests, &spec.storage_class, &own_class);
            spec.storage_class = own_class;
            spec
        });
        if let Some(replicas) = suite.deploy.replicas {
            apply::set_replicas(&mut manifests, &suite.members.statefulset, replicas)?;
        }
        let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace);
        let members = Members {
            pods,
            statefulset: suite.members.statefulset.clone(),
            container: suite.members.container.clone(),
        };
        let kind = SystemKind::named(&suite.system).with_context(|| format!("unknown system {}", suite.system))?;
        let system = (kind.build)(&members, &suite.params)?;
        namespace::create(&cluster.client, &namespace, run).await?;
        let recycler = local_volumes
            .as_ref()
            .filter(|spec| spec.reclaim == Reclaim::Recycle)
            .map(|_| VolumeRecycler::start(cluster.clone(), &namespace));
        let env = SuiteEnv {
            observer: Observer::watch(&cluster.client, &namespace),
            handover: Default::default(),
            system,
            sets: Api::namespaced(cluster.client.clone(), &namespace),
            local_volumes,
            recycler,
            suite,
            cluster,
            namespace,
            manifests,
            members,
            operator,
            running_operator: Default::default(),
        };
        eprintln!(
            "stateproof: [{}] applying {} in namespace {}",
            loaded.label(),
            env.suite.fixture.join(" + "),
            env.namespace
        );
        Ok(env)
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
        if let Some((located, log)) = &self.operator {
            let started = HostOperator::start(located, &self.cluster, &self.namespace, log).await?;
            *self.running_operator.lock().await = Some(started);
        }
        self.apply().await?;
        if !self.suite.deploy.wait_ready {
            return Ok(());
        }
        self.wait_ready(self.suite.defaults.ready_timeout).await.context("the fixture never became ready")
    }

    pub async fn apply(&self) -> Result<()> {
        Applier::new(self.cluster.client.clone(), &self.namespace).apply(&self.manifests).await
    }

    /// The members as the StatefulSet has them now.
    pub async fn ordinals(&self) -> Result<Vec<Member>> {
        Ok(ordinals_of(&self.sets.get(&self.suite.members.statefulset).await?))
    }

    /// The StatefulSet is rolled out and the system itself reports health.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let started = std::time::Instant::now();
        self.wait_rolled_out(timeout).await?;
        let members = self.ordinals().await?;
        let remaining = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(30));
        wait::until(&format!("{} members to report a healthy ensemble", members.len()), remaining, || async {
            Ok(match self.system.health(&members).await? {
                Ok(()) => Probe::Done(()),
                Err(why) => Probe::Pending(why),
            })
        })
        .await?;
        Ok(())
    }

    /// The StatefulSet under test has every replica ready, at its current
    /// revision. A member that will not come up by waiting (refused by the
    /// scheduler, crash looping) ends the wait at once; either way the
    /// failure says what each member does.
    pub async fn wait_rolled_out(&self, timeout: Duration) -> Result<()> {
        let name = &self.suite.members.statefulset;
        let container = &self.suite.members.container;
        // Restarts count from the wait's start, or from the last time the
        // fixture's other StatefulSets were seen not ready: a broker's
        // restarts while its ZooKeeper formed say nothing of the broker.
        let restarts_before = std::sync::Mutex::new(self.restart_counts().await?);
        let changes = self.observer.changes();
        let waited = wait::until_changed(&format!("StatefulSet {name} to roll out"), timeout, changes, || async {
            let sets = self.sets.list(&Default::default()).await?.items;
            let Some(set) = sets.iter().find(|set| set.metadata.name.as_ref() == Some(name)) else {
                return Ok(Probe::Pending("does not exist".into()));
            };
            let Err(missing) = statefulset_rolled_out(set) else { return Ok(Probe::Done(())) };
            let unready = members::unready_others(&sets, name);
            let now = chrono::Utc::now();
            for member in ordinals_of(set) {
                let pod = self.members.pod(member);
                let Some(found) = self.members.pods.get_opt(&pod).await? else { continue };
                let uid = found.metadata.uid.clone().unwrap_or_default();
                let mut counts = restarts_before.lock().unwrap();
                if !unready.is_empty() {
                    counts.insert(uid.clone(), restart_count(&found, container));
                }
                let before = counts.get(&uid).copied().unwrap_or(0);
                drop(counts);
                let looked_at = members::Looked { restarts_before: before, unready_others: &unready, now };
                if let Some(why) = members::permanent(&pod, &found, container, &looked_at) {
                    return Ok(Probe::Never(why));
                }
            }
            Ok(Probe::Pending(missing))
        })
        .await;
        match waited {
            Ok(()) => Ok(()),
            Err(unmet) => bail!("{unmet}\n{}", self.members_report().await?),
        }
    }

    /// Each member pod's restart count, by pod UID (none before the
    /// StatefulSet exists): a pod created later starts from zero.
    async fn restart_counts(&self) -> Result<HashMap<String, i32>> {
        let mut counts = HashMap::new();
        let Some(set) = self.sets.get_opt(&self.suite.members.statefulset).await? else { return Ok(counts) };
        for member in ordinals_of(&set) {
            let Some(pod) = self.members.pods.get_opt(&self.members.pod(member)).await? else { continue };
            if let Some(uid) = pod.metadata.uid.clone() {
                counts.insert(uid, restart_count(&pod, &self.suite.members.container));
            }
        }
        Ok(counts)
    }

    /// What each member is doing, with the previous logs of those restarted
    /// and the current logs of those running but not ready, then how the
    /// fixture's other StatefulSets stand.
    pub async fn members_report(&self) -> Result<String> {
        let container = &self.suite.members.container;
        let mut report = Vec::new();
        for member in self.ordinals().await? {
            let name = self.members.pod(member);
            let pod = self.members.pods.get_opt(&name).await?;
            report.push(members::describe(&name, pod.as_ref(), container));
            let Some(pod) = pod else { continue };
            if restart_count(&pod, container) > 0 {
                report.push(self.log_tail(&name, true).await);
            }
            if members::running_unready(&pod, container) {
                report.push(self.log_tail(&name, false).await);
            }
        }
        let sets = self.sets.list(&Default::default()).await?.items;
        report.extend(members::others(&sets, &self.suite.members.statefulset));
        Ok(report.join("\n"))
    }

    /// The last lines a member's container logged, now or before its last
    /// restart, indented under a heading.
    async fn log_tail(&self, pod: &str, previous: bool) -> String {
        let params = LogParams {
            container: Some(self.suite.members.container.clone()),
            previous,
            tail_lines: Some(LOG_TAIL_LINES),
            ..Default::default()
        };
        let which = if previous { "previous" } else { "current" };
        match self.members.pods.logs(pod, &params).await {
            Ok(logs) => format!("  {which} logs of {pod} (last {LOG_TAIL_LINES} lines):\n{}", indent(&logs)),
            Err(error) => format!("  no {which} logs of {pod}: {error}"),
        }
    }

    /// Deletes the namespace, then what lives outside it; with `gate`, the
    /// volumes' directories on the nodes only once no test has nodes stopped.
    pub async fn teardown(&self, keep: bool, gate: Option<&ClusterGate>) -> Result<()> {
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
        if let Some(recycler) = &self.recycler {
            recycler.stop();
        }
        // Only now: its objects may wait on it to let their namespace go.
        let operator_stopped = match self.running_operator.lock().await.take() {
            Some(operator) => operator.stop(&self.cluster).await,
            None => Ok(()),
        };
        let _pass = match gate {
            Some(gate) => Some(gate.enter(Access::Shared).await),
            None => None,
        };
        let reaped = local_volumes::reap(&self.cluster, &self.namespace).await;
        cluster_scoped.and(operator_stopped).and(reaped)
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

/// A StatefulSet's members: its ordinals, from its start ordinal
/// (`spec.ordinals.start`, 0 by default).
fn ordinals_of(set: &StatefulSet) -> Vec<Member> {
    let spec = set.spec.clone().unwrap_or_default();
    let start = spec.ordinals.and_then(|ordinals| ordinals.start).unwrap_or(0).max(0) as u32;
    let replicas = spec.replicas.unwrap_or(1).max(0) as u32;
    (start..start + replicas).collect()
}
