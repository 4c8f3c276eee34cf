//! The custom resource definitions an operator reads: installed when the
//! cluster lacks them, and afterwards removed only if this run installed
//! them (removing a definition removes every object of its kind).

use super::apply::{Manifest, read_dir};
use crate::wait::{self, Probe};
use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use std::path::Path;
use std::time::Duration;

const ESTABLISHED_WITHIN: Duration = Duration::from_secs(60);

/// Creates each definition of `dir` the cluster lacks and waits until it
/// serves; returns the names of those it created.
pub async fn install(client: &Client, dir: &Path) -> Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut created = Vec::new();
    for manifest in read_dir(dir)?.into_iter().filter(is_definition) {
        let definition: CustomResourceDefinition = serde_json::to_value(&manifest.object)
            .and_then(serde_json::from_value)
            .with_context(|| format!("{} is not a CustomResourceDefinition", manifest.file.display()))?;
        let name = definition.metadata.name.clone().unwrap_or_default();
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        // Created, not applied: the largest exceed the annotation a client-side apply keeps.
        api.create(&PostParams::default(), &definition)
            .await
            .with_context(|| format!("creating CustomResourceDefinition {name} from {}", manifest.file.display()))?;
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
    Ok(created)
}

pub async fn remove(client: &Client, names: &[String]) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in names {
        if api.get_opt(name).await?.is_some() {
            api.delete(name, &DeleteParams::default())
                .await
                .with_context(|| format!("removing CustomResourceDefinition {name}"))?;
        }
    }
    Ok(())
}

fn is_definition(manifest: &Manifest) -> bool {
    manifest.object.types.as_ref().is_some_and(|types| types.kind == "CustomResourceDefinition")
}
