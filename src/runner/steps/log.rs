//! Steps for logs (Kafka, Pulsar): producers and consumers whose every send
//! and read goes into the test's delivery history, the delivery check, and
//! Kafka's topics, leaders and brokers.

use super::{CLIENT_RETRY, CONSUME_TIMEOUT, SYNC_TIMEOUT, TestRun};
use crate::checks::delivery::{self, Judgement, MessageId, SendOutcome};
use crate::suite::{Acks, Duplicates, Loss, Member, Step};
use crate::systems::Log;
use crate::systems::kafka::Kafka;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use std::time::Duration;

impl TestRun<'_> {
    pub(super) async fn log_step(&mut self, step: &Step) -> Result<()> {
        match step {
            Step::Produce { topic, messages, via, acks } => self.produce(topic, *messages, *via, *acks).await,
            Step::Consume { topic, via, within } => self.consume(topic, *via, within.unwrap_or(CONSUME_TIMEOUT)).await,
            Step::CheckDelivery { duplicates, loss } => self.check_delivery(delivery::Expectations {
                duplicates_allowed: *duplicates == Duplicates::Allowed,
                loss_is_finding: *loss == Loss::IsAFinding,
            }),
            other => self.kafka_step(other).await,
        }
    }

    async fn kafka_step(&mut self, step: &Step) -> Result<()> {
        let kafka = self.env.adapter.kafka()?;
        let replicas = self.env.replicas().await?;
        match step {
            Step::RememberLeader { topic, partition } => {
                let what = format!("the leader of {topic}/{partition}");
                let leader = wait::until(&what, CLIENT_RETRY, || async {
                    Ok(Probe::Done(kafka.leader(replicas, topic, *partition).await?))
                })
                .await?;
                eprintln!("[{}] {what} is member {leader}", self.label);
                self.state.leader = Some(leader);
            }
            Step::CreateTopic { topic, partitions, replication_factor } => {
                create_topic(kafka, replicas, topic, *partitions, *replication_factor).await?
            }
            Step::StartTraffic { topic, via, rate, acks } => {
                self.start_traffic(kafka, topic, *via, *rate, *acks).await?
            }
            Step::StopTraffic => {
                let (producer, traffic) = self.state.traffic.take().ok_or_else(|| anyhow!("no traffic is running"))?;
                self.record_sends(producer, traffic.finish().await?)?;
            }
            Step::ExpectInSync { topic, within } => {
                expect_in_sync(kafka, replicas, topic, within.unwrap_or(SYNC_TIMEOUT)).await?
            }
            Step::ExpectBrokers { ids, within } => {
                self.expect_brokers(kafka, replicas, ids, within.unwrap_or(CLIENT_RETRY)).await?
            }
            other => bail!("step `{other}` is not one this runner knows"),
        }
        Ok(())
    }

    async fn produce(&mut self, topic: &str, messages: u64, via: Option<Member>, acks: Acks) -> Result<()> {
        let first = self.state.next_message;
        let outcomes = match self.env.adapter.log()? {
            Log::Kafka(kafka) => {
                let via = via.context("producing to Kafka needs `via`: the member to bootstrap through")?;
                kafka.produce(via, topic, acks, first, messages).await?.finish().await?
            }
            Log::Pulsar(pulsar) => pulsar.produce(topic, first, messages).await?,
        };
        self.state.next_message += messages;
        let producer = self.next_producer();
        self.record_sends(producer, outcomes)
    }

    async fn consume(&mut self, topic: &str, via: Option<Member>, within: Duration) -> Result<()> {
        let log = self.env.adapter.log()?;
        // A broker just restarted may not lead its partitions yet
        // (NotLeaderForPartition): read again until the time is up.
        let records = wait::until(&format!("{topic} to be read to its end"), within, || async {
            Ok(Probe::Done(match &log {
                Log::Kafka(kafka) => {
                    let via = via.context("reading Kafka needs `via`: the member to bootstrap through")?;
                    kafka.consume(via, topic, within).await?.records
                }
                Log::Pulsar(pulsar) => pulsar.consume(topic, within).await?,
            }))
        })
        .await?;
        eprintln!("[{}] read {} records from {topic}", self.label, records.len());
        self.state.history.begin_pass();
        for (text, position) in records {
            self.state.history.record_read(&text, position);
        }
        Ok(())
    }

    fn next_producer(&mut self) -> u32 {
        self.state.producers += 1;
        self.state.producers
    }

    async fn start_traffic(&mut self, kafka: &Kafka, topic: &str, via: u32, rate: u32, acks: Acks) -> Result<()> {
        if self.state.traffic.is_some() {
            bail!("traffic is already running: stop it first");
        }
        // Room for a long run: ids stay unique whatever the traffic sends.
        let first = self.state.next_message;
        self.state.next_message += 10_000_000;
        let traffic = kafka.start_traffic(via, topic, acks, first, rate).await?;
        let producer = self.next_producer();
        self.state.traffic = Some((producer, traffic));
        Ok(())
    }

    fn record_sends(&mut self, producer: u32, outcomes: Vec<(MessageId, SendOutcome)>) -> Result<()> {
        let acked = outcomes.iter().filter(|(_, outcome)| matches!(outcome, SendOutcome::Acked { .. })).count();
        let failed = outcomes.iter().filter(|(_, outcome)| matches!(outcome, SendOutcome::Failed { .. })).count();
        let total = outcomes.len();
        eprintln!(
            "[{}] producer {producer}: {total} sent, {acked} acked, {failed} failed, {} indeterminate",
            self.label,
            total - acked - failed
        );
        if let Some((id, SendOutcome::Failed { error } | SendOutcome::Unknown { error })) =
            outcomes.iter().find(|(_, outcome)| !matches!(outcome, SendOutcome::Acked { .. }))
        {
            eprintln!("[{}] first send not acked: {id}: {error}", self.label);
        }
        for (id, outcome) in outcomes {
            self.state.history.record_send(producer, id, outcome);
        }
        if acked == 0 {
            bail!("producer {producer}: none of {total} messages was acknowledged");
        }
        Ok(())
    }

    fn check_delivery(&mut self, expectations: delivery::Expectations) -> Result<()> {
        let verdict = delivery::check(&self.state.history, &expectations);
        eprintln!("[{}] delivery: {}", self.label, verdict.summary());
        match verdict.judgement() {
            Judgement::Passed => Ok(()),
            Judgement::PassedWithFindings => {
                eprintln!("[{}] FINDING: {verdict}", self.label);
                self.findings.push(verdict.to_string());
                Ok(())
            }
            Judgement::Failed => bail!("{verdict}"),
        }
    }

    async fn expect_brokers(&self, kafka: &Kafka, replicas: u32, ids: &[i32], within: Duration) -> Result<()> {
        let members = &self.env.members;
        wait::until(&format!("brokers {ids:?}, each on its own member"), within, || async {
            let brokers = kafka.brokers(replicas).await?;
            let registered: Vec<i32> = brokers.keys().copied().collect();
            if registered != ids {
                let strangers: Vec<i32> = registered.iter().filter(|id| !ids.contains(id)).copied().collect();
                return Ok(Probe::Pending(if strangers.is_empty() {
                    format!("registered brokers are {registered:?}")
                } else {
                    format!("registered brokers are {registered:?}: broker.id does not follow the pod ordinal")
                }));
            }
            let strays: Vec<String> = brokers
                .iter()
                .filter(|(id, pod)| u32::try_from(**id).ok().map(|id| members.pod(id)) != **pod)
                .map(|(id, pod)| format!("broker {id} is served by {}", pod.as_deref().unwrap_or("no member")))
                .collect();
            Ok(if strays.is_empty() {
                Probe::Done(())
            } else {
                Probe::Pending(format!("{}: broker.id does not follow the pod ordinal", strays.join(", ")))
            })
        })
        .await?;
        Ok(())
    }
}

