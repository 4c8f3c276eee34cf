//! Pulsar through the `pulsar` crate, from the harness process. The members
//! under test are BookKeeper bookies; clients talk to the Pulsar broker in
//! front of them (`params.broker`), through a port-forward whose relay
//! rewrites the broker URLs of topic lookups (see `dialect`). Producers and
//! consumers record into the test's history.

mod bookies;
mod dialect;

use crate::history::{self, MessageId, Offset, PartitionRead, Position, SendReport, SendOutcome};
use crate::k8s::conditions::pod_ready;
use crate::k8s::proxy;
use crate::suite::{Capability, Member};
use crate::systems::gateway::Gateway;
use crate::systems::{Bookies, Log, Members, Produce, Reading, Running, System, SystemKind, Traffic, params};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
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

pub static KIND: SystemKind = SystemKind {
    name: "pulsar",
    offers: &[Capability::Log, Capability::Bookies],
    check_params: |value| params::<Params>("pulsar", value).map(drop),
    build,
};

/// `params` of a Pulsar suite, whose members are the bookies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Params {
    /// The bookies' HTTP admin API, which lists the writable bookies.
    admin_port: u16,
    /// The Pulsar brokers the clients talk to.
    broker: Broker,
    /// The ZooKeeper that holds BookKeeper's metadata (cookies).
    #[serde(default)]
    zookeeper: bookies::MetadataStore,
    /// Where each bookie keeps its ledgers (whose disk usage counts).
    #[serde(default = "bookies::default_ledger_dir")]
    ledger_dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Broker {
    statefulset: String,
    port: u16,
}

fn build(members: &Members, value: &serde_json::Value) -> Result<Box<dyn System>> {
    let params: Params = params("pulsar", value)?;
    Ok(Box::new(Pulsar::new(members.clone(), params)))
}

pub struct Pulsar {
    gateway: Gateway,
    members: Members,
    params: Params,
    reads: AtomicU32,
}

#[async_trait]
impl System for Pulsar {
    /// Healthy: every member is a writable bookie, registered under its own
    /// pod's name, and the broker in front is Ready.
    async fn health(&self, members: &[Member]) -> Result<Result<(), String>> {
        let writable = match self.writable_bookies(members).await {
            Ok(writable) => writable,
            Err(error) => return Ok(Err(format!("{error:#}"))),
        };
        let missing: Vec<String> =
            members.iter().map(|member| self.members.pod(*member)).filter(|pod| !writable.contains(pod)).collect();
        if !missing.is_empty() {
            return Ok(Err(format!("writable bookies {writable:?}; not writable: {missing:?}")));
        }
        let front = self.front_pod();
        match self.members.pods.get_opt(&front).await? {
            Some(pod) if pod_ready(&pod) => Ok(Ok(())),
            _ => Ok(Err(format!("broker {front} is not Ready"))),
        }
    }

    fn log(&self) -> Option<&dyn Log> {
        Some(self)
    }

    fn bookies(&self) -> Option<&dyn Bookies> {
        Some(self)
    }

    /// The journal and ledger directories of the bookie's running
    /// configuration (its HTTP admin API).
    async fn data_directories(&self, member: Member) -> Result<Option<Vec<String>>> {
        let config: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&self.ask(member, "/api/v1/config/server_config").await?)
                .context("the bookie's server_config is not a JSON object")?;
        let directories = directories_of(&config, &["journalDirectories", "journalDirectory", "ledgerDirectories"]);
        if directories.is_empty() {
            bail!("bookie {}'s server_config names no journal or ledger directory", self.members.pod(member));
        }
        Ok(Some(directories))
    }
}

#[async_trait]
impl Log for Pulsar {
    /// Produces without batching, a window of sends in flight; each outcome
    /// from its receipt.
    async fn produce(&self, produce: Produce<'_>) -> Result<Vec<SendReport>> {
        let url = self.service_url().await?;
        // On a runtime worker: the client's futures are too deep for the
        // stack of the test thread that awaits this.
        tokio::spawn(send_all(url, produce.topic.to_string(), produce.first, produce.count)).await?
    }

    async fn start_traffic(&self, _traffic: Traffic<'_>) -> Result<Box<dyn Running>> {
        bail!("the pulsar adapter offers no background traffic")
    }

    /// Reads through a new subscription from the earliest message, removed after.
    async fn read(
        &self,
        topic: &str,
        _via: Option<Member>,
        acked: &BTreeMap<i32, Offset>,
        within: Duration,
    ) -> Result<Reading> {
        let url = self.service_url().await?;
        let subscription = format!("stateproof-read-{}", self.reads.fetch_add(1, Ordering::SeqCst));
        let acked = acked.get(&0).copied();
        tokio::spawn(read_to_end(url, topic.to_string(), subscription, acked, within)).await?
    }
}

impl Pulsar {
    fn new(members: Members, params: Params) -> Self {
        let gateway = Gateway::new(members.pods.clone(), dialect::relay);
        Pulsar { gateway, members, params, reads: AtomicU32::new(0) }
    }

    fn front_pod(&self) -> String {
        format!("{}-0", self.params.broker.statefulset)
    }

    /// The service URL a client outside the cluster uses.
    async fn service_url(&self) -> Result<String> {
        let local = self.gateway.local_address(&self.front_pod(), self.params.broker.port).await?;
        Ok(format!("pulsar://{local}"))
    }

