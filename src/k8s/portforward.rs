//! A local TCP address that forwards to a port of a pod, so that ordinary
//! clients (ZooKeeper, Kafka) reach members the way they would from outside.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::DuplexStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What happens to each accepted connection once its upstream is open: a
/// plain copy, or a relay that reads the protocol (Kafka's addresses).
pub type Relay = Arc<dyn Fn(TcpStream, DuplexStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

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
    let copy: Relay = Arc::new(|mut local, mut upstream| {
        Box::pin(async move {
            let _ = tokio::io::copy_bidirectional(&mut local, &mut upstream).await;
        })
    });
    forward_with(pods, pod, port, copy).await
}

pub async fn forward_with(pods: Api<Pod>, pod: &str, port: u16, relay: Relay) -> Result<PortForward> {
    let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a local port")?;
    let local = listener.local_addr()?;
    let pod = pod.to_string();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (pods, pod, relay) = (pods.clone(), pod.clone(), relay.clone());
            tokio::spawn(async move {
                let Ok(mut forwarder) = pods.portforward(&pod, &[port]).await else {
                    return;
                };
                let Some(upstream) = forwarder.take_stream(port) else {
                    return;
                };
                relay(socket, upstream).await;
                let _ = forwarder.join().await;
            });
        }
    });
    Ok(PortForward { local, task })
}
