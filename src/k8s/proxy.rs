//! HTTP requests to a pod's port through the API server's proxy: one request
//! on the client's pooled connection, where a port-forward would open a new
//! stream through the API server, the kubelet and the container runtime (a
//! bookie sampled every 2 s asks several questions each time).

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub async fn get(pods: &Api<Pod>, pod: &str, port: u16, path: &str) -> Result<String> {
    let request = http::Request::get(url(pods, pod, port, path)).body(Vec::new())?;
    send(pods, request, "GET", path).await
}

/// A PUT of a JSON body.
pub async fn put_json(pods: &Api<Pod>, pod: &str, port: u16, path: &str, json: &serde_json::Value) -> Result<String> {
    let request = http::Request::put(url(pods, pod, port, path))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(json.to_string().into_bytes())?;
    send(pods, request, "PUT", path).await
}

fn url(pods: &Api<Pod>, pod: &str, port: u16, path: &str) -> String {
    format!("{}/{pod}:{port}/proxy{path}", pods.resource_url())
}

async fn send(pods: &Api<Pod>, request: http::Request<Vec<u8>>, method: &str, path: &str) -> Result<String> {
    let client = pods.clone().into_client();
    tokio::time::timeout(TIMEOUT, client.request_text(request))
        .await
        .with_context(|| format!("{method} {path}: no answer within {TIMEOUT:?}"))?
        .with_context(|| format!("{method} {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_proxy_path_names_the_pod_and_its_port() {
        let config = kube::Config::new("https://cluster.example".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let pods: Api<Pod> = Api::namespaced(client, "sp-ns");
        assert_eq!(
            url(&pods, "bookie-9", 8000, "/api/v1/ledger/list/?print_metadata=true"),
            "/api/v1/namespaces/sp-ns/pods/bookie-9:8000/proxy/api/v1/ledger/list/?print_metadata=true"
        );
    }
}
