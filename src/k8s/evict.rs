//! Eviction through the Eviction API, where a PodDisruptionBudget's refusal
//! is an outcome to observe, not an error.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, EvictParams};

#[derive(Debug, PartialEq, Eq)]
pub enum Eviction {
    Granted,
    /// HTTP 429 from the API server, with its message.
    RefusedByBudget(String),
}

pub async fn evict(pods: &Api<Pod>, pod: &str) -> Result<Eviction> {
    match pods.evict(pod, &EvictParams::default()).await {
        Ok(_) => Ok(Eviction::Granted),
        // 429 is also how the API server throttles; only a budget's refusal names it.
        Err(kube::Error::Api(response)) if response.code == 429 && response.message.contains("disruption budget") => {
            Ok(Eviction::RefusedByBudget(response.message))
        }
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(Eviction::Granted),
        Err(error) => Err(error).with_context(|| format!("evicting pod {pod}")),
    }
}
