//! A local TCP address that forwards to a port of a pod, so that ordinary
//! clients (ZooKeeper, Kafka) reach members the way they would from outside.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Forwards while alive; dropping it stops accepting connections.
pub struct PortForward {
    pub local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn forward(pods: Api<Pod>, pod: &str, port: u16) -> Result<PortForward> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a local port")?;
    let local = listener.local_addr()?;
    let pod = pod.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                let Ok(mut forwarder) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                let Some(mut upstream) = forwarder.take_stream(port) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                drop(upstream);
                let _ = forwarder.join().await;
            });
        }
    });
    Ok(PortForward { local, task })
}
