//! What each step needs from the system under test and from the cluster,
//! so that a suite asking for something its system or cluster does not
//! offer is refused when it is loaded, naming the step, before any cluster
//! work.

use super::model::{Acks, MemberRef, Step};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// System: records written and read on a chosen member.
    KeyValue,
    /// System: messages produced to and read from topics.
    Log,
    /// System: a client bootstraps through a member of its choice.
    LogVia,
    /// System: producers acknowledged by the leader alone (Kafka's acks=1).
    LeaderAcks,
    /// System: a producer at a steady rate in the background.
    Traffic,
    /// System: topics with partitions and a replication factor, their
    /// leaders, in-sync replicas and broker ids.
    ReplicatedLog,
    /// System: bookies whose state, disk usage, ledgers and cookies can be
    /// read and driven (read-only, disk filled).
    Bookies,
    /// Cluster: stop a node and start it again.
    NodeStop,
    /// Cluster: freeze, thaw and kill a container's main process.
    ProcessSignal,
    /// Cluster: directories on nodes for local PersistentVolumes.
    LocalVolumes,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::KeyValue => "key-value reads and writes",
            Capability::Log => "a log to produce to and consume from",
            Capability::LogVia => "a client bootstrapped through a chosen member (`via`)",
            Capability::LeaderAcks => "acknowledgement by the leader alone (`acks: leader`)",
            Capability::Traffic => "background traffic",
            Capability::ReplicatedLog => "partitioned, replicated topics with leaders and broker ids",
            Capability::Bookies => "bookies to drive and watch (state, disk usage, ledgers, cookies)",
            Capability::NodeStop => "stopping and starting nodes",
            Capability::ProcessSignal => "signalling a container's process from its node",
            Capability::LocalVolumes => "local volume directories on nodes",
        })
    }
}

impl Capability {
    /// Whether the cluster provider, not the system, offers it.
    pub fn of_cluster(self) -> bool {
        matches!(self, Capability::NodeStop | Capability::ProcessSignal | Capability::LocalVolumes)
    }
}

