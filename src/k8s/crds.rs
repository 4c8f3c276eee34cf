//! The custom resource definitions an operator reads: installed when the
//! cluster lacks them, and afterwards removed only if this run installed
//! them (removing a definition removes every object of its kind), once no
//! operator of this run on that cluster relies on them any more.

use super::apply::{Manifest, read_dir};
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

/// The definitions this run installed on one cluster, each with how many
/// of its operators rely on it: suites side by side share them, and the
/// last to stop removes them.
#[derive(Debug, Default)]
pub struct Installed(tokio::sync::Mutex<BTreeMap<String, usize>>);

/// Creates each definition of `dir` the cluster lacks and waits until it
/// serves; returns the names of those this run installed (now or for an
/// operator still running), which `remove` is to be given back.
pub async fn install(client: &Client, installed: &Installed, dir: &Path) -> Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Held until they serve: an operator starting meanwhile waits for them.
    let mut users = installed.0.lock().await;
    let (mut held, mut created) = (Vec::new(), Vec::new());
    for manifest in read_dir(dir)?.into_iter().filter(is_definition) {
        let definition: CustomResourceDefinition = serde_json::to_value(&manifest.object)
            .and_then(serde_json::from_value)
            .with_context(|| format!("{} is not a CustomResourceDefinition", manifest.file.display()))?;
        let name = definition.metadata.name.clone().unwrap_or_default();
        if let Some(count) = users.get_mut(&name) {
            *count += 1;
            held.push(name);
            continue;
        }
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        // Created, not applied: the largest exceed the annotation a client-side apply keeps.
        api.create(&PostParams::default(), &definition)
            .await
            .with_context(|| format!("creating CustomResourceDefinition {name} from {}", manifest.file.display()))?;
        users.insert(name.clone(), 1);
        held.push(name.clone());
        created.push(name);
    }
    for name in &created {
        wait::until(&format!("CustomResourceDefinition {name} to be established"), ESTABLISHED_WITHIN, || async {
            let definition = api.get(name).await?;
            let conditions = definition.status.and_then(|status| status.conditions).unwrap_or_default();
            let established = conditions.iter().any(|c| c.type_ == "Established" && c.status == "True");
            Ok(if established { Probe::Done(()) } else { Probe::Pending("not established yet".into()) })
        })
        .await?;
    }
    Ok(held)
}

/// Gives back what `install` returned: each definition no other operator
/// of this run still relies on is removed.
pub async fn remove(client: &Client, installed: &Installed, names: &[String]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut users = installed.0.lock().await;
    for name in names {
        if !release(&mut users, name) {
            continue;
        }
        if api.get_opt(name).await?.is_some() {
            api.delete(name, &DeleteParams::default())
                .await
                .with_context(|| format!("removing CustomResourceDefinition {name}"))?;
        }
    }
    Ok(())
}

/// One user fewer; whether that was the last.
fn release(users: &mut BTreeMap<String, usize>, name: &str) -> bool {
    let Some(count) = users.get_mut(name) else { return false };
    *count -= 1;
    let last = *count == 0;
    if last {
        users.remove(name);
    }
    last
}

fn is_definition(manifest: &Manifest) -> bool {
    manifest.object.types.as_ref().is_some_and(|types| types.kind == "CustomResourceDefinition")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_definition_goes_with_its_last_user_only() {
        let mut users = BTreeMap::from([("pulsarclusters.kaap".to_string(), 2)]);
        assert!(!release(&mut users, "pulsarclusters.kaap"), "another operator still relies on it");
        assert!(release(&mut users, "pulsarclusters.kaap"));
        assert!(users.is_empty());
        assert!(!release(&mut users, "the-users-own"), "never installed by this run");
    }
}
