//! Steps about where members run and what they stand on: local volumes on
//! eligible nodes, a member kept on its node, members left undisturbed, a
//! member the scheduler cannot place, members that do not come up and why.

use super::TestRun;
use crate::checks::local_storage::{self, MemberClaims};
use crate::k8s::conditions::restart_count;
use crate::suite::Member;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, Pod};
use kube::ResourceExt;
use kube::api::{Api, LogParams};
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
        let set = env.sets.get(&env.suite.params.statefulset).await?;
        local_storage::requires_node_label(&set, key, value).map_err(|why| anyhow!(why))?;
        let nodes: Api<Node> = Api::all(env.cluster.client.clone());
        let volumes: Api<PersistentVolume> = Api::all(env.cluster.client.clone());
        let templates = self.claim_templates().await?;
        for member in 0..env.replicas().await? {
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
        for member in 0..env.replicas().await? {
            let pod = env.members.pods.get(&env.members.pod(member)).await?;
            let snapshot = MemberSnapshot {
                uid: pod.uid().unwrap_or_default(),
                node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
                restarts: restart_count(&pod, &env.suite.params.container),
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
            let restarts = restart_count(&pod, &self.env.suite.params.container);
            if restarts != before.restarts {
                bail!("{name} restarted: restartCount {} then {restarts}", before.restarts);
            }
        }
        Ok(())
    }

    pub(super) async fn expect_pending(&self, member: Member, within: Duration) -> Result<()> {
        let name = self.env.members.pod(member);
        let pods = &self.env.members.pods;
        let reason = wait::until(&format!("{name} to be Pending, unschedulable"), within, || async {
            Ok(match pods.get_opt(&name).await? {
                None => Probe::Pending("no such pod yet".into()),
                Some(pod) => match unschedulable(&pod) {
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
        match self.env.wait_rolled_out(within).await {
            Ok(()) => Ok(()),
            Err(timed_out) => bail!("{timed_out}\n{}", self.members_report().await?),
        }
    }

    /// What each member is doing, with the previous logs of those restarted.
    async fn members_report(&self) -> Result<String> {
        let env = self.env;
        let container = &env.suite.params.container;
        let mut report = Vec::new();
        for member in 0..env.replicas().await? {
            let name = env.members.pod(member);
            let pod = env.members.pods.get_opt(&name).await?;
            report.push(describe_member(&name, pod.as_ref(), container));
            if pod.as_ref().is_some_and(|pod| restart_count(pod, container) > 0) {
                let params = LogParams {
                    container: Some(container.clone()),
                    previous: true,
                    tail_lines: Some(PREVIOUS_LOG_LINES),
                    ..Default::default()
                };
                match env.members.pods.logs(&name, &params).await {
                    Ok(logs) => report.push(format!(
                        "  previous logs of {name} (last {PREVIOUS_LOG_LINES} lines):\n{}",
                        indent(&logs)
                    )),
                    Err(error) => report.push(format!("  no previous logs of {name}: {error}")),
                }
            }
        }
        Ok(report.join("\n"))
    }

    pub(super) async fn expect_gone(&self, member: Member, within: Duration) -> Result<()> {
        let name = self.env.members.pod(member);
        let pods = &self.env.members.pods;
        wait::until(&format!("{name} to be gone"), within, || async {
            Ok(match pods.get_opt(&name).await? {
                Some(_) => Probe::Pending("still exists".into()),
                None => Probe::Done(()),
            })
        })
        .await?;
        Ok(())
    }
}

const PREVIOUS_LOG_LINES: i64 = 15;

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("    {line}")).collect::<Vec<_>>().join("\n")
}

/// One line on what a member's pod is doing.
fn describe_member(name: &str, pod: Option<&Pod>, container: &str) -> String {
    let Some(pod) = pod else {
        return format!("{name}: not created (members are created in order: an earlier one is not Ready)");
    };
    if let Some(message) = unschedulable(pod) {
        return format!("{name}: Pending, unschedulable: {message}");
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|status| status.phase.clone()).unwrap_or_else(|| "unknown".into());
    let mut line = format!("{name}: {phase}, restarts {}", restart_count(pod, container));
    let state = status
        .and_then(|status| status.container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == container));
    if let Some(waiting) = state.and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref()) {
        line += &format!(", waiting: {}", waiting.reason.as_deref().unwrap_or("?"));
    }
    if let Some(ended) = state.and_then(|c| c.last_state.as_ref()).and_then(|s| s.terminated.as_ref()) {
        line +=
            &format!(", last terminated: {} (exit code {})", ended.reason.as_deref().unwrap_or("?"), ended.exit_code);
    }
    line
}

/// The scheduler's message, when it found no node for the pod.
fn unschedulable(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Pending") {
        return None;
    }
    let scheduled = status.conditions.iter().flatten().find(|condition| condition.type_ == "PodScheduled")?;
    (scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable"))
        .then(|| scheduled.message.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::unschedulable;

    fn pod(phase: &str, scheduled: serde_json::Value) -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bookie-2"},
            "status": {"phase": phase, "conditions": [scheduled]}}))
        .unwrap()
    }

    #[test]
    fn a_member_is_described_by_what_keeps_it_from_serving() {
        use super::describe_member;
        assert!(describe_member("bookie-2", None, "bookie").contains("not created"));
        let refused = serde_json::json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/5 nodes are available"});
        assert_eq!(
            describe_member("bookie-2", Some(&pod("Pending", refused)), "bookie"),
            "bookie-2: Pending, unschedulable: 0/5 nodes are available"
        );
        let crashing: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bookie-1"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "bookie", "image": "i", "imageID": "",
                "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}))
        .unwrap();
        assert_eq!(
            describe_member("bookie-1", Some(&crashing), "bookie"),
            "bookie-1: Running, restarts 4, waiting: CrashLoopBackOff, last terminated: Error (exit code 1)"
        );
    }

    #[test]
    fn only_a_pending_pod_the_scheduler_refused_is_unschedulable() {
        let refused = serde_json::json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/5 nodes are available"});
        assert_eq!(unschedulable(&pod("Pending", refused.clone())).as_deref(), Some("0/5 nodes are available"));
        assert_eq!(unschedulable(&pod("Running", refused)), None);
        let placed = serde_json::json!({"type": "PodScheduled", "status": "True"});
        assert_eq!(unschedulable(&pod("Pending", placed)), None);
    }
}
