//! What keeps a member from serving, from its pod alone: not created yet,
//! Pending because the scheduler finds no node, crash looping with its last
//! termination; and whether that cause is permanent, so that a wait can stop
//! at once instead of running out its time.

use crate::k8s::conditions::{FirstPullFailure, container_status, pull_failure, restart_count};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use std::time::Duration;

/// How long the scheduler must have refused a pod before that is taken as
/// permanent (it retries when volumes or nodes change).
pub const UNSCHEDULABLE_FOR: Duration = Duration::from_secs(30);
/// Restarts during one wait after which a crash loop is taken as permanent.
/// Restarts from before the wait do not count: a broker that crashed while
/// its node was down, or while ZooKeeper started, may well come up now.
pub const CRASH_LOOP_RESTARTS: i32 = 4;

/// One line on what a member's pod is doing.
pub fn describe(name: &str, pod: Option<&Pod>, container: &str) -> String {
    let Some(pod) = pod else {
        return format!("{name}: not created (members are created in order: an earlier one is not Ready)");
    };
    if let Some(message) = unschedulable(pod) {
        return format!("{name}: Pending, unschedulable: {message}");
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|status| status.phase.clone()).unwrap_or_else(|| "unknown".into());
    let mut line = format!("{name}: {phase}");
    if running_unready(pod, container) {
        line += ", not ready";
    }
    line += &format!(", restarts {}", restart_count(pod, container));
    if let Some(reason) = waiting_reason(pod, container) {
        line += &format!(", waiting: {reason}");
    }
    if let Some((reason, code)) = last_termination(pod, container) {
        line += &format!(", last terminated: {reason} (exit code {code})");
    }
    line
}

/// Its container runs but does not pass its readiness probe: what it logs
/// now says why, more than the state of its pod does.
pub fn running_unready(pod: &Pod, container: &str) -> bool {
    let running = pod.status.as_ref().and_then(|status| status.phase.as_deref()) == Some("Running");
    running && container_status(pod, container).is_some_and(|status| !status.ready)
}

/// One line on the fixture's other StatefulSets (a member often waits on
/// one of them: bookies on ZooKeeper), or none if there are none.
pub fn others(sets: &[StatefulSet], members: &str) -> Option<String> {
    let others: Vec<String> = other_sets(sets, members).map(|(set, _)| set).collect();
    (!others.is_empty()).then(|| format!("the fixture's other StatefulSets: {}", others.join(", ")))
}

/// The fixture's other StatefulSets that are not fully ready, as `zk 1/3 ready`.
pub fn unready_others(sets: &[StatefulSet], members: &str) -> Vec<String> {
    other_sets(sets, members).filter(|(_, ready)| !ready).map(|(set, _)| set).collect()
}

fn other_sets<'a>(sets: &'a [StatefulSet], members: &'a str) -> impl Iterator<Item = (String, bool)> + 'a {
    sets.iter().filter(move |set| set.metadata.name.as_deref() != Some(members)).map(|set| {
        let name = set.metadata.name.as_deref().unwrap_or("?");
        let desired = set.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
        let ready = set.status.as_ref().and_then(|status| status.ready_replicas).unwrap_or(0);
        (format!("{name} {ready}/{desired} ready"), ready >= desired)
    })
}

/// What a wait knows when it asks whether a member's state is permanent.
pub struct Looked<'a> {
    /// The member's restart count when the wait began, or when it last saw
    /// the fixture's other StatefulSets not ready.
    pub restarts_before: i32,
    /// The fixture's other StatefulSets not ready yet (`unready_others`).
    pub unready_others: &'a [String],
    /// The wall clock.
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The scheduler's message, when it found no node for the pod.
pub fn unschedulable(pod: &Pod) -> Option<String> {
    let scheduled = unscheduled_condition(pod)?;
    Some(scheduled.message.clone().unwrap_or_default())
}

fn unscheduled_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Pending") {
        return None;
    }
    let scheduled = status.conditions.iter().flatten().find(|condition| condition.type_ == "PodScheduled")?;
    (scheduled.status == "False" && scheduled.reason.as_deref() == Some("Unschedulable")).then_some(scheduled)
}

