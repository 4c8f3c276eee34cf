//! Kafka through `rdkafka` (librdkafka, built static), from the harness
//! process: clients bootstrap through one broker's port-forward and follow
//! the cluster's own metadata to every other broker (see `gateway`).
//! Producers and consumers record into the test's history.

mod gateway;
mod protocol;
mod traffic;

use crate::history::{Offset, SendReport};
use crate::suite::{Capability, Member};
use crate::systems::gateway::Gateway;
use crate::systems::{
    Log, Members, PartitionState, Produce, Reading, ReplicatedLog, Running, System, SystemKind, Traffic as Steady,
    params,
};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
pub use traffic::Traffic;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub static KIND: SystemKind = SystemKind {
    name: "kafka",
    offers: &[Capability::Log, Capability::LogVia, Capability::LeaderAcks, Capability::Traffic, Capability::ReplicatedLog],
    check_params: |value| params::<Params>("kafka", value).map(drop),
    build,
};

/// `params` of a Kafka suite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Params {
    /// The brokers' client listener.
    client_port: u16,
}

fn build(members: &Members, value: &serde_json::Value) -> Result<Box<dyn System>> {
    let params: Params = params("kafka", value)?;
    Ok(Box::new(Kafka::new(members.clone(), params.client_port)))
}

/// The member a client bootstraps through when a step does not choose.
const DEFAULT_VIA: Member = 0;

pub struct Kafka {
    gateway: Gateway,
    members: Members,
    port: u16,
}

impl Kafka {
    pub fn new(members: Members, port: u16) -> Self {
        Kafka { gateway: gateway::gateway(members.pods.clone()), members, port }
    }

    async fn bootstrap(&self, via: &[Member]) -> Result<Vec<SocketAddr>> {
        let mut addresses = Vec::new();
        for member in via {
            addresses.push(self.gateway.local_address(&self.members.pod(*member), self.port).await?);
        }
        Ok(addresses)
    }

    async fn config(&self, via: &[Member]) -> Result<ClientConfig> {
        let servers: Vec<String> = self.bootstrap(via).await?.iter().map(ToString::to_string).collect();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", servers.join(","))
            .set("client.id", "stateproof")
            .set("broker.address.family", "v4")
            .set("socket.timeout.ms", "15000")
            .set("reconnect.backoff.max.ms", "2000")
            .set("topic.metadata.refresh.interval.ms", "5000");
        Ok(config)
    }

    /// The cluster's metadata (one topic, or all), fetched through any member.
    async fn metadata(&self, members: &[Member], topic: Option<&str>) -> Result<Snapshot> {
        let consumer: BaseConsumer = self.config(members).await?.set("group.id", "stateproof-metadata").create()?;
        let topic = topic.map(str::to_string);
        let fetched = tokio::task::spawn_blocking(move || {
            consumer.fetch_metadata(topic.as_deref(), METADATA_TIMEOUT).map(|metadata| Snapshot::of(&metadata))
        });
        fetched.await?.context("fetching the cluster's metadata")
    }

    async fn broker_pods(&self, snapshot: &Snapshot) -> BTreeMap<i32, Option<String>> {
        let mut brokers = BTreeMap::new();
        for (id, address) in &snapshot.brokers {
            brokers.insert(*id, self.gateway.pod_behind(address).await);
        }
        brokers
    }

    /// The topics, their partitions' leaders, replicas and in-sync replicas,
    /// as text for a failed test's diagnostics.
    async fn describe_topics(&self, members: &[Member]) -> Result<String> {
        let snapshot = self.metadata(members, None).await?;
        let mut text = String::new();
        for (id, address) in &snapshot.brokers {
            let pod = self.gateway.pod_behind(address).await.unwrap_or_else(|| "?".into());
            writeln!(text, "broker {id} on {pod} (reached at {address})")?;
        }
        for (topic, partitions) in &snapshot.topics {
            writeln!(text, "topic {topic}")?;
            for p in partitions.iter().flatten() {
                let (replicas, isr) = (&p.replicas, &p.in_sync);
                writeln!(text, "  partition {} leader {} replicas {replicas:?} isr {isr:?}", p.partition, p.leader)?;
            }
        }
        Ok(text)
    }
}

#[async_trait]
impl System for Kafka {
    /// Healthy: exactly `replicas` brokers registered, one per member.
    async fn health(&self, members: &[Member]) -> Result<Result<(), String>> {
        let brokers = self.brokers(members).await?;
        let pods: Vec<String> = brokers.values().flatten().cloned().collect();
        let missing: Vec<String> =
            members.iter().map(|member| self.members.pod(*member)).filter(|pod| !pods.contains(pod)).collect();
        Ok(if missing.is_empty() && brokers.len() == members.len() {
            Ok(())
        } else {
            Err(format!("registered brokers {brokers:?}; not registered: {missing:?}"))
        })
    }

