//! Conditions on Kubernetes objects, as pure functions of the object. Each
//! returns `Ok(())` when the condition holds, or what is still missing.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};

/// A StatefulSet's rollout is complete: the controller has seen the current
/// spec, every replica is ready and runs the current revision.
pub fn statefulset_rolled_out(set: &StatefulSet) -> Result<(), String> {
    let desired = set.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
    let generation = set.metadata.generation.unwrap_or(0);
    let Some(status) = set.status.as_ref() else {
        return Err("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Err(format!("generation {generation} not yet observed"));
    }
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    if ready != desired || status.replicas != desired || updated != desired {
        return Err(format!("{ready}/{desired} ready, {updated}/{desired} updated, {} exist", status.replicas));
    }
    if status.current_revision != status.update_revision {
        return Err(format!("revision {:?} still rolling to {:?}", status.current_revision, status.update_revision));
    }
    Ok(())
}

/// The pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|all| all.iter().any(|condition| condition.type_ == "Ready" && condition.status == "True"))
}

/// The node's Ready condition status ("True", "False" or "Unknown").
pub fn node_ready_status(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .and_then(|all| all.iter().find(|condition| condition.type_ == "Ready"))
        .map_or_else(|| "Unknown".to_string(), |condition| condition.status.clone())
}

/// Restarts of the named container, 0 when it has not started yet.
pub fn restart_count(pod: &Pod, container: &str) -> i32 {
    container_status(pod, container).map_or(0, |status| status.restart_count)
}

/// The named container's status, once the kubelet reports one.
pub fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|status| status.name == container)
}

/// The runtime's id of the named container (without its `containerd://`).
pub fn container_id<'a>(pod: &'a Pod, container: &str) -> Option<&'a str> {
    let id = container_status(pod, container)?.container_id.as_deref()?;
    Some(id.split_once("://").map_or(id, |(_, id)| id))
}

/// Whether one failed pull already counts, or only the kubelet's backing off.
#[derive(Clone, Copy)]
pub enum FirstPullFailure {
    /// A pod that exists only to pull: its first failure is the answer.
    Counts,
    /// A member's pull may fail once and pass again (a registry restarting).
    MayPass,
}

/// The container waits for an image the kubelet cannot pull: `reason: message`.
pub fn pull_failure(status: &ContainerStatus, first: FirstPullFailure) -> Option<String> {
    let waiting = status.state.as_ref()?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref()?;
    let failed = match reason {
        "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => true,
        "ErrImagePull" => matches!(first, FirstPullFailure::Counts),
        _ => false,
    };
    failed.then(|| format!("{reason}: {}", waiting.message.as_deref().unwrap_or("no message")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3-replica StatefulSet at `generation` with the given status.
    fn statefulset(generation: i64, status: serde_json::Value) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "zk", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}, "serviceName": "zk-hs"},
            "status": status
        }))
        .unwrap()
    }

    fn all_ready(observed: i64, current: &str, update: &str) -> serde_json::Value {
        serde_json::json!({"observedGeneration": observed, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                           "currentRevision": current, "updateRevision": update})
    }

    #[test]
    fn a_complete_rollout_holds() {
        assert_eq!(statefulset_rolled_out(&statefulset(2, all_ready(2, "zk-1", "zk-1"))), Ok(()));
    }

    #[test]
    fn an_unobserved_generation_does_not_hold_even_if_all_are_ready() {
        let set = statefulset(3, all_ready(2, "zk-1", "zk-1"));
        assert!(statefulset_rolled_out(&set).unwrap_err().contains("not yet observed"));
    }

    #[test]
    fn a_revision_still_rolling_does_not_hold() {
        let set = statefulset(2, all_ready(2, "zk-1", "zk-2"));
        assert!(statefulset_rolled_out(&set).unwrap_err().contains("still rolling"));
    }

    #[test]
    fn missing_ready_replicas_are_reported() {
        let status =
            serde_json::json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3});
        assert_eq!(statefulset_rolled_out(&statefulset(1, status)).unwrap_err(), "2/3 ready, 3/3 updated, 3 exist");
    }

    #[test]
    fn restart_count_reads_the_named_container() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "zk-0"},
            "status": {"containerStatuses": [
                {"name": "sidecar", "restartCount": 7, "image": "x", "imageID": "", "ready": true},
                {"name": "zookeeper", "restartCount": 2, "image": "x", "imageID": "", "ready": true}
            ]}
        }))
        .unwrap();
        assert_eq!(restart_count(&pod, "zookeeper"), 2);
        assert_eq!(restart_count(&pod, "absent"), 0);
    }

    #[test]
    fn a_container_id_loses_its_scheme() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "status": {"containerStatuses": [
                {"name": "zookeeper", "containerID": "containerd://4f2a", "image": "i", "imageID": "", "ready": true, "restartCount": 0}
            ]}
        }))
        .unwrap();
        assert_eq!(container_id(&pod, "zookeeper"), Some("4f2a"));
        assert_eq!(container_id(&pod, "other"), None);
    }

    #[test]
    fn a_first_failed_pull_counts_only_when_asked_to() {
        let waiting = |reason: &str| -> ContainerStatus {
            serde_json::from_value(serde_json::json!({"name": "c", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": reason, "message": "no such host"}}}))
            .unwrap()
        };
        assert_eq!(pull_failure(&waiting("ErrImagePull"), FirstPullFailure::MayPass), None);
        assert_eq!(
            pull_failure(&waiting("ErrImagePull"), FirstPullFailure::Counts).as_deref(),
            Some("ErrImagePull: no such host")
        );
        for given_up in ["ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"] {
            assert!(pull_failure(&waiting(given_up), FirstPullFailure::MayPass).is_some(), "{given_up}");
        }
        assert_eq!(pull_failure(&waiting("ContainerCreating"), FirstPullFailure::Counts), None);
    }
}