    /// The pods of the bookies the cluster lists as writable, asked of the
    /// first member whose HTTP admin API answers.
    pub async fn writable_bookies(&self, members: &[Member]) -> Result<BTreeSet<String>> {
        bookie_pods(&self.ask_any(members, "/api/v1/bookie/list_bookies?type=rw&print_hostnames=true").await?)
    }

    /// A GET of a member's HTTP admin API.
    async fn ask(&self, member: Member, path: &str) -> Result<String> {
        let pod = self.members.pod(member);
        proxy::get(&self.members.pods, &pod, self.params.admin_port, path).await.with_context(|| format!("asking bookie {pod}"))
    }

    /// A GET of the first member whose HTTP admin API answers.
    async fn ask_any(&self, members: &[Member], path: &str) -> Result<String> {
        let mut last_error = None;
        for member in members.iter().copied() {
            match self.ask(member, path).await {
                Ok(body) => return Ok(body),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no bookie to ask")))
    }

}

async fn connect(url: &str) -> Result<pulsar::Pulsar<TokioExecutor>> {
    pulsar::Pulsar::builder(url, TokioExecutor)
        .build()
        .await
        .with_context(|| format!("connecting to the Pulsar broker through {url}"))
}

async fn send_all(url: String, topic: String, first: u64, count: u64) -> Result<Vec<SendReport>> {
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
    let mut sends = Vec::with_capacity(count as usize);
    let mut pending = FuturesOrdered::new();
    for number in first..first + count {
        let id = MessageId::numbered(number);
        let sent_at = history::now();
        let sent = producer.send_non_blocking(id.to_string().into_bytes()).await;
        pending.push_back(async move {
            let outcome = match sent {
                Ok(receipt) => match receipt.await {
                    Ok(receipt) => acked(receipt.message_id),
                    Err(error) => SendOutcome::Unknown { error: error.to_string() },
                },
                Err(error) => SendOutcome::Unknown { error: error.to_string() },
            };
            SendReport { id, sent_at, done_at: history::now(), outcome }
        });
        while pending.len() >= IN_FLIGHT {
            sends.extend(pending.next().await);
        }
    }
    while let Some(done) = pending.next().await {
        sends.push(done);
    }
    let _ = producer.close().await;
    Ok(sends)
}

/// Reads from the earliest message up to the last one the topic had when the
/// read began, and at least to `acked`, until `within` is up. Then asks
/// the topic's last message again, to tell an ack never offered for
/// reading from a read that stopped short.
async fn read_to_end(
    url: String,
    topic: String,
    subscription: String,
    acked: Option<Offset>,
    within: Duration,
) -> Result<Reading> {
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
    let started = last_offset(&mut consumer).await?;
    let target = started.into_iter().chain(acked).max();
    let fetch_started = Instant::now();
    let mut records = Vec::new();
    let mut read: Option<Offset> = None;
    while target.is_some_and(|target| read.is_none_or(|read| read < target)) && Instant::now() < deadline {
        let Ok(next) = tokio::time::timeout(RECEIVE_POLL, consumer.next()).await else { continue };
        let message = next.context("the consumer's stream ended")??;
        let at = position(&message.message_id.id);
        records.push((String::from_utf8_lossy(&message.payload.data).into_owned(), at, history::now()));
        consumer.ack(&message).await.with_context(|| format!("acknowledging {at}"))?;
        read = read.max(Some(at.offset));
    }
    let readable = last_offset(&mut consumer).await.unwrap_or(started);
    let _ = consumer.unsubscribe().await;
    let partition = PartitionRead { partition: 0, target, readable, read };
    if !partition.complete() && read.is_none_or(|read| readable.is_some_and(|readable| read < readable)) {
        bail!("incomplete read: {topic} was not read to the end the log offered within {within:?}: {partition}");
    }
    Ok(Reading { records, partitions: vec![partition], fetching: fetch_started.elapsed() })
}

/// The position of the topic's last message, or nothing when it has none.
async fn last_offset(consumer: &mut pulsar::Consumer<Vec<u8>, TokioExecutor>) -> Result<Option<Offset>> {
    let last = consumer.get_last_message_id().await?.into_iter().next().context("no last message id")?;
    Ok((last.entry_id != u64::MAX).then(|| position(&last).offset))
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

/// The directories `keys` list in a bookie's configuration: a comma-separated
/// string, or a list once the configuration has split it.
fn directories_of(config: &BTreeMap<String, serde_json::Value>, keys: &[&str]) -> Vec<String> {
    let mut directories = Vec::new();
    for value in keys.iter().filter_map(|key| config.get(*key)) {
        let listed: Vec<&str> = match value {
            serde_json::Value::String(text) => text.split(',').collect(),
            serde_json::Value::Array(items) => items.iter().filter_map(serde_json::Value::as_str).collect(),
            _ => Vec::new(),
        };
        directories.extend(listed.into_iter().map(str::trim).filter(|dir| !dir.is_empty()).map(str::to_string));
    }
    directories
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bookies_directories_are_read_from_a_string_or_a_list() {
        let config: BTreeMap<String, serde_json::Value> = serde_json::from_str(
            r#"{"journalDirectories": "/pulsar/data/bookkeeper/journal",
                "ledgerDirectories": ["/data/l0", " /data/l1"], "zkServers": "zk-cs:2181"}"#,
        )
        .unwrap();
        let keys = ["journalDirectories", "journalDirectory", "ledgerDirectories"];
        assert_eq!(directories_of(&config, &keys), ["/pulsar/data/bookkeeper/journal", "/data/l0", "/data/l1"]);
    }

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
