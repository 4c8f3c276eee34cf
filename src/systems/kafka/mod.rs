//! Kafka through `rdkafka` (librdkafka, built static), from the harness
//! process: clients bootstrap through one broker's port-forward and follow
//! the cluster's own metadata to every other broker (see `gateway`).
//! Producers and consumers record into the shared delivery history.

mod gateway;
mod protocol;
mod traffic;

use crate::suite::{Acks, Member};
use crate::systems::Members;
use crate::systems::gateway::Gateway;
use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::metadata::Metadata;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
pub use traffic::{Reading, Traffic};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Kafka {
    gateway: Gateway,
    members: Members,
}

/// One partition as the cluster describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync: Vec<i32>,
}

impl PartitionState {
    pub fn fully_in_sync(&self) -> bool {
        let (mut replicas, mut in_sync) = (self.replicas.clone(), self.in_sync.clone());
        replicas.sort_unstable();
        in_sync.sort_unstable();
        !replicas.is_empty() && replicas == in_sync
    }
}

impl Kafka {
    pub fn new(members: Members) -> Self {
        Kafka { gateway: gateway::gateway(members.pods.clone()), members }
    }

    async fn bootstrap(&self, via: &[Member]) -> Result<Vec<SocketAddr>> {
        let mut addresses = Vec::new();
        for member in via {
            addresses.push(self.gateway.local_address(&self.members.pod(*member), self.members.client_port).await?);
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
    async fn metadata(&self, replicas: u32, topic: Option<&str>) -> Result<Metadata> {
        let members: Vec<Member> = (0..replicas.max(1)).collect();
        let consumer: BaseConsumer = self.config(&members).await?.set("group.id", "stateproof-metadata").create()?;
        let topic = topic.map(str::to_string);
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(topic.as_deref(), METADATA_TIMEOUT))
            .await?
            .context("fetching the cluster's metadata")
    }

    /// Registered broker ids, each with the pod that serves it (None when the
    /// broker advertises an address that is not one of the members).
    pub async fn brokers(&self, replicas: u32) -> Result<BTreeMap<i32, Option<String>>> {
        Ok(self.broker_pods(&self.metadata(replicas, None).await?).await)
    }

    async fn broker_pods(&self, metadata: &Metadata) -> BTreeMap<i32, Option<String>> {
        let mut brokers = BTreeMap::new();
        for broker in metadata.brokers() {
            let address = format!("{}:{}", broker.host(), broker.port());
            brokers.insert(broker.id(), self.gateway.pod_behind(&address).await);
        }
        brokers
    }

    /// Healthy: exactly `replicas` brokers registered, one per member.
    pub async fn health(&self, replicas: u32) -> Result<Result<(), String>> {
        let brokers = self.brokers(replicas).await?;
        let pods: Vec<String> = brokers.values().flatten().cloned().collect();
        let missing: Vec<String> =
            (0..replicas).map(|member| self.members.pod(member)).filter(|pod| !pods.contains(pod)).collect();
        Ok(if missing.is_empty() && brokers.len() == replicas as usize {
            Ok(())
        } else {
            Err(format!("registered brokers {brokers:?}; not registered: {missing:?}"))
        })
    }

    pub async fn create_topic(&self, replicas: u32, topic: &str, partitions: i32, replication: i32) -> Result<()> {
        let members: Vec<Member> = (0..replicas.max(1)).collect();
        let admin: AdminClient<DefaultClientContext> = self.config(&members).await?.create()?;
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

    pub async fn partitions(&self, replicas: u32, topic: &str) -> Result<Vec<PartitionState>> {
        partition_states(&self.metadata(replicas, Some(topic)).await?, topic)
    }

    /// The member whose broker leads `topic`'s `partition`.
    pub async fn leader(&self, replicas: u32, topic: &str, partition: i32) -> Result<Member> {
        let metadata = self.metadata(replicas, Some(topic)).await?;
        let state = partition_states(&metadata, topic)?;
        let leader = state.iter().find(|p| p.partition == partition).map(|p| p.leader);
        let leader = leader.filter(|id| *id >= 0).with_context(|| format!("{topic}/{partition} has no leader"))?;
        let brokers = self.broker_pods(&metadata).await;
        let pod = brokers.get(&leader).cloned().flatten();
        let pod = pod.with_context(|| format!("broker {leader} (leader of {topic}/{partition}) is not a member"))?;
        self.members.ordinal(&pod).with_context(|| format!("pod {pod} is not a member of the StatefulSet"))
    }

    /// Starts producing `count` messages, numbered from `first`; `finish`
    /// on the result waits for every outcome.
    pub async fn produce(&self, via: Member, topic: &str, acks: Acks, first: u64, count: u64) -> Result<Traffic> {
        let config = self.config(&[via]).await?;
        Traffic::start(config, topic, acks, first, Some(count), None)
    }

    /// Starts producing `rate` messages a second until stopped.
    pub async fn start_traffic(&self, via: Member, topic: &str, acks: Acks, first: u64, rate: u32) -> Result<Traffic> {
        let config = self.config(&[via]).await?;
        Traffic::start(config, topic, acks, first, None, Some(rate))
    }

    /// Reads every partition of `topic` from its beginning to the end it had
    /// when the read began.
    pub async fn consume(&self, via: Member, topic: &str, within: Duration) -> Result<Reading> {
        let config = self.config(&[via]).await?;
        traffic::read_to_end(config, topic, within).await
    }

    /// The topics, their partitions' leaders, replicas and in-sync replicas,
    /// as text for a failed test's diagnostics.
    pub async fn describe_topics(&self, replicas: u32) -> Result<String> {
        let metadata = self.metadata(replicas, None).await?;
        let mut text = String::new();
        for broker in metadata.brokers() {
            let address = format!("{}:{}", broker.host(), broker.port());
            let pod = self.gateway.pod_behind(&address).await.unwrap_or_else(|| "?".into());
            writeln!(text, "broker {} on {pod} (reached at {address})", broker.id())?;
        }
        for topic in metadata.topics() {
            writeln!(text, "topic {}", topic.name())?;
            for p in topic.partitions() {
                let (replicas, isr) = (p.replicas(), p.isr());
                writeln!(text, "  partition {} leader {} replicas {replicas:?} isr {isr:?}", p.id(), p.leader())?;
            }
        }
        Ok(text)
    }
}

/// The partitions of `topic` as `metadata` describes them.
fn partition_states(metadata: &Metadata, topic: &str) -> Result<Vec<PartitionState>> {
    let Some(found) = metadata.topics().iter().find(|found| found.name() == topic) else {
        bail!("topic {topic} is not in the cluster's metadata");
    };
    if let Some(error) = found.error() {
        bail!("topic {topic}: {:?}", RDKafkaErrorCode::from(error));
    }
    Ok(found
        .partitions()
        .iter()
        .map(|partition| PartitionState {
            partition: partition.id(),
            leader: partition.leader(),
            replicas: partition.replicas().to_vec(),
            in_sync: partition.isr().to_vec(),
        })
        .collect())
}