/// Why the member will not come up by waiting, if it will not: refused by
/// the scheduler for `UNSCHEDULABLE_FOR`, its image not pulled, or crash looping with
/// `CRASH_LOOP_RESTARTS` restarts more than when the wait began while the
/// fixture's other StatefulSets are all ready: a Kafka broker exits until its
/// ZooKeeper has a quorum, and a ZooKeeper member may wait for its volume
/// (seen: the local-path provisioner timed out once and succeeded on retry).
pub fn permanent(name: &str, pod: &Pod, container: &str, looked: &Looked) -> Option<String> {
    if let Some(condition) = unscheduled_condition(pod) {
        let message = condition.message.as_deref().unwrap_or_default();
        if awaits_its_claim(message) {
            return None;
        }
        let since = condition.last_transition_time.as_ref().map(|time| time.0.as_millisecond())?;
        let refused_for = Duration::from_millis(u64::try_from(looked.now.timestamp_millis() - since).unwrap_or(0));
        return (refused_for >= UNSCHEDULABLE_FOR)
            .then(|| format!("{name} has been unschedulable for {}s: {}", refused_for.as_secs(), message));
    }
    if let Some(why) =
        container_status(pod, container).and_then(|status| pull_failure(status, FirstPullFailure::MayPass))
    {
        return Some(format!("{name} cannot pull its image: {why}"));
    }
    let restarts = restart_count(pod, container);
    let looping = waiting_reason(pod, container).as_deref() == Some("CrashLoopBackOff");
    let during = restarts - looked.restarts_before;
    (looping && during >= CRASH_LOOP_RESTARTS && looked.unready_others.is_empty()).then(|| {
        let (reason, code) = last_termination(pod, container).unwrap_or_else(|| ("?".into(), 0));
        format!("{name} is crash looping: {restarts} restarts ({during} while waiting), the last one {reason} (exit code {code})")
    })
}

/// Refused only because its claim did not exist yet: the StatefulSet
/// controller makes it, and a busy scheduler may not try the pod again for
/// a while after (seen on a loaded 2-core machine: `persistentvolumeclaim
/// "datadir-kafka-0" not found` for 31 s). Only the wait's own timeout ends that.
fn awaits_its_claim(message: &str) -> bool {
    message.contains("persistentvolumeclaim") && message.contains("not found")
}

fn waiting_reason(pod: &Pod, container: &str) -> Option<String> {
    container_status(pod, container)?
        .state
        .as_ref()?
        .waiting
        .as_ref()
        .map(|waiting| waiting.reason.clone().unwrap_or_else(|| "?".into()))
}

