//! Pulsar through the `pulsar` crate, from the harness process. The members
//! under test are BookKeeper bookies; clients talk to the Pulsar broker in
//! front of them (the suite's `front`), through a port-forward whose relay
//! rewrites the broker URLs of topic lookups (see `dialect`). Producers and
//! consumers record into the shared delivery history.

mod dialect;
mod http;

use crate::checks::delivery::{MessageId, Offset, Position, Read, SendOutcome};
use crate::k8s::conditions::pod_ready;
use crate::k8s::portforward;
use crate::suite::Front;
use crate::systems::Members;
use crate::systems::gateway::Gateway;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use pulsar::consumer::InitialPosition;
use pulsar::proto::MessageIdData;
use pulsar::{ConsumerOptions, ProducerOptions, SubType, TokioExecutor};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Sends awaiting their receipt at once: enough to keep the broker busy,
/// bounded so that a stalled broker does not queue the whole run.
const IN_FLIGHT: usize = 1000;
const RECEIVE_POLL: Duration = Duration::from_secs(5);

pub struct Pulsar {
    gateway: Gateway,
    members: Members,
    front: Front,
    reads: AtomicU32,
}

impl Pulsar {
    pub fn new(members: Members, front: Option<Front>) -> Result<Self> {
        let front = front.context("a Pulsar suite names its brokers: params.front {statefulset, port}")?;
        let gateway = Gateway::new(members.pods.clone(), dialect::relay);
        Ok(Pulsar { gateway, members, front, reads: AtomicU32::new(0) })
    }

    fn front_pod(&self) -> String {
        format!("{}-0", self.front.statefulset)
    }

    /// The service URL a client outside the cluster uses.
    async fn service_url(&self) -> Result<String> {
        let local = self.gateway.local_address(&self.front_pod(), self.front.port).await?;
        Ok(format!("pulsar://{local}"))
    }

    /// Healthy: every member is a writable bookie, registered under its own
    /// pod's name, and the broker in front is Ready.
    pub async fn health(&self, replicas: u32) -> Result<Result<(), String>> {
        let writable = match self.writable_bookies(replicas).await {
            Ok(writable) => writable,
            Err(error) => return Ok(Err(format!("{error:#}"))),
        };
        let missing: Vec<String> =
            (0..replicas).map(|member| self.members.pod(member)).filter(|pod| !writable.contains(pod)).collect();
        if !missing.is_empty() {
            return Ok(Err(format!("writable bookies {writable:?}; not writable: {missing:?}")));
        }
        let front = self.front_pod();
        match self.members.pods.get_opt(&front).await? {
            Some(pod) if pod_ready(&pod) => Ok(Ok(())),
            _ => Ok(Err(format!("broker {front} is not Ready"))),
        }
    }

