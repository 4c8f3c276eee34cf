//! How a Kafka client outside the cluster reaches every broker: one local
//! port-forward per broker, and a relay that rewrites the addresses brokers
//! advertise (their in-cluster names) into those local ports. A client then
//! bootstraps from any broker and follows leaders as it would in the cluster,
//! including brokers that join later.

use super::protocol::{self, RequestHeader};
use crate::k8s::portforward::{self, PortForward, Relay};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;

/// Frames larger than this are not Kafka's (its default limit is 100 MiB).
const MAX_FRAME: usize = 128 << 20;

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    pods: Api<Pod>,
    /// Per advertised broker address: the local address that reaches it.
    routes: tokio::sync::Mutex<HashMap<(String, u16), Route>>,
}

struct Route {
    pod: String,
    forward: PortForward,
}

impl Gateway {
    pub fn new(pods: Api<Pod>) -> Self {
        Gateway { inner: Arc::new(Inner { pods, routes: Default::default() }) }
    }

    /// The local address that reaches `pod` on `port`, for bootstrapping.
    pub async fn local_address(&self, pod: &str, port: u16) -> Result<SocketAddr> {
        Inner::route(&self.inner, pod, port).await
    }

    /// The pod behind a local address this gateway handed out.
    pub async fn pod_behind(&self, address: &str) -> Option<String> {
        let routes = self.inner.routes.lock().await;
        routes.values().find(|route| route.forward.local.to_string() == address).map(|route| route.pod.clone())
    }
}

impl Inner {
    /// Boxed, because it is recursive: a route's relay asks for routes.
    fn route(this: &Arc<Self>, pod: &str, port: u16) -> Pin<Box<dyn Future<Output = Result<SocketAddr>> + Send>> {
        let (this, pod) = (this.clone(), pod.to_string());
        Box::pin(async move {
            let mut routes = this.routes.lock().await;
            let key = (pod.clone(), port);
            if let Some(route) = routes.get(&key) {
                return Ok(route.forward.local);
            }
            let weak = Arc::downgrade(&this);
            let relay: Relay = Arc::new(move |local, upstream| {
                let inner = weak.upgrade();
                Box::pin(async move {
                    if let Some(inner) = inner {
                        relay(inner, local, upstream).await;
                    }
                })
            });
            let forward = portforward::forward_with(this.pods.clone(), &pod, port, relay)
                .await
                .with_context(|| format!("forwarding a local port to broker pod {pod}:{port}"))?;
            let local = forward.local;
            routes.insert(key, Route { pod, forward });
            Ok(local)
        })
    }

    /// Rewrites a response's broker addresses to local ones. A broker is the
    /// pod named by its host's first label (StatefulSet pods advertise
    /// `<pod>.<service>.<namespace>…`); an address that names no pod is left.
    async fn localize(this: &Arc<Self>, frame: Vec<u8>, request: &RequestHeader) -> Vec<u8> {
        let slots = match protocol::address_slots(&frame, request) {
            Ok(slots) => slots,
            Err(why) => {
                eprintln!("stateproof: kafka gateway: cannot read a response ({}); passed on as is", why.0);
                return frame;
            }
        };
        let mut local = HashMap::new();
        for slot in &slots {
            let pod = slot.host.split('.').next().unwrap_or_default();
            let Ok(port) = u16::try_from(slot.port) else { continue };
            match Self::route(this, pod, port).await {
                Ok(address) => {
                    local.insert((slot.host.clone(), slot.port), address);
                }
                Err(error) => eprintln!("stateproof: kafka gateway: {error:#}"),
            }
        }
        protocol::rewrite(&frame, &slots, |host, port| match local.get(&(host.to_string(), port)) {
            Some(address) => (address.ip().to_string(), i32::from(address.port())),
            None => (host.to_string(), port),
        })
    }
}

/// Relays one client connection: requests pass as they are (their headers
/// noted), responses that carry addresses are rewritten.
async fn relay(inner: Arc<Inner>, local: TcpStream, upstream: DuplexStream) {
    let pending: Arc<Mutex<HashMap<i32, RequestHeader>>> = Arc::default();
    let (mut from_client, mut to_client) = local.into_split();
    let (mut from_broker, mut to_broker) = tokio::io::split(upstream);
    let noted = pending.clone();
    let requests = async move {
        while let Some(frame) = read_frame(&mut from_client).await {
            if let Some(header) = protocol::request_header(&frame).filter(protocol::carries_addresses) {
                noted.lock().expect("pending requests").insert(header.correlation_id, header);
            }
            if write_frame(&mut to_broker, &frame).await.is_err() {
                break;
            }
        }
    };
    let responses = async move {
        while let Some(frame) = read_frame(&mut from_broker).await {
            let request = protocol::response_correlation(&frame)
                .and_then(|id| pending.lock().expect("pending requests").remove(&id));
            let frame = match request {
                Some(request) => Inner::localize(&inner, frame, &request).await,
                None => frame,
            };
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