fn last_termination(pod: &Pod, container: &str) -> Option<(String, i32)> {
    let ended = container_status(pod, container)?.last_state.as_ref()?.terminated.as_ref()?;
    Some((ended.reason.clone().unwrap_or_else(|| "?".into()), ended.exit_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "bookie-2"}, "status": status})).unwrap()
    }

    fn refused(since: &str) -> Pod {
        pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/5 nodes are available", "lastTransitionTime": since}]}))
    }

    fn crashing(restarts: i32) -> Pod {
        pod(json!({"phase": "Running", "containerStatuses": [{"name": "bookie", "image": "i", "imageID": "",
            "ready": false, "restartCount": restarts, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}))
    }

    fn at(time: &str) -> chrono::DateTime<chrono::Utc> {
        time.parse().unwrap()
    }

    /// The fixture's other StatefulSets all ready.
    fn looked(restarts_before: i32, now: chrono::DateTime<chrono::Utc>) -> Looked<'static> {
        Looked { restarts_before, unready_others: &[], now }
    }

    #[test]
    fn a_member_whose_image_cannot_be_pulled_will_not_come_up_by_waiting() {
        let pulling = |reason: &str| {
            pod(json!({"phase": "Pending", "containerStatuses": [{"name": "bookie", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0, "state": {"waiting": {"reason": reason,
                "message": "Back-off pulling image \"r.example/stateproof/bookkeeper:4.17\""}}}]}))
        };
        let now = at("2026-11-26T10:00:00Z");
        let why = permanent("bookie-0", &pulling("ImagePullBackOff"), "bookie", &looked(0, now));
        assert_eq!(
            why.as_deref(),
            Some(
                "bookie-0 cannot pull its image: ImagePullBackOff: Back-off pulling image \"r.example/stateproof/bookkeeper:4.17\""
            )
        );
        // the first failure may be passing; the kubelet's back-off says it is not
        assert_eq!(permanent("bookie-0", &pulling("ErrImagePull"), "bookie", &looked(0, now)), None);
    }

    #[test]
    fn a_member_is_described_by_what_keeps_it_from_serving() {
        assert!(describe("bookie-2", None, "bookie").contains("not created"));
        assert_eq!(
            describe("bookie-2", Some(&refused("2026-11-26T10:00:00Z")), "bookie"),
            "bookie-2: Pending, unschedulable: 0/5 nodes are available"
        );
        assert_eq!(
            describe("bookie-1", Some(&crashing(4)), "bookie"),
            "bookie-1: Running, not ready, restarts 4, waiting: CrashLoopBackOff, last terminated: Error (exit code 1)"
        );
    }

    #[test]
    fn the_fixtures_other_statefulsets_are_summed_up_by_readiness() {
        let set = |name: &str, replicas: i32, ready: i32| -> StatefulSet {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"replicas": replicas,
                "selector": {}, "serviceName": name, "template": {}}, "status": {"replicas": replicas,
                "readyReplicas": ready}}))
            .unwrap()
        };
        let sets = [set("zk", 3, 1), set("bookie", 3, 0), set("pulsar-broker", 1, 1)];
        assert_eq!(
            others(&sets, "bookie").as_deref(),
            Some("the fixture's other StatefulSets: zk 1/3 ready, pulsar-broker 1/1 ready")
        );
        assert_eq!(others(&sets[1..2], "bookie"), None);
        assert_eq!(unready_others(&sets, "bookie"), ["zk 1/3 ready"]);
    }

    #[test]
    fn refused_by_the_scheduler_for_half_a_minute_is_permanent() {
        let pending = refused("2026-11-26T10:00:00Z");
        assert_eq!(permanent("bookie-2", &pending, "bookie", &looked(0, at("2026-11-26T10:00:20Z"))), None);
        let why = permanent("bookie-2", &pending, "bookie", &looked(0, at("2026-11-26T10:00:31Z"))).unwrap();
        assert_eq!(why, "bookie-2 has been unschedulable for 31s: 0/5 nodes are available");
    }

    #[test]
    fn a_claim_not_made_yet_is_not_a_permanent_refusal() {
        let message = r#"0/5 nodes are available: persistentvolumeclaim "datadir-kafka-0" not found. not found"#;
        let pending = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": message, "lastTransitionTime": "2026-11-26T10:00:00Z"}]}));
        assert_eq!(permanent("kafka-0", &pending, "kafka", &looked(0, at("2026-11-26T10:05:00Z"))), None);
        assert_eq!(unschedulable(&pending).as_deref(), Some(message), "still shown as what keeps it Pending");
    }

    #[test]
    fn a_crash_loop_is_permanent_after_four_restarts_while_waiting() {
        let now = at("2026-11-26T10:00:00Z");
        assert_eq!(permanent("bookie-1", &crashing(2), "bookie", &looked(0, now)), None);
        let why = permanent("bookie-1", &crashing(4), "bookie", &looked(0, now)).unwrap();
        assert_eq!(why, "bookie-1 is crash looping: 4 restarts (4 while waiting), the last one Error (exit code 1)");
    }

    #[test]
    fn a_crash_loop_is_not_permanent_while_the_fixtures_other_statefulsets_are_not_ready() {
        let unready = ["zk 1/3 ready".to_string()];
        let waiting_on_zookeeper =
            Looked { restarts_before: 0, unready_others: &unready, now: at("2026-11-26T10:00:00Z") };
        assert_eq!(permanent("kafka-0", &crashing(6), "bookie", &waiting_on_zookeeper), None);
    }

    #[test]
    fn restarts_from_before_the_wait_do_not_make_a_crash_loop_permanent() {
        let now = at("2026-11-26T10:00:00Z");
        assert_eq!(permanent("kafka-1", &crashing(5), "bookie", &looked(3, now)), None);
        assert!(permanent("kafka-1", &crashing(7), "bookie", &looked(3, now)).is_some());
    }

    #[test]
    fn only_a_pending_pod_the_scheduler_refused_is_unschedulable() {
        let running = pod(json!({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable"}]}));
        assert_eq!(unschedulable(&running), None);
        let placed = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}));
        assert_eq!(unschedulable(&placed), None);
    }
}
