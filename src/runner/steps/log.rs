//! Steps for logs: producers and consumers whose every send and read goes
//! into the test's history, the delivery and availability checks, and the
//! topics, leaders and brokers of a replicated log.

use super::TestRun;
use crate::checks::availability;
use crate::checks::delivery::{self, Judgement};
use crate::history::{self, AckedBy, Checked, Event, Measured, Millis, Offset, SendOutcome, SendReport};
use crate::suite::{Acks, Defaults, Duplicates, Loss, Member};
use crate::systems::{Log, Produce, ReplicatedLog, Running, Traffic as Steady};
use crate::wait::{self, Probe};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::time::Duration;

/// Room for a long run of background traffic: ids stay unique whatever it sends.
const TRAFFIC_IDS: u64 = 10_000_000;

/// Background traffic at work.
pub(super) struct Traffic {
    producer: u32,
    started_at: Millis,
    running: Box<dyn Running>,
}

/// A stopped traffic's producer, from its start to its stop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    producer: u32,
    from: Millis,
    to: Millis,
}

fn acked_by(acks: Acks) -> AckedBy {
    match acks {
        Acks::All => AckedBy::Quorum,
        Acks::Leader => AckedBy::Leader,
    }
}

impl<'a> TestRun<'a> {
    fn log(&self) -> Result<&'a dyn Log> {
        let system = self.env.system.as_ref();
        system.log().with_context(|| format!("the {} adapter has no log", self.env.suite.system))
    }

    fn replicated(&self) -> Result<&'a dyn ReplicatedLog> {
        let system = self.env.system.as_ref();
        system.replicated_log().with_context(|| format!("the {} adapter has no replicated log", self.env.suite.system))
    }

    pub(super) async fn produce(&mut self, topic: &str, count: u64, via: Option<Member>, acks: Acks) -> Result<()> {
        let log = self.log()?;
        let first = self.state.next_message;
        self.state.next_message += count;
        let producer = self.history.begin_producer(topic, acked_by(acks));
        let sends = log.produce(Produce { topic, via, acks, first, count }).await?;
        self.record_sends(producer, sends)
    }

    pub(super) async fn start_traffic(
        &mut self,
        topic: &str,
        via: Option<Member>,
        rate: u32,
        acks: Acks,
    ) -> Result<()> {
        if self.state.traffic.is_some() {
            bail!("traffic is already running: stop it first");
        }
        let log = self.log()?;
        let first = self.state.next_message;
        self.state.next_message += TRAFFIC_IDS;
        let producer = self.history.begin_producer(topic, acked_by(acks));
        let started_at = history::now();
        let running = log.start_traffic(Steady { topic, via, acks, first, rate }).await?;
        self.state.traffic = Some(Traffic { producer, started_at, running });
        Ok(())
    }

    pub(super) async fn stop_traffic(&mut self) -> Result<()> {
        let traffic = self.state.traffic.take().ok_or_else(|| anyhow!("no traffic is running"))?;
        let stopped_at = history::now();
        let sends = traffic.running.finish().await?;
        let window = Window { producer: traffic.producer, from: traffic.started_at, to: stopped_at };
        self.state.stopped_traffic = Some(window);
        self.record_sends(traffic.producer, sends)
    }

    /// The longest time without an acknowledgement over the last traffic:
    /// a measured figure, and a failure beyond `max_gap`.
    pub(super) fn expect_available(&mut self, max_gap: Duration) -> Result<()> {
        let window = self.state.stopped_traffic.context("no traffic was stopped")?;
        let acks: Vec<Millis> = self
            .history
            .sends()
            .filter(|sent| sent.producer == window.producer && matches!(sent.outcome, SendOutcome::Acked { .. }))
            .map(|sent| sent.done_at)
            .collect();
        let gap = availability::longest_gap(&acks, window.from, window.to);
        let seconds = gap.length() as f64 / 1000.0;
        self.history.push(Event::Measured(Measured {
            at: history::now(),
            name: "max-ack-gap".into(),
            value: seconds,
            unit: "s".into(),
        }));
        self.properties.push(("max-ack-gap-seconds".into(), format!("{seconds:.1}")));
        eprintln!("[{}] longest time without an ack: {gap}", self.label);
        match availability::too_long(gap, max_gap) {
            Some(why) => bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Reads the topic to its end and at least to every position this test
    /// had acknowledged there: one read pass of the history.
    pub(super) async fn consume(&mut self, topic: &str, via: Option<Member>, within: Duration) -> Result<()> {
        let log = self.log()?;
        let acked = self.acked_ends(topic);
        let deadline = tokio::time::Instant::now() + within;
        let pass = self.history.begin_pass(topic);
        // A broker just restarted may not lead its partitions yet
        // (NotLeaderForPartition): read again until the time is up.
        let reading = wait::until(&format!("{topic} to be read to its end"), within, || async {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            Ok(Probe::Done(log.read(topic, via, &acked, remaining.max(Duration::from_secs(5))).await?))
        })
        .await?;
        let count = reading.records.len();
        for (text, position, at) in reading.records {
            self.history.record_read(pass, &text, position, at);
        }
        let short: Vec<String> =
            reading.partitions.iter().filter(|read| !read.complete()).map(ToString::to_string).collect();
        self.history.end_pass(pass, reading.partitions);
        eprintln!("[{}] read {count} records from {topic} (read pass {pass})", self.label);
        if !short.is_empty() {
            eprintln!("[{}] acknowledged positions never became readable: {}", self.label, short.join("; "));
        }
        Ok(())
    }

    /// Per partition, the highest position acknowledged on `topic`.
    fn acked_ends(&self, topic: &str) -> BTreeMap<i32, Offset> {
        let producers: Vec<u32> = self
            .history
            .producers()
            .filter(|producer| producer.topic == topic)
            .map(|producer| producer.producer)
            .collect();
        let mut ends: BTreeMap<i32, Offset> = BTreeMap::new();
        for sent in self.history.sends().filter(|sent| producers.contains(&sent.producer)) {
            if let SendOutcome::Acked { position } = &sent.outcome {
                let end = ends.entry(position.partition).or_insert(position.offset);
                *end = (*end).max(position.offset);
            }
        }
        ends
    }

    fn record_sends(&mut self, producer: u32, sends: Vec<SendReport>) -> Result<()> {
        let acked = sends.iter().filter(|send| matches!(send.outcome, SendOutcome::Acked { .. })).count();
        let failed = sends.iter().filter(|send| matches!(send.outcome, SendOutcome::Failed { .. })).count();
        let total = sends.len();
        eprintln!(
            "[{}] producer {producer}: {total} sent, {acked} acked, {failed} failed, {} indeterminate",
            self.label,
            total - acked - failed
        );
        if let Some(send) = sends.iter().find(|send| !matches!(send.outcome, SendOutcome::Acked { .. }))
            && let SendOutcome::Failed { error } | SendOutcome::Unknown { error } = &send.outcome
        {
            eprintln!("[{}] first send not acked: {}: {error}", self.label, send.id);
        }
        for send in sends {
            self.history.record_send(producer, send);
        }
        if acked == 0 {
            bail!("producer {producer}: none of {total} messages was acknowledged");
        }
        Ok(())
    }

    pub(super) fn check_delivery(&mut self, duplicates: Duplicates, loss: Loss, pass: Option<u32>) -> Result<()> {
        let expectations = delivery::Expectations {
            pass,
            duplicates_allowed: duplicates == Duplicates::Allowed,
            loss_is_finding: loss == Loss::IsAFinding,
        };
        let verdict = delivery::check(&self.history, &expectations);
        self.history.push(Event::Checked(Checked {
            at: history::now(),
            pass: pass.or(self.history.latest_pass()).unwrap_or(0),
            duplicates_allowed: expectations.duplicates_allowed,
            loss_is_finding: expectations.loss_is_finding,
            verdict: verdict.to_string(),
        }));
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

    pub(super) async fn remember_leader(&mut self, topic: &str, partition: i32) -> Result<()> {
        let (log, members) = (self.replicated()?, self.env.ordinals().await?);
        let what = format!("the leader of {topic}/{partition}");
        let leader = wait::until(&what, self.defaults().client_within, || async {
            Ok(Probe::Done(log.leader(&members, topic, partition).await?))
        })
        .await?;
        eprintln!("[{}] {what} is member {leader}", self.label);
        self.state.leader = Some(leader);
        Ok(())
    }

    pub(super) async fn create_topic(&self, topic: &str, partitions: i32, replication: i32) -> Result<()> {
        let (log, members) = (self.replicated()?, self.env.ordinals().await?);
        create_topic(log, &members, topic, (partitions, replication), self.defaults()).await
    }

    pub(super) async fn expect_in_sync(&self, topic: &str, within: Duration) -> Result<()> {
        let (log, members) = (self.replicated()?, self.env.ordinals().await?);
        expect_in_sync(log, &members, topic, within).await
    }

    pub(super) async fn expect_brokers(&self, ids: &[i32], within: Duration) -> Result<()> {
        let (log, ordinals) = (self.replicated()?, self.env.ordinals().await?);
        let members = &self.env.members;
        wait::until(&format!("brokers {ids:?}, each on its own member"), within, || async {
            let brokers = log.brokers(&ordinals).await?;
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
    log: &dyn ReplicatedLog,
    members: &[Member],
    topic: &str,
    (partitions, replication): (i32, i32),
    defaults: &Defaults,
) -> Result<()> {
    wait::until(&format!("topic {topic} to be created"), defaults.client_within, || async {
        Ok(Probe::Done(log.create_topic(members, topic, partitions, replication).await?))
    })
    .await?;
    expect_in_sync(log, members, topic, defaults.sync_within).await
}

async fn expect_in_sync(log: &dyn ReplicatedLog, members: &[Member], topic: &str, within: Duration) -> Result<()> {
    wait::until(&format!("every partition of {topic} to be fully in sync"), within, || async {
        let partitions = log.partitions(members, topic).await?;
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