    fn log(&self) -> Option<&dyn Log> {
        Some(self)
    }

    fn replicated_log(&self) -> Option<&dyn ReplicatedLog> {
        Some(self)
    }

    async fn diagnostics(&self, members: &[Member]) -> Vec<(String, String)> {
        let topics = match self.describe_topics(members).await {
            Ok(text) => text,
            Err(error) => format!("cannot describe the topics: {error:#}\n"),
        };
        vec![("topics.txt".into(), topics)]
    }
}

#[async_trait]
impl Log for Kafka {
    async fn produce(&self, produce: Produce<'_>) -> Result<Vec<SendReport>> {
        let config = self.config(&[produce.via.unwrap_or(DEFAULT_VIA)]).await?;
        let count = Some(produce.count);
        Traffic::start(config, produce.topic, produce.acks, produce.first, count, None)?.finish().await
    }

    async fn start_traffic(&self, traffic: Steady<'_>) -> Result<Box<dyn Running>> {
        let config = self.config(&[traffic.via.unwrap_or(DEFAULT_VIA)]).await?;
        let running = Traffic::start(config, traffic.topic, traffic.acks, traffic.first, None, Some(traffic.rate))?;
        Ok(Box::new(running))
    }

    async fn read(
        &self,
        topic: &str,
        via: Option<Member>,
        acked: &BTreeMap<i32, Offset>,
        within: Duration,
    ) -> Result<Reading> {
        let config = self.config(&[via.unwrap_or(DEFAULT_VIA)]).await?;
        let acked = acked
            .iter()
            .filter_map(|(partition, offset)| match offset {
                Offset::Sequence(offset) => Some((*partition, *offset)),
                Offset::Ledger { .. } => None,
            })
            .collect();
        traffic::read_to_end(config, topic, acked, within).await
    }
}

#[async_trait]
impl ReplicatedLog for Kafka {
    async fn create_topic(&self, members: &[Member], topic: &str, partitions: i32, replication: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.config(members).await?.create()?;
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics([&new_topic], &options).await? {
            match result {
                // an earlier attempt that timed out on our side may have created it
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("creating topic {name}: {code}"),
            }
        }
        Ok(())
    }

    async fn partitions(&self, members: &[Member], topic: &str) -> Result<Vec<PartitionState>> {
        self.metadata(members, Some(topic)).await?.partitions(topic)
    }

    async fn leader(&self, members: &[Member], topic: &str, partition: i32) -> Result<Member> {
        let metadata = self.metadata(members, Some(topic)).await?;
        let state = metadata.partitions(topic)?;
        let leader = state.iter().find(|p| p.partition == partition).map(|p| p.leader);
        let leader = leader.filter(|id| *id >= 0).with_context(|| format!("{topic}/{partition} has no leader"))?;
        let brokers = self.broker_pods(&metadata).await;
        let pod = brokers.get(&leader).cloned().flatten();
        let pod = pod.with_context(|| format!("broker {leader} (leader of {topic}/{partition}) is not a member"))?;
        self.members.ordinal(&pod).with_context(|| format!("pod {pod} is not a member of the StatefulSet"))
    }

    async fn brokers(&self, members: &[Member]) -> Result<BTreeMap<i32, Option<String>>> {
        Ok(self.broker_pods(&self.metadata(members, None).await?).await)
    }
}

/// The cluster's metadata, owned (librdkafka's holds raw pointers): each
/// broker's id and advertised address, each topic's partitions or error.
struct Snapshot {
    brokers: Vec<(i32, String)>,
    topics: Vec<(String, Result<Vec<PartitionState>, String>)>,
}

impl Snapshot {
    fn of(metadata: &Metadata) -> Snapshot {
        let brokers =
            metadata.brokers().iter().map(|broker| (broker.id(), format!("{}:{}", broker.host(), broker.port()))).collect();
        let topics = metadata
            .topics()
            .iter()
            .map(|topic| {
                let partitions = match topic.error() {
                    Some(error) => Err(format!("{:?}", RDKafkaErrorCode::from(error))),
                    None => Ok(topic
                        .partitions()
                        .iter()
                        .map(|partition| PartitionState {
                            partition: partition.id(),
                            leader: partition.leader(),
                            replicas: partition.replicas().to_vec(),
                            in_sync: partition.isr().to_vec(),
                        })
                        .collect()),
                };
                (topic.name().to_string(), partitions)
            })
            .collect();
        Snapshot { brokers, topics }
    }

    /// The partitions of `topic`.
    fn partitions(&self, topic: &str) -> Result<Vec<PartitionState>> {
        let Some((_, found)) = self.topics.iter().find(|(name, _)| name == topic) else {
            bail!("topic {topic} is not in the cluster's metadata");
        };
        found.clone().map_err(|error| anyhow::anyhow!("topic {topic}: {error}"))
    }
}
