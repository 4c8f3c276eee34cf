//! How a client outside the cluster reaches every server of a StatefulSet
//! by the addresses the servers advertise (their in-cluster names): one
//! local port-forward per server pod, and a relay per connection that speaks
//! the system's protocol (its dialect) and rewrites those addresses into the
//! local ports. A client then bootstraps from one server and follows the
//! cluster's own answers to the others, including servers that join later.

use crate::k8s::portforward::{self, PortForward, Relay};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

/// Frames larger than this are neither Kafka's (its limit is 100 MiB by
/// default) nor Pulsar's (5 MiB).
const MAX_FRAME: usize = 128 << 20;

/// Relays one client connection to its server, rewriting what it must
/// through the gateway it is given.
pub type Dialect = fn(Gateway, TcpStream, DuplexStream) -> Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    pods: Api<Pod>,
    dialect: Dialect,
    /// Per (pod, port): the forward that reaches it.
    routes: tokio::sync::Mutex<HashMap<(String, u16), Route>>,
}

struct Route {
    pod: String,
    forward: PortForward,
}

impl Gateway {
    pub fn new(pods: Api<Pod>, dialect: Dialect) -> Self {
        Gateway { inner: Arc::new(Inner { pods, dialect, routes: Default::default() }) }
    }

    /// The local address that reaches `pod` on `port`.
    pub fn local_address(&self, pod: &str, port: u16) -> Pin<Box<dyn Future<Output = Result<SocketAddr>> + Send>> {
        // Boxed, because it is recursive: a route's relay asks for routes.
        let (inner, pod) = (self.inner.clone(), pod.to_string());
        Box::pin(async move {
            let mut routes = inner.routes.lock().await;
            let key = (pod.clone(), port);
            if let Some(route) = routes.get(&key) {
                return Ok(route.forward.local);
            }
            // Weak: the routes own the forwards, whose relays must not own them back.
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            let relay: Relay = Arc::new(move |local, upstream| {
                let inner = weak.upgrade();
                Box::pin(async move {
                    if let Some(inner) = inner {
                        let dialect = inner.dialect;
                        dialect(Gateway { inner }, local, upstream).await;
                    }
                })
            });
            let forward = portforward::forward_with(inner.pods.clone(), &pod, port, relay)
                .await
                .with_context(|| format!("forwarding a local port to pod {pod}:{port}"))?;
            let local = forward.local;
            routes.insert(key, Route { pod, forward });
            Ok(local)
        })
    }

    /// The local address for an address a server advertised. StatefulSet pods
    /// advertise `<pod>.<service>.<namespace>…`: the host's first label
    /// names the pod.
    pub async fn localize(&self, host: &str, port: u16) -> Result<SocketAddr> {
        let pod = host.split('.').next().unwrap_or_default();
        self.local_address(pod, port).await
    }

    /// The pod behind a local address this gateway handed out.
    pub async fn pod_behind(&self, address: &str) -> Option<String> {
        let routes = self.inner.routes.lock().await;
        routes.values().find(|route| route.forward.local.to_string() == address).map(|route| route.pod.clone())
    }
}

/// Relays one connection frame by frame until either side closes: each
/// request frame is shown to `note` before it passes on, each response frame
/// passes through `rewrite`.
pub async fn relay_frames<N, R, F>(local: TcpStream, upstream: DuplexStream, mut note: N, mut rewrite: R)
where
    N: FnMut(&[u8]),
    R: FnMut(Vec<u8>) -> F,
    F: Future<Output = Vec<u8>>,
{
    let (mut from_client, mut to_client) = local.into_split();
    let (mut from_server, mut to_server) = tokio::io::split(upstream);
    let requests = async {
        while let Some(frame) = read_frame(&mut from_client).await {
            note(&frame);
            if write_frame(&mut to_server, &frame).await.is_err() {
                break;
            }
        }
    };
    let responses = async {
        while let Some(frame) = read_frame(&mut from_server).await {
            let frame = rewrite(frame).await;
            if write_frame(&mut to_client, &frame).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = responses => {}
    }
}

/// Kafka and Pulsar both frame with a 4-byte big-endian size: one frame's
/// content, or nothing at the end of the stream (or on a size neither uses).
async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let size = reader.read_i32().await.ok()?;
    let size = usize::try_from(size).ok().filter(|size| *size <= MAX_FRAME)?;
    let mut frame = vec![0; size];
    reader.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

async fn write_frame(writer: &mut (impl AsyncWrite + Unpin), frame: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(frame.len() + 4);
    framed.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    framed.extend_from_slice(frame);
    writer.write_all(&framed).await
}
