//! Kafka's dialect for the gateway (`systems::gateway`): requests pass as
//! they are, their headers noted; Metadata and FindCoordinator responses get
//! their broker addresses rewritten into local ports.

use super::protocol::{self, RequestHeader};
use crate::systems::gateway::{Gateway, relay_frames};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::collections::HashMap;
use std::sync::Mutex;
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

/// Relays one client connection: requests pass as they are (the headers of
/// those whose responses carry addresses noted), responses are localized.
async fn relay(gateway: Gateway, local: TcpStream, upstream: DuplexStream) {
    let pending: Mutex<HashMap<i32, RequestHeader>> = Mutex::default();
    let note = |frame: &[u8]| {
        if let Some(header) = protocol::request_header(frame).filter(protocol::carries_addresses) {
            pending.lock().expect("pending requests").insert(header.correlation_id, header);
        }
    };
    let rewrite = |frame: Vec<u8>| {
        let request =
            protocol::response_correlation(&frame).and_then(|id| pending.lock().expect("pending requests").remove(&id));
        let gateway = &gateway;
        async move {
            match request {
                Some(request) => localize(gateway, frame, &request).await,
                None => frame,
            }
        }
    };
    relay_frames(local, upstream, note, rewrite).await;
}
