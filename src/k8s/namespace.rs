//! The namespaces a run makes (a suite's, the node agent's): created labelled
//! with the run, deleted at the end, and reaped by a later run when the run
//! that made them is gone.

use super::{MANAGED_BY, RUN_LABEL};
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use rand::Rng;
use std::collections::BTreeMap;
use std::time::Duration;

const OWNER_ANNOTATION: &str = "stateproof.io/owner";
/// Set on a namespace the user asked to keep: no later run reaps it.
const KEPT_ANNOTATION: &str = "stateproof.io/kept";

/// This process, as `host:pid`, so that leftovers of a dead run can be told
/// from the namespaces of a run still going on.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

/// A new namespace's name for `label` (a suite, the node agent):
/// `sp-<label>-<5 letters>`, the label made valid; letters only, because some
/// systems derive peer names by replacing digits in their own FQDN.
pub fn name_for(label: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..5).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
    let base: String = label.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let base: String = base.trim_matches('-').chars().take(40).collect();
    format!("sp-{}-{suffix}", base.trim_end_matches('-'))
}

pub async fn create(client: &Client, name: &str, run: &str) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                (RUN_LABEL.to_string(), run.to_string()),
            ])),
            annotations: Some(BTreeMap::from([(OWNER_ANNOTATION.to_string(), owner())])),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Deletes the namespace and waits until it is gone.
pub async fn delete(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let api = Api::<Namespace>::all(client.clone());
    match api.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 404 => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("deleting namespace {name}")),
    }
    // The verdicts are in: nothing is gained by the pods' graceful
    // shutdown, and a broker's can hold its claims for a minute and more.
    // A terminating namespace takes no new pods.
    let pods = Api::<Pod>::namespaced(client.clone(), name);
    let now = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::background() };
    match pods.delete_collection(&now, &ListParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 404 => {}
        Err(error) => return Err(error).with_context(|| format!("deleting the pods of namespace {name}")),
    }
    wait::until(&format!("namespace {name} to be deleted"), timeout, || async {
        Ok(match api.get_opt(name).await? {
            None => Probe::Done(()),
            Some(namespace) => Probe::Pending(still_terminating(&namespace)),
        })
    })
    .await?;
    Ok(())
}

/// What keeps a namespace from going: its phase, and the conditions the
/// namespace controller sets on what remains (resources, finalizers).
fn still_terminating(namespace: &Namespace) -> String {
    let status = namespace.status.as_ref();
    let phase = status.and_then(|status| status.phase.clone()).unwrap_or_else(|| "unknown".into());
    let remaining: Vec<String> = status
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|condition| condition.status == "True")
        .map(|condition| format!("{}: {}", condition.type_, condition.message.as_deref().unwrap_or("")))
        .collect();
    if remaining.is_empty() { format!("phase {phase}") } else { format!("phase {phase}; {}", remaining.join("; ")) }
}

/// Whether the namespace still exists (a deleted one may linger, terminating).
pub async fn exists(client: &Client, name: &str) -> Result<bool> {
    Ok(Api::<Namespace>::all(client.clone()).get_opt(name).await?.is_some())
}

pub async fn mark_kept(client: &Client, name: &str) -> Result<()> {
    let patch = serde_json::json!({ "metadata": { "annotations": { KEPT_ANNOTATION: "true" } } });
    Api::<Namespace>::all(client.clone())
        .patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .with_context(|| format!("marking namespace {name} as kept"))?;
    Ok(())
}

/// Namespaces left by stateproof runs on this host whose process is gone.
pub async fn orphans(client: &Client) -> Result<Vec<String>> {
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let list = Api::<Namespace>::all(client.clone()).list(&ListParams::default().labels(&selector)).await?;
    let host = owner().split(':').next().unwrap_or_default().to_string();
    Ok(list
        .items
        .iter()
        .filter(|namespace| namespace.metadata.deletion_timestamp.is_none())
        .filter(|namespace| !namespace.annotations().contains_key(KEPT_ANNOTATION))
        .filter(|namespace| {
            let owner = namespace.annotations().get(OWNER_ANNOTATION).cloned().unwrap_or_default();
            is_orphan(&owner, &host, |pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        })
        .map(|namespace| namespace.name_any())
        .collect())
}

/// A namespace is orphaned when its owner ran on this host and is no longer
/// alive; namespaces of other hosts are never touched.
fn is_orphan(owner: &str, host: &str, alive: impl Fn(u32) -> bool) -> bool {
    match owner.split_once(':') {
        Some((owner_host, pid)) if owner_host == host => pid.parse().is_ok_and(|pid| !alive(pid)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_orphan, name_for, still_terminating};
    use k8s_openapi::api::core::v1::Namespace;

    #[test]
    fn a_terminating_namespace_says_what_remains() {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "sp-x"},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "message": "All resources discovered"},
                {"type": "NamespaceContentRemaining", "status": "True",
                 "message": "Some resources are remaining: pods. has 2 resource instances"},
            ]}
        }))
        .unwrap();
        assert_eq!(
            still_terminating(&namespace),
            "phase Terminating; NamespaceContentRemaining: Some resources are remaining: pods. has 2 resource instances"
        );
    }

    #[test]
    fn only_dead_owners_on_this_host_are_orphans() {
        assert!(is_orphan("vm:42", "vm", |_| false));
        assert!(!is_orphan("vm:42", "vm", |_| true));
        assert!(!is_orphan("other:42", "vm", |_| false));
        assert!(!is_orphan("", "vm", |_| false));
    }

    #[test]
    fn namespace_names_are_valid_and_distinct() {
        let (a, b) = (name_for("ZooKeeper suite"), name_for("ZooKeeper suite"));
        assert!(a.starts_with("sp-zookeeper-suite-"), "{a}");
        assert_ne!(a, b);
        assert!(a.len() <= 63 && a.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        let variant = name_for("kafka[kafka@emptydir]");
        assert!(variant.starts_with("sp-kafka-kafka-emptydir-"), "{variant}");
    }
}