    /// The pods of the bookies the cluster lists as writable, asked of the
    /// first member whose HTTP admin API answers.
    pub async fn writable_bookies(&self, replicas: u32) -> Result<BTreeSet<String>> {
        let mut last_error = None;
        for member in 0..replicas.max(1) {
            let pod = self.members.pod(member);
            let answer = async {
                let forward = portforward::forward(self.members.pods.clone(), &pod, self.members.client_port).await?;
                http::get(forward.local, "/api/v1/bookie/list_bookies?type=rw&print_hostnames=true").await
            };
            match answer.await {
                Ok(body) => return bookie_pods(&body),
                Err(error) => last_error = Some(error.context(format!("asking bookie {pod}"))),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no bookie to ask")))
    }

    /// Produces `count` messages numbered from `first`, without batching, a
    /// window of them in flight; returns every send's outcome, in order.
    pub async fn produce(&self, topic: &str, first: u64, count: u64) -> Result<Vec<(MessageId, SendOutcome)>> {
        let url = self.service_url().await?;
        // On a runtime worker: the client's futures are too deep for the
        // stack of the test thread that awaits this.
        tokio::spawn(produce(url, topic.to_string(), first, count)).await?
    }

    /// Reads `topic` from its beginning up to the last message it held when
    /// the read began, through a new subscription that is removed after.
    pub async fn consume(&self, topic: &str, within: Duration) -> Result<Vec<Read>> {
        let url = self.service_url().await?;
        let subscription = format!("stateproof-read-{}", self.reads.fetch_add(1, Ordering::SeqCst));
        tokio::spawn(consume(url, topic.to_string(), subscription, within)).await?
    }
}

async fn connect(url: &str) -> Result<pulsar::Pulsar<TokioExecutor>> {
    pulsar::Pulsar::builder(url, TokioExecutor)
        .build()
        .await
        .with_context(|| format!("connecting to the Pulsar broker through {url}"))
}

async fn produce(url: String, topic: String, first: u64, count: u64) -> Result<Vec<(MessageId, SendOutcome)>> {
    let client = connect(&url).await?;
    let mut producer = client
        .producer()
        .with_topic(&topic)
        .with_name(format!("stateproof-{first}"))
        // Wait for room rather than refuse a send (SlowDown) when the
        // connection's queue is full.
        .with_options(ProducerOptions { block_queue_if_full: true, ..Default::default() })
        .build()
        .await
        .with_context(|| format!("creating a producer on {topic}"))?;
    let mut outcomes = Vec::with_capacity(count as usize);
    let mut pending = FuturesOrdered::new();
    for number in first..first + count {
        let id = MessageId::numbered(number);
        let sent = producer.send_non_blocking(id.to_string().into_bytes()).await;
        pending.push_back(async move {
            let outcome = match sent {
                Ok(receipt) => match receipt.await {
                    Ok(receipt) => acked(receipt.message_id),
                    Err(error) => SendOutcome::Unknown { error: error.to_string() },
                },
                Err(error) => SendOutcome::Unknown { error: error.to_string() },
            };
            (id, outcome)
        });
        while pending.len() >= IN_FLIGHT {
            outcomes.extend(pending.next().await);
        }
    }
    while let Some(done) = pending.next().await {
        outcomes.push(done);
    }
    let _ = producer.close().await;
    Ok(outcomes)
}

async fn consume(url: String, topic: String, subscription: String, within: Duration) -> Result<Vec<Read>> {
    let deadline = Instant::now() + within;
    let client = connect(&url).await?;
    let mut consumer: pulsar::Consumer<Vec<u8>, TokioExecutor> = client
        .consumer()
        .with_topic(&topic)
        .with_subscription(&subscription)
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .with_context(|| format!("subscribing to {topic}"))?;
    let last = consumer.get_last_message_id().await?.into_iter().next().context("no last message id")?;
    let end = position(&last);
    let mut records = Vec::new();
    let mut reached = last.entry_id == u64::MAX;
    while !reached {
        if Instant::now() > deadline {
            bail!("{topic} was not read to its end ({end}) within {within:?}: {} records read", records.len());
        }
        let Ok(next) = tokio::time::timeout(RECEIVE_POLL, consumer.next()).await else { continue };
        let message = next.context("the consumer's stream ended")??;
        let at = position(&message.message_id.id);
        records.push((String::from_utf8_lossy(&message.payload.data).into_owned(), at));
        consumer.ack(&message).await.with_context(|| format!("acknowledging {at}"))?;
        reached = at >= end;
    }
    let _ = consumer.unsubscribe().await;
    Ok(records)
}

fn acked(id: Option<MessageIdData>) -> SendOutcome {
    match id {
        Some(id) => SendOutcome::Acked { position: position(&id) },
        None => SendOutcome::Unknown { error: "a receipt without a message id".into() },
    }
}

/// A non-partitioned topic is partition 0; unbatched messages are batch -1.
fn position(id: &MessageIdData) -> Position {
    let offset = Offset::Ledger { ledger: id.ledger_id, entry: id.entry_id, batch: id.batch_index.unwrap_or(-1) };
    Position { partition: id.partition.filter(|p| *p >= 0).unwrap_or(0), offset }
}

/// The pods in a `list_bookies` answer: `{"<host>:<port>": "<hostname>", …}`,
/// a bookie's id being its pod's DNS name when it uses its hostname.
fn bookie_pods(body: &str) -> Result<BTreeSet<String>> {
    let listed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).with_context(|| format!("list_bookies answered {body:?}"))?;
    Ok(listed.keys().filter_map(|id| id.split([':', '.']).next()).map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookie_ids_name_their_pods() {
        let body = r#"{"bookie-0.bookie.sp-x.svc.cluster.local:3181" : "bookie-0.bookie.sp-x.svc.cluster.local",
                       "bookie-1.bookie.sp-x.svc.cluster.local:3181" : "bookie-1.bookie.sp-x.svc.cluster.local"}"#;
        let pods: Vec<String> = bookie_pods(body).unwrap().into_iter().collect();
        assert_eq!(pods, ["bookie-0", "bookie-1"]);
        assert!(bookie_pods("{}").unwrap().is_empty());
        assert!(bookie_pods("<html>").is_err());
    }

    #[test]
    fn message_ids_order_by_ledger_then_entry() {
        let id = |ledger, entry| MessageIdData { ledger_id: ledger, entry_id: entry, ..Default::default() };
        assert!(position(&id(12, 0)) > position(&id(11, 900)));
        assert!(position(&id(12, 5)) > position(&id(12, 4)));
        assert_eq!(position(&id(3, 1)).to_string(), "p0@3:1:-1");
    }
}
