//! One line per step, as the live progress and the JUnit text show it.

use super::model::{Acks, DrainOutcome, Duplicates, Loss, MemberRef, OutputExpectation, ProcessSignal, Step};
use std::fmt;

impl fmt::Display for MemberRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberRef::Ordinal(ordinal) => write!(f, "{ordinal}"),
            MemberRef::Leader => write!(f, "`leader`"),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Acks::All => write!(f, "acks=all"),
            Acks::Leader => write!(f, "acks=1"),
        }
    }
}

/// ` through member N`, or nothing when the system has one way in.
struct Through(Option<u32>);

impl fmt::Display for Through {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(member) => write!(f, " through member {member}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Write { member, key, value } => {
                write!(f, "write {key}={value:?} on member {member}")
            }
            Step::Read { member, key, expect, unchanged, .. } => {
                let version = if *unchanged { " (same version as written)" } else { "" };
                write!(f, "read {key} on member {member}, expect {expect:?}{version}")
            }
            Step::WaitReady => write!(f, "wait until rolled out and healthy"),
            Step::ExpectRolledOut { within } => {
                write!(f, "expect every member Running and Ready within {}", humantime::format_duration(*within))
            }
            Step::RememberStorage => write!(f, "remember every member's claims and volumes"),
            Step::ExpectSameStorage => write!(f, "expect the same claims and volumes"),
            Step::DeleteStatefulset => write!(f, "delete the StatefulSet (claims kept)"),
            Step::ApplyFixture => write!(f, "apply the fixture again"),
            Step::DeletePod { member, force: false } => write!(f, "delete the pod of member {member}"),
            Step::DeletePod { member, force: true } => write!(f, "force-delete the pod of member {member}"),
            Step::Exec { member, command, expect } => {
                write!(f, "run {command:?} on member {member}")?;
                match expect {
                    Some(OutputExpectation::Equals(text)) => write!(f, ", expect output {text:?}"),
                    Some(OutputExpectation::Line(text)) => write!(f, ", expect a line {text:?}"),
                    Some(OutputExpectation::Matches(pattern)) => write!(f, ", expect output matching /{pattern}/"),
                    None => Ok(()),
                }
            }
            Step::ExpectUnavailable { member, .. } => write!(f, "expect member {member} not serving (pod not Ready)"),
            Step::Signal { member, signal } => match signal {
                ProcessSignal::Kill => write!(f, "kill -9 the server of member {member}"),
                ProcessSignal::Stop => write!(f, "freeze (SIGSTOP) the server of member {member}"),
            },
            Step::ExpectRestart { member, .. } => {
                write!(f, "expect member {member}'s server container restarted")
            }
            Step::ExpectSpread => write!(f, "expect every member on a different node"),
            Step::ExpectAntiAffinity => {
                write!(f, "expect a required anti-affinity between members")
            }
            Step::Drain { member, expect } => match expect {
                DrainOutcome::Evicted => write!(f, "drain the node of member {member}"),
                DrainOutcome::RefusedByPdb => write!(f, "drain the node of member {member}, expect the PDB to refuse"),
            },
            Step::Uncordon => write!(f, "uncordon the nodes this test cordoned"),
            Step::StopNode { member } => write!(f, "stop the node of member {member}"),
            Step::ExpectNodeDown { member, .. } => write!(f, "expect the node of member {member} to turn NotReady"),
            Step::StartNodes => write!(f, "start the stopped nodes and wait until Ready"),
            Step::Scale { replicas } => write!(f, "scale the StatefulSet to {replicas}"),
            Step::ExpectClaimsKept { member } => write!(f, "expect member {member}'s claims kept and bound"),
            Step::RememberLeader { topic, partition } => {
                write!(f, "remember the leader of {topic}/{partition} as `leader`")
            }
            Step::CreateTopic { topic, partitions, replication_factor } => {
                write!(f, "create topic {topic} ({partitions} partitions, replication factor {replication_factor})")
            }
            Step::Produce { topic, messages, via, acks } => {
                write!(f, "produce {messages} messages to {topic}{} ({acks})", Through(*via))
            }
            Step::StartTraffic { topic, via, rate, acks } => {
                write!(f, "start producing {rate}/s to {topic}{} ({acks})", Through(*via))
            }
            Step::StopTraffic => write!(f, "stop the background producer"),
            Step::ExpectAvailable { max_gap } => {
                write!(f, "expect no gap between acks longer than {}", humantime::format_duration(*max_gap))
            }
            Step::Pause { duration } => write!(f, "let {} pass", humantime::format_duration(*duration)),
            Step::Consume { topic, via, .. } => write!(f, "read {topic} from the beginning{}", Through(*via)),
            Step::CheckDelivery { duplicates, loss, pass } => {
                let duplicates = if *duplicates == Duplicates::Allowed { "allowed" } else { "forbidden" };
                let loss = if *loss == Loss::IsAFinding { "a finding" } else { "a failure" };
                let against = pass.map_or("the latest read".to_string(), |pass| format!("read {pass}"));
                write!(f, "check delivery against {against} (duplicates {duplicates}, loss {loss})")
            }
            Step::ExpectInSync { topic, .. } => write!(f, "expect every partition of {topic} fully in sync"),
            Step::ExpectLocalVolumes { claims } => {
                write!(f, "expect each member on an eligible node, with {claims} claims bound to local volumes there")
            }
            Step::RememberMembers => write!(f, "remember every member's pod, node and restarts"),
            Step::ExpectSameNode { member } => write!(f, "expect member {member} on the node it was on"),
            Step::ExpectUndisturbed { members } => {
                write!(f, "expect members {members:?} undisturbed (same pods, no restarts)")
            }
            Step::ExpectPending { member, .. } => write!(f, "expect member {member} Pending, unschedulable"),
            Step::ExpectGone { member, .. } => write!(f, "expect member {member}'s pod gone"),
            Step::ExpectBrokers { ids, .. } => write!(f, "expect brokers {ids:?} registered, each on its own member"),
            Step::FillDisk { members, to } if *to == 0.0 => write!(f, "empty the ledger disks of members {members:?}"),
            Step::FillDisk { members, to } => {
                write!(f, "fill the ledger disks of members {members:?} to {:.0}%", to * 100.0)
            }
            Step::SetReadOnly { member, read_only: true } => write!(f, "set member {member}'s bookie read-only"),
            Step::SetReadOnly { member, read_only: false } => write!(f, "set member {member}'s bookie writable"),
            Step::ExpectReadOnly { member, read_only, within } => {
                let state = if *read_only { "read-only" } else { "writable" };
                write!(
                    f,
                    "expect member {member}'s bookie to turn {state} within {}",
                    humantime::format_duration(*within)
                )
            }
            Step::ExpectAuditor { elected, within } => {
                let which = if *elected { "an" } else { "no" };
                write!(f, "expect {which} auditor elected within {}", humantime::format_duration(*within))
            }
            Step::ExpectReplicas { count, within } => {
                write!(f, "expect {count} replicas asked for within {}", humantime::format_duration(*within))
            }
            Step::ExpectReplicasStay { count, duration } => {
                write!(f, "expect the replicas to stay {count} for {}", humantime::format_duration(*duration))
            }
            Step::RememberLedgers => write!(f, "remember every ledger and the bookies it names"),
            Step::ExpectLedgersKept => write!(f, "expect every remembered ledger kept, on the same bookies"),
            Step::ExpectNewLedgersOn { member, .. } => write!(f, "expect a new ledger on member {member}'s bookie"),
            Step::ExpectAutoscaling(invariants) => write!(f, "expect the samples to show {invariants}"),
            Step::Patch(patch) => write!(f, "patch {} {}", patch.target.kind, patch.target.name),
        }
    }
}
