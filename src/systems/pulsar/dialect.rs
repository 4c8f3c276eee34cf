//! Pulsar's dialect for the gateway (`systems::gateway`). A client looks a
//! topic up through the service URL and the broker answers with the URL of
//! the broker that owns it, an in-cluster name; the relay rewrites that URL
//! into the local port that reaches the same pod. Every other frame, and
//! everything the client sends, passes as it is.

use crate::systems::gateway::{Gateway, relay_frames};
use prost::Message;
use pulsar::proto::BaseCommand;
use std::pin::Pin;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;

pub fn relay(gateway: Gateway, local: TcpStream, upstream: DuplexStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move { relay_frames(local, upstream, |_| {}, |frame| localize(&gateway, frame)).await })
}

/// The frame, with the broker URL of a lookup response made local.
async fn localize(gateway: &Gateway, frame: Vec<u8>) -> Vec<u8> {
    let Some(url) = lookup_url(&frame) else { return frame };
    match local_url(gateway, &url).await {
        Some(local) => with_lookup_url(&frame, &local).unwrap_or(frame),
        None => frame,
    }
}

/// A frame's command, when the frame is a command alone (no payload): its
/// first 4 bytes give the command's size, which is then the rest.
fn command(frame: &[u8]) -> Option<BaseCommand> {
    let size = u32::from_be_bytes(frame.get(..4)?.try_into().ok()?) as usize;
    (frame.len() == 4 + size).then(|| BaseCommand::decode(&frame[4..]).ok()).flatten()
}

/// The broker URL of a lookup response.
fn lookup_url(frame: &[u8]) -> Option<String> {
    command(frame)?.lookup_topic_response?.broker_service_url
}

/// The frame with its lookup response's broker URL replaced.
fn with_lookup_url(frame: &[u8], url: &str) -> Option<Vec<u8>> {
    let mut command = command(frame)?;
    command.lookup_topic_response.as_mut()?.broker_service_url = Some(url.to_string());
    let encoded = command.encode_to_vec();
    let mut rewritten = Vec::with_capacity(encoded.len() + 4);
    rewritten.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    rewritten.extend_from_slice(&encoded);
    Some(rewritten)
}

/// `pulsar://<pod>.<service>…:6650` as the local URL reaching that pod.
async fn local_url(gateway: &Gateway, url: &str) -> Option<String> {
    let (host, port) = host_and_port(url)?;
    match gateway.localize(host, port).await {
        Ok(address) => Some(format!("pulsar://{address}")),
        Err(error) => {
            eprintln!("stateproof: pulsar gateway: {error:#}");
            None
        }
    }
}

fn host_and_port(url: &str) -> Option<(&str, u16)> {
    let authority = url.strip_prefix("pulsar://")?.trim_end_matches('/');
    let (host, port) = authority.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulsar::proto::{CommandLookupTopicResponse, base_command::Type};

    fn lookup_frame(url: &str) -> Vec<u8> {
        let command = BaseCommand {
            r#type: Type::LookupResponse as i32,
            lookup_topic_response: Some(CommandLookupTopicResponse {
                broker_service_url: Some(url.into()),
                request_id: 7,
                authoritative: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let encoded = command.encode_to_vec();
        let mut frame = (encoded.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&encoded);
        frame
    }

    #[test]
    fn a_lookup_response_gets_the_local_url_and_keeps_the_rest() {
        let frame = lookup_frame("pulsar://pulsar-broker-0.pulsar-broker.ns.svc.cluster.local:6650");
        assert_eq!(
            lookup_url(&frame).as_deref(),
            Some("pulsar://pulsar-broker-0.pulsar-broker.ns.svc.cluster.local:6650")
        );
        let rewritten = with_lookup_url(&frame, "pulsar://127.0.0.1:40123").unwrap();
        let response = command(&rewritten).unwrap().lookup_topic_response.unwrap();
        assert_eq!(response.broker_service_url.as_deref(), Some("pulsar://127.0.0.1:40123"));
        assert_eq!((response.request_id, response.authoritative), (7, Some(true)));
    }

    #[test]
    fn frames_with_a_payload_or_without_a_lookup_are_left_alone() {
        let mut with_payload = lookup_frame("pulsar://a:6650");
        with_payload.extend_from_slice(b"\x0e\x01payload");
        assert_eq!(lookup_url(&with_payload), None);
        let ping = BaseCommand { r#type: Type::Ping as i32, ..Default::default() }.encode_to_vec();
        let mut frame = (ping.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&ping);
        assert_eq!(lookup_url(&frame), None);
        assert_eq!(lookup_url(b"\x00\x00"), None);
    }

    #[test]
    fn broker_urls_split_into_host_and_port() {
        assert_eq!(host_and_port("pulsar://b-0.b.ns.svc:6650"), Some(("b-0.b.ns.svc", 6650)));
        assert_eq!(host_and_port("http://b-0:8080"), None);
        assert_eq!(host_and_port("pulsar://b-0"), None);
    }
}
