//! One period of the controller: clean up after earlier scale-downs,
//! observe, pass the gate, decide, act.

use crate::config::{Config, Defect};
use crate::decide::{self, Decision, Observed, Replication};
use crate::decommission::{self, Live, Victim};
use crate::events::{Events, say};
use crate::observe;
use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a removed pod may take to go (its grace period and then some).
const POD_GONE_WITHIN: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(2);

pub struct Controller {
    client: Client,
    config: Config,
    statefulsets: Api<StatefulSet>,
    pods: Api<Pod>,
    claims: Api<PersistentVolumeClaim>,
    /// Removed pods whose claims are still to delete, once the pods are gone.
    removed: BTreeSet<String>,
}

impl Controller {
    pub fn new(client: Client, config: Config) -> Self {
        let namespace = config.bookies.namespace.clone();
        Controller {
            statefulsets: Api::namespaced(client.clone(), &namespace),
            pods: Api::namespaced(client.clone(), &namespace),
            claims: Api::namespaced(client.clone(), &namespace),
            client,
            config,
            removed: BTreeSet::new(),
        }
    }

    pub async fn period(&mut self) -> Result<()> {
        let name = self.config.bookies.statefulset.clone();
        let statefulset = self.statefulsets.get(&name).await.with_context(|| format!("StatefulSet {name}"))?;
        let events = Events::new(self.client.clone(), &statefulset);
        self.delete_claims_of_removed(&events).await;

        let pods = observe::pods(&self.pods, &statefulset).await?;
        let window = (self.config.defect != Some(Defect::NoStabilization))
            .then_some(self.config.autoscaler.stabilization_window_ms);
        if let Err(why) = observe::settled(&statefulset, &pods, Timestamp::now().as_millisecond(), window) {
            say(&format!("not settled, no decision: {why}"));
            return Ok(());
        }
        let port = self.config.bookies.http_port;
        let bookies = observe::bookies(&pods, port).await?;
        let replication = match pods.first() {
            Some(pod) => observe::replication(pod, port).await,
            None => Replication::Unknown("no bookie to ask".into()),
        };
        // The gate has made spec.replicas, the pods and the bookies agree.
        let observed = Observed { statefulset: name, replicas: pods.len() as u32, bookies, replication };
        say(&summary(&observed));
        match decide::decide(&self.config.autoscaler, self.config.defect, &observed) {
            Decision::Stay { why } => say(&format!("no scaling: {why}")),
            Decision::ScaleUp { from, to, why } => match self.resize(from, to).await {
                Ok(()) => events.record("ScaledUp", format!("scaling up from {from} to {to}: {why}")).await,
                Err(error) => {
                    events.record("ScaleUpFailed", format!("scaling up from {from} to {to}: {error:#}")).await
                }
            },
            Decision::ScaleDown { from, to, victims, decommission, why } => {
                let how = if decommission { "decommissioning" } else { "WITHOUT decommissioning" };
                let note = format!("scaling down from {from} to {to}, {how} {}: {why}", victims.join(", "));
                events.record("ScalingDown", note).await;
                for (step, victim) in victims.iter().enumerate() {
                    let replicas = from - step as u32;
                    // The pod the StatefulSet deletes: its highest ordinal; the
                    // victim unless the self-check picks victims by string order.
                    let removed = format!("{}-{}", observed.statefulset, first_ordinal(&statefulset) + replicas - 1);
                    if !self.remove_one(&pods, &events, replicas, &removed, victim, decommission).await {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Shrinks the set by one from `replicas`, `victim` decommissioned first
    /// (unless the self-check says not to); then waits for `removed`, the pod
    /// the StatefulSet deletes, to go and deletes its claims. Whether the
    /// next victim may follow.
    async fn remove_one(
        &mut self,
        pods: &[Pod],
        events: &Events,
        replicas: u32,
        removed: &str,
        victim: &str,
        decommission: bool,
    ) -> bool {
        let mut decommissioned = None;
        if decommission {
            let live = match self.live(pods, victim, events) {
                Ok(live) => live,
                Err(why) => {
                    events.record("DecommissionFailed", format!("decommission of {victim} failed: {why}")).await;
                    return false;
                }
            };
            let target = Victim { pod: victim.to_string(), ip: live.victim.host.clone() };
            match decommission::run(&live, &target).await {
                Ok(id) => decommissioned = Some((id, live.victim)),
                Err(_) => return false,
            }
        }
        if let Err(error) = self.resize(replicas, replicas - 1).await {
            let mut note = format!("scaling down from {replicas} to {}: {error:#}", replicas - 1);
            // Leave the victim as a failed decommission would: writable. Its
            // cookie is gone, so it would not survive a restart; the next
            // period's decision decommissions it again if still wanted.
            if let Some((id, http)) = decommissioned {
                note += &match http.set_read_only(false).await {
                    Ok(()) => format!("; {victim} ({id}) is writable again, without its cookie"),
                    Err(error) => format!("; setting {victim} writable again failed too: {error:#}"),
                };
            }
            events.record("ScaleDownFailed", note).await;
            return false;
        }
        let id = decommissioned.map_or_else(|| "not decommissioned".to_string(), |(id, _)| id);
        events
            .record("ScaledDown", format!("scaled down from {replicas} to {}: removed {removed} ({id})", replicas - 1))
            .await;
        self.removed.insert(removed.to_string());
        if !self.gone(removed).await {
            say(&format!("{removed} is still there after {POD_GONE_WITHIN:?}; its claims go once it is gone"));
            return false;
        }
        self.delete_claims_of_removed(events).await;
        true
    }

    /// The real decommission around a victim: the shell runs in the first
    /// other bookie pod, which stays.
    fn live<'a>(&'a self, pods: &[Pod], victim: &str, events: &'a Events) -> Result<Live<'a>, String> {
        let target = pods.iter().find(|pod| observe::name(pod) == victim).ok_or("its pod is not there")?;
        let helper =
            pods.iter().find(|pod| observe::name(pod) != victim).ok_or("no other bookie pod to run the shell in")?;
        Ok(Live {
            victim: observe::http(target, self.config.bookies.http_port).map_err(|error| format!("{error:#}"))?,
            pods: &self.pods,
            helper: observe::name(helper).to_string(),
            container: &self.config.bookies.container,
            events,
        })
    }

    /// Sets `spec.replicas` from `from` to `to`, if it is still `from`: a
    /// merge patch of that one field.
    async fn resize(&self, from: u32, to: u32) -> Result<()> {
        let name = &self.config.bookies.statefulset;
        let current = self.statefulsets.get(name).await?.spec.and_then(|spec| spec.replicas).unwrap_or(1);
        if current != from as i32 {
            bail!("spec.replicas changed to {current} meanwhile; leaving it");
        }
        let patch = serde_json::json!({"spec": {"replicas": to}});
        self.statefulsets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    async fn gone(&self, pod: &str) -> bool {
        let deadline = tokio::time::Instant::now() + POD_GONE_WITHIN;
        while tokio::time::Instant::now() < deadline {
            match self.pods.get_opt(pod).await {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(error) => say(&format!("cannot tell whether {pod} is gone: {error}")),
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    /// Deletes the claims of removed pods that are gone. The StatefulSet is
    /// read afresh: it may have shrunk since the period began.
    async fn delete_claims_of_removed(&mut self, events: &Events) {
        if self.removed.is_empty() {
            return;
        }
        let statefulset = match self.statefulsets.get(&self.config.bookies.statefulset).await {
            Ok(statefulset) => statefulset,
            Err(error) => {
                say(&format!("the claims of removed bookies wait: {error}"));
                return;
            }
        };
        for pod in self.removed.clone() {
            let Some(claims) = claims_of(&statefulset, &pod) else {
                say(&format!("keeping the claims of {pod}: the StatefulSet has grown back to it"));
                self.removed.remove(&pod);
                continue;
            };
            match self.pods.get_opt(&pod).await {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(error) => {
                    say(&format!("cannot tell whether {pod} is gone: {error}"));
                    continue;
                }
            }
            let mut deleted = Vec::new();
            let mut failed = Vec::new();
            for claim in claims {
                match self.claims.delete(&claim, &DeleteParams::default()).await {
                    Ok(_) => deleted.push(claim),
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => failed.push(format!("{claim}: {error}")),
                }
            }
            if failed.is_empty() {
                self.removed.remove(&pod);
                events.record("ClaimsDeleted", format!("{pod} is gone; deleted its claims: {}", list(&deleted))).await;
            } else {
                events.record("ClaimsDeleteFailed", format!("{pod}: {} (will retry)", failed.join("; "))).await;
            }
        }
    }
}

/// The claims a StatefulSet made for a pod (`<template>-<pod>`), or `None`
/// when the pod's ordinal is within the replicas again: grown back, it uses
/// them.
fn claims_of(statefulset: &StatefulSet, pod: &str) -> Option<Vec<String>> {
    let spec = statefulset.spec.as_ref()?;
    let ordinal = decide::ordinal(statefulset.metadata.name.as_deref()?, pod)?;
    if ordinal < first_ordinal(statefulset) + spec.replicas.unwrap_or(1).max(0) as u32 {
        return None;
    }
    let templates = spec.volume_claim_templates.iter().flatten();
    Some(templates.filter_map(|template| Some(format!("{}-{pod}", template.metadata.name.as_deref()?))).collect())
}

/// The ordinal of a StatefulSet's first pod (`spec.ordinals.start`, 0 unless set).
fn first_ordinal(statefulset: &StatefulSet) -> u32 {
    let start = statefulset.spec.as_ref().and_then(|spec| spec.ordinals.as_ref()).and_then(|ordinals| ordinals.start);
    start.unwrap_or(0).max(0) as u32
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none left".into() } else { names.join(", ") }
}

fn summary(observed: &Observed) -> String {
    let writable = observed.bookies.iter().filter(|bookie| bookie.writable).count();
    let replication = match &observed.replication {
        Replication::Healthy => "healthy".to_string(),
        Replication::UnderReplicated => "under-replicated".to_string(),
        Replication::Unknown(why) => format!("unknown ({why})"),
    };
    format!(
        "observed {} bookies, {writable} writable, {} read-only; replication {replication}",
        observed.bookies.len(),
        observed.bookies.len() - writable
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetOrdinals, StatefulSetSpec};

    fn statefulset(replicas: i32) -> StatefulSet {
        statefulset_from(0, replicas)
    }

    fn statefulset_from(start: i32, replicas: i32) -> StatefulSet {
        let template = |name: &str| {
            let mut claim = PersistentVolumeClaim::default();
            claim.metadata.name = Some(name.into());
            claim
        };
        let mut statefulset = StatefulSet::default();
        statefulset.metadata.name = Some("bookie".into());
        statefulset.spec = Some(StatefulSetSpec {
            replicas: Some(replicas),
            ordinals: Some(StatefulSetOrdinals { start: Some(start) }),
            volume_claim_templates: Some(vec![template("journal-disk"), template("ledgers-disk")]),
            ..StatefulSetSpec::default()
        });
        statefulset
    }

    #[test]
    fn a_removed_pod_has_a_claim_per_template() {
        assert_eq!(
            claims_of(&statefulset(3), "bookie-3"),
            Some(vec!["journal-disk-bookie-3".to_string(), "ledgers-disk-bookie-3".to_string()])
        );
        assert_eq!(claims_of(&statefulset(3), "bookie-10").map(|claims| claims.len()), Some(2));
    }

    #[test]
    fn the_claims_of_a_pod_within_the_replicas_are_never_deleted() {
        // The set before its shrink, or grown back since: bookie-3 is a member.
        assert_eq!(claims_of(&statefulset(4), "bookie-3"), None);
        assert_eq!(claims_of(&statefulset(3), "other-3"), None);
    }

    #[test]
    fn ordinals_count_from_the_start_the_statefulset_sets() {
        // bookie-9 and bookie-10 with ordinals from 9, shrunk to one: bookie-10 goes.
        assert_eq!(claims_of(&statefulset_from(9, 2), "bookie-10"), None);
        assert_eq!(claims_of(&statefulset_from(9, 1), "bookie-10").map(|claims| claims.len()), Some(2));
        assert_eq!(claims_of(&statefulset_from(9, 1), "bookie-9"), None);
    }
}