/// Creates a topic (retrying: the first admin call after a deployment may
/// time out on our side and still succeed) and waits until every partition
/// has a leader and all its replicas in sync.
pub(in crate::runner) async fn create_topic(
    kafka: &Kafka,
    replicas: u32,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<()> {
    wait::until(&format!("topic {topic} to be created"), CLIENT_RETRY, || async {
        Ok(Probe::Done(kafka.create_topic(replicas, topic, partitions, replication).await?))
    })
    .await?;
    expect_in_sync(kafka, replicas, topic, SYNC_TIMEOUT).await
}

async fn expect_in_sync(kafka: &Kafka, replicas: u32, topic: &str, within: Duration) -> Result<()> {
    wait::until(&format!("every partition of {topic} to be fully in sync"), within, || async {
        let partitions = kafka.partitions(replicas, topic).await?;
        let lagging: Vec<String> = partitions
            .iter()
            .filter(|p| p.leader < 0 || !p.fully_in_sync())
            .map(|p| {
                format!("partition {} leader {} replicas {:?} isr {:?}", p.partition, p.leader, p.replicas, p.in_sync)
            })
            .collect();
        Ok(if lagging.is_empty() && !partitions.is_empty() {
            Probe::Done(())
        } else {
            Probe::Pending(lagging.join("; "))
        })
    })
    .await?;
    Ok(())
}
