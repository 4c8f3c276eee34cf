//! Operations on a StatefulSet: scaling it, and its label selector.

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, Patch, PatchParams};

/// Sets the StatefulSet's replicas, as `kubectl scale` does.
pub async fn scale(sets: &Api<StatefulSet>, name: &str, replicas: u32) -> Result<()> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    sets.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("scaling StatefulSet {name} to {replicas}"))?;
    Ok(())
}

/// The label selector of a StatefulSet, as a list-selector string.
pub fn selector_of(set: &StatefulSet) -> Result<String> {
    let labels = set
        .spec
        .as_ref()
        .and_then(|spec| spec.selector.match_labels.clone())
        .context("StatefulSet has no matchLabels selector")?;
    Ok(labels.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(","))
}