impl Step {
    /// The step's name as a suite writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Write { .. } => "write",
            Step::Read { .. } => "read",
            Step::WaitReady => "wait-ready",
            Step::ExpectRolledOut { .. } => "expect-rolled-out",
            Step::RememberStorage => "remember-storage",
            Step::ExpectSameStorage => "expect-same-storage",
            Step::DeleteStatefulset => "delete-statefulset",
            Step::ApplyFixture => "apply-fixture",
            Step::DeletePod { .. } => "delete-pod",
            Step::Exec { .. } => "exec",
            Step::ExpectUnavailable { .. } => "expect-unavailable",
            Step::Signal { .. } => "signal",
            Step::ExpectRestart { .. } => "expect-restart",
            Step::ExpectSpread => "expect-spread",
            Step::ExpectAntiAffinity => "expect-anti-affinity",
            Step::Drain { .. } => "drain",
            Step::Uncordon => "uncordon",
            Step::StopNode { .. } => "stop-node",
            Step::ExpectNodeDown { .. } => "expect-node-down",
            Step::StartNodes => "start-nodes",
            Step::Scale { .. } => "scale",
            Step::ExpectClaimsKept { .. } => "expect-claims-kept",
            Step::RememberLeader { .. } => "remember-leader",
            Step::CreateTopic { .. } => "create-topic",
            Step::Produce { .. } => "produce",
            Step::StartTraffic { .. } => "start-traffic",
            Step::StopTraffic => "stop-traffic",
            Step::ExpectAvailable { .. } => "expect-available",
            Step::Pause { .. } => "pause",
            Step::Consume { .. } => "consume",
            Step::CheckDelivery { .. } => "check-delivery",
            Step::ExpectInSync { .. } => "expect-in-sync",
            Step::ExpectLocalVolumes { .. } => "expect-local-volumes",
            Step::RememberMembers => "remember-members",
            Step::ExpectSameNode { .. } => "expect-same-node",
            Step::ExpectUndisturbed { .. } => "expect-undisturbed",
            Step::ExpectPending { .. } => "expect-pending",
            Step::ExpectGone { .. } => "expect-gone",
            Step::ExpectBrokers { .. } => "expect-brokers",
            Step::FillDisk { .. } => "fill-disk",
            Step::SetReadOnly { .. } => "set-read-only",
            Step::ExpectReadOnly { .. } => "expect-read-only",
            Step::ExpectAuditor { .. } => "expect-auditor",
            Step::ExpectReplicas { .. } => "expect-replicas",
            Step::ExpectReplicasStay { .. } => "expect-replicas-stay",
            Step::RememberLedgers => "remember-ledgers",
            Step::ExpectLedgersKept => "expect-ledgers-kept",
            Step::ExpectNewLedgersOn { .. } => "expect-new-ledgers-on",
            Step::ExpectAutoscaling(_) => "expect-autoscaling",
            Step::Patch(_) => "patch",
        }
    }

    /// What the step needs from the system and the cluster.
    pub fn needs(&self) -> Vec<Capability> {
        let via = |via: &Option<u32>| via.map(|_| Capability::LogVia);
        let acks = |acks: &Acks| (*acks == Acks::Leader).then_some(Capability::LeaderAcks);
        let mut needs = match self {
            Step::Write { .. } | Step::Read { .. } => vec![Capability::KeyValue],
            Step::Signal { .. } => vec![Capability::ProcessSignal],
            Step::StopNode { .. } | Step::StartNodes => vec![Capability::NodeStop],
            Step::ExpectLocalVolumes { .. } => vec![Capability::LocalVolumes],
            Step::RememberLeader { .. }
            | Step::CreateTopic { .. }
            | Step::ExpectInSync { .. }
            | Step::ExpectBrokers { .. } => vec![Capability::ReplicatedLog],
            Step::Produce { via: chosen, acks: asked, .. } => {
                [Some(Capability::Log), via(chosen), acks(asked)].into_iter().flatten().collect()
            }
            Step::StartTraffic { via: chosen, acks: asked, .. } => {
                [Some(Capability::Traffic), via(chosen), acks(asked)].into_iter().flatten().collect()
            }
            Step::StopTraffic | Step::ExpectAvailable { .. } => vec![Capability::Traffic],
            Step::Consume { via: chosen, .. } => [Some(Capability::Log), via(chosen)].into_iter().flatten().collect(),
            Step::CheckDelivery { .. } => vec![Capability::Log],
            Step::FillDisk { .. }
            | Step::SetReadOnly { .. }
            | Step::ExpectReadOnly { .. }
            | Step::ExpectAuditor { .. }
            | Step::RememberLedgers
            | Step::ExpectLedgersKept
            | Step::ExpectNewLedgersOn { .. }
            | Step::ExpectAutoscaling(_) => vec![Capability::Bookies],
            Step::WaitReady
            | Step::ExpectRolledOut { .. }
            | Step::RememberStorage
            | Step::ExpectSameStorage
            | Step::DeleteStatefulset
            | Step::ApplyFixture
            | Step::DeletePod { .. }
            | Step::Exec { .. }
            | Step::ExpectUnavailable { .. }
            | Step::ExpectRestart { .. }
            | Step::ExpectSpread
            | Step::ExpectAntiAffinity
            | Step::Drain { .. }
            | Step::Uncordon
            | Step::ExpectNodeDown { .. }
            | Step::Scale { .. }
            | Step::ExpectClaimsKept { .. }
            | Step::Pause { .. }
            | Step::RememberMembers
            | Step::ExpectSameNode { .. }
            | Step::ExpectUndisturbed { .. }
            | Step::ExpectPending { .. }
            | Step::ExpectGone { .. }
            | Step::ExpectReplicas { .. }
            | Step::ExpectReplicasStay { .. }
            | Step::Patch(_) => Vec::new(),
        };
        needs.sort();
        needs
    }

    /// The member the step aims at, if it aims at one by reference.
    pub fn target(&self) -> Option<MemberRef> {
        match self {
            Step::DeletePod { member, .. }
            | Step::ExpectUnavailable { member, .. }
            | Step::Signal { member, .. }
            | Step::ExpectRestart { member, .. }
            | Step::StopNode { member }
            | Step::ExpectNodeDown { member, .. } => Some(*member),
            _ => None,
        }
    }

    /// Whether the step drains or stops nodes, disturbing every suite.
    pub fn touches_nodes(&self) -> bool {
        matches!(self, Step::Drain { .. } | Step::StopNode { .. } | Step::ExpectNodeDown { .. } | Step::StartNodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_produce_through_a_member_with_leader_acks_needs_all_three() {
        let step = Step::Produce { topic: "t".into(), messages: 1, via: Some(0), acks: Acks::Leader };
        assert_eq!(step.needs(), [Capability::Log, Capability::LogVia, Capability::LeaderAcks]);
        let plain = Step::Produce { topic: "t".into(), messages: 1, via: None, acks: Acks::All };
        assert_eq!(plain.needs(), [Capability::Log]);
    }

    #[test]
    fn only_node_and_process_faults_and_local_volumes_need_the_cluster() {
        let of_cluster: Vec<Capability> = [
            Capability::KeyValue,
            Capability::Log,
            Capability::NodeStop,
            Capability::ProcessSignal,
            Capability::LocalVolumes,
        ]
        .into_iter()
        .filter(|capability| capability.of_cluster())
        .collect();
        assert_eq!(of_cluster, [Capability::NodeStop, Capability::ProcessSignal, Capability::LocalVolumes]);
    }
}
