//! Steps about where members run and what they stand on: local volumes on
//! eligible nodes, a member kept on its node, members left undisturbed, a
//! member the scheduler cannot place, members that do not come up and why.

use super::TestRun;
use crate::checks::local_storage::{self, MemberClaims};
use crate::checks::members;
use crate::k8s::conditions::restart_count;
use crate::suite::Member;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolume};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::Api;
use std::time::Duration;

/// A member as remembered: which pod, where, how often restarted.
#[derive(Debug, Clone)]
pub(super) struct MemberSnapshot {
    uid: String,
    node: Option<String>,
    restarts: i32,
}

impl TestRun<'_> {
    pub(super) async fn expect_local_volumes(&self, expected: usize) -> Result<()> {
        let env = self.env;
        let spec = env.local_volumes.as_ref().context("the fixture declares no LocalVolumes")?;
        let (key, value) = spec.label();
        let set = env.sets.get(&env.suite.members.statefulset).await?;
        local_storage::requires_node_label(&set, key, value).map_err(|why| anyhow!(why))?;
        let nodes: Api<Node> = Api::all(env.cluster.client.clone());
        let volumes: Api<PersistentVolume> = Api::all(env.cluster.client.clone());
        let templates = self.claim_templates().await?;
        for member in env.ordinals().await? {
            let pod = env.members.pod(member);
            let node = self.node_of(member).await?;
            let labels = nodes.get(&node).await?.labels().clone();
            if labels.get(key).map(String::as_str) != Some(value) {
                bail!("{pod} runs on {node}, which is not labelled {key}={value}");
            }
            let mut claims = Vec::new();
            for template in &templates {
                let name = format!("{template}-{pod}");
                let Some(claim) = self.claims().get_opt(&name).await? else { continue };
                let volume = match claim.spec.and_then(|spec| spec.volume_name) {
                    Some(volume) => volumes.get_opt(&volume).await?,
                    None => None,
                };
                claims.push((name, volume));
            }
            let member_claims = MemberClaims { pod: &pod, node: &node, claims };
            local_storage::volumes_on_its_node(&member_claims, expected).map_err(|why| anyhow!(why))?;
        }
        Ok(())
    }

    pub(super) async fn remember_members(&mut self) -> Result<()> {
        let env = self.env;
        self.state.members.clear();
        for member in env.ordinals().await? {
            let pod = env.members.pods.get(&env.members.pod(member)).await?;
            let snapshot = MemberSnapshot {
                uid: pod.uid().unwrap_or_default(),
                node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
                restarts: restart_count(&pod, &env.suite.members.container),
            };
            self.state.members.insert(member, snapshot);
        }
        Ok(())
    }

    fn remembered(&self, member: Member) -> Result<&MemberSnapshot> {
        self.state.members.get(&member).with_context(|| format!("member {member} was not remembered"))
    }

    pub(super) async fn expect_same_node(&self, member: Member) -> Result<()> {
        let before = self.remembered(member)?.node.clone().context("the member was not on a node")?;
        let now = self.node_of(member).await?;
        if now != before {
            bail!("{} moved from node {before} to {now}", self.env.members.pod(member));
        }
        Ok(())
    }

    pub(super) async fn expect_undisturbed(&self, members: &[Member]) -> Result<()> {
        for member in members {
            let before = self.remembered(*member)?;
            let name = self.env.members.pod(*member);
            let pod = self.env.members.pods.get_opt(&name).await?.with_context(|| format!("{name} is gone"))?;
            if pod.uid().unwrap_or_default() != before.uid {
                bail!("{name} was replaced by a new pod");
            }
            let restarts = restart_count(&pod, &self.env.suite.members.container);
            if restarts != before.restarts {
                bail!("{name} restarted: restartCount {} then {restarts}", before.restarts);
            }
        }
        Ok(())
    }

    pub(super) async fn expect_pending(&self, member: Member, within: Duration) -> Result<()> {
        let name = self.env.members.pod(member);
        let pods = &self.env.members.pods;
        let changes = self.env.observer.changes();
        let reason = wait::until_changed(&format!("{name} to be Pending, unschedulable"), within, changes, || async {
            Ok(match pods.get_opt(&name).await? {
                None => Probe::Pending("no such pod yet".into()),
                Some(pod) => match members::unschedulable(&pod) {
                    Some(message) => Probe::Done(message),
                    None => Probe::Pending(format!("phase {:?}", pod.status.and_then(|status| status.phase))),
                },
            })
        })
        .await?;
        eprintln!("[{}] {name} is unschedulable: {reason}", self.label);
        Ok(())
    }

    pub(super) async fn expect_rolled_out(&self, within: Duration) -> Result<()> {
        self.env.wait_rolled_out(within).await
    }

    /// What the PodDisruptionBudgets that select the members allow, for a
    /// drain that was granted when it should have been refused.
    pub(super) async fn budgets_described(&self) -> String {
        let env = self.env;
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(env.cluster.client.clone(), &env.namespace);
        let pod = env.members.pods.get_opt(&env.members.pod(0)).await.ok().flatten();
        let labels = pod.map(|pod| pod.labels().clone()).unwrap_or_default();
        let Ok(list) = budgets.list(&Default::default()).await else {
            return "the PodDisruptionBudgets could not be read".into();
        };
        let selecting: Vec<String> =
            list.items.iter().filter(|budget| selects(budget, &labels)).map(describe_budget).collect();
        if selecting.is_empty() {
            "no PodDisruptionBudget selects the members".into()
        } else {
            format!("{} allowed the eviction", selecting.join(", "))
        }
    }

    pub(super) async fn expect_gone(&self, member: Member, within: Duration) -> Result<()> {
        let name = self.env.members.pod(member);
        let pods = &self.env.members.pods;
        wait::until_changed(&format!("{name} to be gone"), within, self.env.observer.changes(), || async {
            Ok(match pods.get_opt(&name).await? {
                Some(_) => Probe::Pending("still exists".into()),
                None => Probe::Done(()),
            })
        })
        .await?;
        Ok(())
    }
}

/// Whether the budget's selector (its matchLabels) selects pods with `labels`.
fn selects(budget: &PodDisruptionBudget, labels: &std::collections::BTreeMap<String, String>) -> bool {
    let wanted = budget.spec.as_ref().and_then(|spec| spec.selector.as_ref()).and_then(|s| s.match_labels.as_ref());
    wanted.is_some_and(|wanted| wanted.iter().all(|(key, value)| labels.get(key) == Some(value)))
}

/// `PodDisruptionBudget zk-pdb (maxUnavailable 2, 1 disruption allowed)`.
fn describe_budget(budget: &PodDisruptionBudget) -> String {
    let spec = budget.spec.as_ref();
    let quantity = |value: &IntOrString| match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(text) => text.clone(),
    };
    let limit = match (spec.and_then(|s| s.max_unavailable.as_ref()), spec.and_then(|s| s.min_available.as_ref())) {
        (Some(max), _) => format!("maxUnavailable {}", quantity(max)),
        (None, Some(min)) => format!("minAvailable {}", quantity(min)),
        (None, None) => "no limit".into(),
    };
    let allowed = budget.status.as_ref().map_or(0, |status| status.disruptions_allowed);
    format!("PodDisruptionBudget {} ({limit}, {allowed} disruption(s) allowed)", budget.name_any())
}
