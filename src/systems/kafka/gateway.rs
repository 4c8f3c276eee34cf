//! Kafka's dialect for the gateway (`systems::gateway`): requests pass as
//! they are, their headers noted; Metadata and FindCoordinator responses get
//! their broker addresses rewritten into local ports.

use super::protocol::{self, RequestHeader};
use crate::systems::gateway::{Gateway, read_frame, write_frame};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::DuplexStream;
use tokio::net::TcpStream;

/// A gateway whose relays speak Kafka.
pub fn gateway(pods: Api<Pod>) -> Gateway {
    Gateway::new(pods, |gateway, local, upstream| Box::pin(relay(gateway, local, upstream)))
}

/// Rewrites a response's broker addresses to local ones; an address that
/// names no pod is left as it is.
async fn localize(gateway: &Gateway, frame: Vec<u8>, request: &RequestHeader) -> Vec<u8> {
    let slots = match protocol::address_slots(&frame, request) {
        Ok(slots) => slots,
        Err(why) => {
            eprintln!("stateproof: kafka gateway: cannot read a response ({}); passed on as is", why.0);
            return frame;
        }
    };
    let mut local = HashMap::new();
    for slot in &slots {
        let Ok(port) = u16::try_from(slot.port) else { continue };
        match gateway.localize(&slot.host, port).await {
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

/// Relays one client connection: requests pass as they are (their headers
/// noted), responses that carry addresses are rewritten.
async fn relay(gateway: Gateway, local: TcpStream, upstream: DuplexStream) {
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
                Some(request) => localize(&gateway, frame, &request).await,
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
