//! Whether the nodes of a cluster from a kubeconfig can pull an image: a pod
//! that runs it, in a namespace of its own, watched until its container is
//! created (the pull worked, whatever the container then does) or the
//! kubelet reports that the pull failed.

use crate::k8s::conditions::{FirstPullFailure, pull_failure};
use crate::k8s::namespace;
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use kube::Client;
use kube::api::{Api, PostParams};
use std::time::Duration;

const PULL_TIMEOUT: Duration = Duration::from_secs(180);
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// `Ok(Err(why))` when the nodes cannot pull `image`; `Err` when the
/// cluster could not be asked.
pub async fn pullable(client: &Client, run: &str, image: &str) -> Result<Result<(), String>> {
    let namespace = namespace::name_for("image-check");
    namespace::create(client, &namespace, run).await?;
    let outcome = pull_in(client, &namespace, image).await;
    namespace::delete(client, &namespace, CLEANUP_TIMEOUT).await?;
    outcome
}

async fn pull_in(client: &Client, namespace: &str, image: &str) -> Result<Result<(), String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "pull"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "pull", "image": image, "imagePullPolicy": "IfNotPresent",
                            "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await.with_context(|| format!("creating a pod that pulls {image}"))?;
    let what = format!("a node to pull {image}");
    let pulled = wait::until(&what, PULL_TIMEOUT, || async {
        let pod = pods.get("pull").await?;
        Ok(match pull_outcome(&pod) {
            Some(Ok(())) => Probe::Done(Ok(())),
            Some(Err(why)) => Probe::Done(Err(why)),
            None => Probe::Pending("the pull is not over".into()),
        })
    })
    .await;
    Ok(pulled.unwrap_or_else(|unmet| Err(unmet.to_string())))
}

/// `None` while the pull goes on.
fn pull_outcome(pod: &Pod) -> Option<Result<(), String>> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    if let Some(why) = pull_failure(status, FirstPullFailure::Counts) {
        return Some(Err(why));
    }
    match status.state.as_ref()? {
        ContainerState { waiting: Some(waiting), .. } => {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            // otherwise pulled: the container itself failed to start
            (reason != "ContainerCreating" && !reason.is_empty()).then_some(Ok(()))
        }
        _ => Some(Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_with(state: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"status": {"containerStatuses": [
            {"name": "pull", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}
        ]}}))
        .unwrap()
    }

    #[test]
    fn a_failed_pull_says_why_and_a_created_container_means_pulled() {
        let refused = pod_with(serde_json::json!({"waiting": {"reason": "ErrImagePull", "message": "not found"}}));
        assert_eq!(pull_outcome(&refused), Some(Err("ErrImagePull: not found".into())));
        let creating = pod_with(serde_json::json!({"waiting": {"reason": "ContainerCreating"}}));
        assert_eq!(pull_outcome(&creating), None);
        let no_shell = pod_with(serde_json::json!({"waiting": {"reason": "CreateContainerError"}}));
        assert_eq!(pull_outcome(&no_shell), Some(Ok(())));
        let ran = pod_with(serde_json::json!({"terminated": {"exitCode": 0}}));
        assert_eq!(pull_outcome(&ran), Some(Ok(())));
        assert_eq!(pull_outcome(&Pod::default()), None);
    }
}
