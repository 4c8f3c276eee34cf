//! Kube clients for a kubeconfig and context, checked to answer.

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::Path;
use std::time::Duration;

const REACH_TIMEOUT: Duration = Duration::from_secs(20);

/// Two clients to the same cluster. `client` retries throttled and
/// unavailable answers; `literal` never does, for calls whose 429 is the
/// answer itself (an eviction refused by a PodDisruptionBudget).
#[derive(Clone)]
pub struct Clients {
    pub client: Client,
    pub literal: Client,
}

pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Clients> {
    let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
    let source = kubeconfig.map_or_else(|| "the default kubeconfig".to_string(), |path| path.display().to_string());
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("cannot read kubeconfig {source}"))?;
            Config::from_custom_kubeconfig(file, &options).await
        }
        None => Config::from_kubeconfig(&options).await,
    }
    .with_context(|| format!("cannot use {source} (context {})", context.unwrap_or("current")))?;
    let server = config.cluster_url.to_string();
    let mut literal_config = config.clone();
    literal_config.default_retry = false;
    let literal = Client::try_from(literal_config)?;
    let client = Client::try_from(config).context("cannot build a Kubernetes client")?;
    tokio::time::timeout(REACH_TIMEOUT, client.apiserver_version())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}s", REACH_TIMEOUT.as_secs()))
        .and_then(|answer| answer.map_err(anyhow::Error::from))
        .with_context(|| format!("the cluster at {server} (from {source}) is unreachable"))?;
    Ok(Clients { client, literal })
}
