//! Producing and consuming with outcomes recorded: every send gets its
//! delivery report classified by librdkafka's own persistence status, with
//! when it was sent and when its report came, and every record read comes
//! back with its partition, offset and the time it was read.

use crate::history::{self, Millis, MessageId, Offset, PartitionRead, Position, SendReport, SendOutcome};
use crate::suite::Acks;
use crate::systems::{Reading, Running};
use async_trait::async_trait;
use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset as KafkaOffset, TopicPartitionList};
use rdkafka_sys::rd_kafka_msg_status_t as Persistence;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Long enough for a leader election after a broker or node is lost.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(120);
const FLUSH_MARGIN: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// Delivery reports, by the index of the send, with when each came.
#[derive(Default)]
struct Recorder {
    outcomes: Mutex<HashMap<usize, (SendOutcome, Millis)>>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(message) => SendOutcome::Acked {
                position: Position { partition: message.partition(), offset: Offset::Sequence(message.offset()) },
            },
            Err((error, message)) => {
                // SAFETY: the message is valid for the duration of the callback.
                let status = unsafe { rdkafka_sys::rd_kafka_message_status(message.ptr()) };
                let error = error.to_string();
                match status {
                    Persistence::RD_KAFKA_MSG_STATUS_NOT_PERSISTED => SendOutcome::Failed { error },
                    _ => SendOutcome::Unknown { error },
                }
            }
        };
        self.outcomes.lock().expect("delivery outcomes").insert(index, (outcome, history::now()));
    }
}

/// A producer at work in the background; `finish` stops it (if it runs
/// until stopped) and returns every send with its outcome, in send order.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Vec<SendReport>>>,
}

impl Traffic {
    pub fn start(
        mut config: ClientConfig,
        topic: &str,
        acks: Acks,
        first: u64,
        count: Option<u64>,
        rate: Option<u32>,
    ) -> Result<Traffic> {
        apply_acks(&mut config, acks);
        config.set("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string()).set("linger.ms", "5");
        let producer: ThreadedProducer<Recorder> =
            config.create_with_context(Recorder::default()).context("creating the producer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (topic, stopping) = (topic.to_string(), stop.clone());
        let task = tokio::task::spawn_blocking(move || {
            let ids = send_all(&producer, &topic, first, count, rate, &stopping);
            // Every message still queued gets its report within the timeout.
            let _ = producer.flush(MESSAGE_TIMEOUT + FLUSH_MARGIN);
            let mut outcomes = std::mem::take(&mut *producer.context().outcomes.lock().expect("delivery outcomes"));
            let closed = history::now();
            Ok(ids
                .into_iter()
                .enumerate()
                .map(|(index, (id, sent_at, refused))| {
                    let (outcome, done_at) = refused.map(|refused| (refused, sent_at)).or_else(|| outcomes.remove(&index)).unwrap_or((
                        SendOutcome::Unknown { error: "no delivery report before the producer was closed".into() },
                        closed,
                    ));
                    SendReport { id, sent_at, done_at, outcome }
                })
                .collect())
        });
        Ok(Traffic { stop, task })
    }

    pub async fn finish(mut self) -> Result<Vec<SendReport>> {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.task).await.context("the producer task panicked")?
    }
}

#[async_trait]
impl Running for Traffic {
    async fn finish(self: Box<Self>) -> Result<Vec<SendReport>> {
        Traffic::finish(*self).await
    }
}

/// A test that fails mid-traffic must not leave a producer running.
impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn apply_acks(config: &mut ClientConfig, acks: Acks) {
    match acks {
        Acks::All => config.set("acks", "all").set("enable.idempotence", "true"),
        // Without idempotence, one request in flight keeps retries in order:
        // what is judged is the manifest's durability, not the client's.
        Acks::Leader => {
            config.set("acks", "1").set("enable.idempotence", "false").set("max.in.flight.requests.per.connection", "1")
        }
    };
}

/// Sends until `count` are sent or `stop` is set, at most `rate` a second.
/// Returns every id in send order with when it was sent, and an outcome for
/// those the client refused outright (never sent).
fn send_all(
    producer: &ThreadedProducer<Recorder>,
    topic: &str,
    first: u64,
    count: Option<u64>,
    rate: Option<u32>,
    stop: &AtomicBool,
) -> Vec<(MessageId, Millis, Option<SendOutcome>)> {
    let started = Instant::now();
    let mut sent = Vec::new();
    for number in first.. {
        if count.is_some_and(|count| number - first >= count) || (count.is_none() && stop.load(Ordering::SeqCst)) {
            break;
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64((number - first) as f64 / f64::from(rate.max(1)));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let id = MessageId::numbered(number);
        let sent_at = history::now();
        let refused = send_one(producer, topic, &id, sent.len());
        sent.push((id, sent_at, refused));
    }
    sent
}

fn send_one(producer: &ThreadedProducer<Recorder>, topic: &str, id: &MessageId, index: usize) -> Option<SendOutcome> {
    let text = id.to_string();
    loop {
        let record = BaseRecord::with_opaque_to(topic, index).key(&text).payload(&text);
        match producer.send(record) {
            Ok(()) => return None,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => std::thread::sleep(POLL / 4),
            Err((error, _)) => return Some(SendOutcome::Failed { error: error.to_string() }),
        }
    }
}

/// Reads every partition from the beginning up to the end it had when the
/// read began and at least to its highest acknowledged offset (`acked`),
/// until `within` is up.
pub async fn read_to_end(
    mut config: ClientConfig,
    topic: &str,
    acked: BTreeMap<i32, i64>,
    within: Duration,
) -> Result<Reading> {
    config
        .set("group.id", format!("stateproof-read-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_blocking(&consumer, &topic, &acked, within)).await?
}

/// One partition's read: the last offset it must reach, the log's start
/// and end as last seen (its low and high watermarks: the first offset it
/// holds, and the next), and the last read.
struct Lane {
    target: Option<i64>,
    start: i64,
    end: i64,
    read: Option<i64>,
    /// When the end was last asked for.
    asked: Instant,
}

impl Lane {
    /// The target read, or gone: a log whose start moved past the target
    /// (retention, deleted records) holds nothing more of what was asked,
    /// and the judge finds what it no longer holds.
    fn done(&self) -> bool {
        match (self.target, self.read) {
            (None, _) => true,
            (Some(target), _) if self.start > target => true,
            (Some(target), Some(read)) => read >= target,
            (Some(_), None) => false,
        }
    }

    /// Read everything the log offered, yet short of the target.
    fn stalled(&self) -> bool {
        self.read.map_or(self.start, |read| read + 1) >= self.end
    }

    fn report(&self, partition: i32) -> PartitionRead {
        PartitionRead {
            partition,
            target: self.target.map(Offset::Sequence),
            readable: (self.end > 0).then(|| Offset::Sequence(self.end - 1)),
            read: self.read.map(Offset::Sequence),
        }
    }
}

/// How often a partition that reached the log's end asks for a new end.
const END_REFRESH: Duration = Duration::from_secs(1);

fn read_blocking(consumer: &BaseConsumer, topic: &str, acked: &BTreeMap<i32, i64>, within: Duration) -> Result<Reading> {
    let deadline = Instant::now() + within;
    let bounds = watermarks(consumer, topic, within)?;
    let mut lanes: BTreeMap<i32, Lane> = bounds
        .iter()
        .map(|(partition, &(start, end))| {
            let target = [(end > 0).then(|| end - 1), acked.get(partition).copied()].into_iter().flatten().max();
            (*partition, Lane { target, start, end, read: None, asked: Instant::now() })
        })
        .collect();
    let mut assignment = TopicPartitionList::new();
    for partition in lanes.keys() {
        assignment.add_partition_offset(topic, *partition, KafkaOffset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let fetch_started = Instant::now();
    let mut records = Vec::new();
    while !lanes.values().all(Lane::done) && Instant::now() < deadline {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let text = message.payload().map(|bytes| String::from_utf8_lossy(bytes).into_owned());
                let position = Position { partition: message.partition(), offset: Offset::Sequence(message.offset()) };
                records.push((text.unwrap_or_default(), position, history::now()));
                if let Some(lane) = lanes.get_mut(&message.partition()) {
                    lane.read = Some(message.offset());
                    lane.end = lane.end.max(message.offset() + 1);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => eprintln!("stateproof: reading {topic}: {error}"),
        }
        // At the log's end short of the target: the end may still grow
        // (followers catching up with an ack the leader gave alone).
        for (partition, lane) in lanes.iter_mut().filter(|(_, lane)| !lane.done() && lane.stalled()) {
            refresh_end(consumer, topic, *partition, lane);
        }
    }
    for (partition, lane) in lanes.iter_mut().filter(|(_, lane)| !lane.done()) {
        lane.asked = Instant::now() - END_REFRESH;
        refresh_end(consumer, topic, *partition, lane);
    }
    let unfinished: Vec<String> = lanes
        .iter()
        .filter(|(_, lane)| !lane.done() && !lane.stalled())
        .map(|(partition, lane)| lane.report(*partition).to_string())
        .collect();
    if !unfinished.is_empty() {
        bail!("incomplete read: {topic} was not read to the end the log offered within {within:?}: {}", unfinished.join("; "));
    }
    let partitions = lanes.iter().map(|(partition, lane)| lane.report(*partition)).collect();
    Ok(Reading { records, partitions, fetching: fetch_started.elapsed() })
}

/// Asks for the partition's start and end again, at most once per
/// `END_REFRESH`. The end may also shrink (a truncated log), which is what
/// it is then.
fn refresh_end(consumer: &BaseConsumer, topic: &str, partition: i32, lane: &mut Lane) {
    if lane.asked.elapsed() < END_REFRESH {
        return;
    }
    lane.asked = Instant::now();
    if let Ok((low, high)) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
        (lane.start, lane.end) = (low, high);
    }
}

/// Each partition's low and high watermarks: where the log starts, and the
/// end a complete read must reach.
fn watermarks(consumer: &BaseConsumer, topic: &str, within: Duration) -> Result<BTreeMap<i32, (i64, i64)>> {
    let metadata = consumer.fetch_metadata(Some(topic), within).context("fetching the topic's partitions")?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|found| found.partitions().iter().map(|partition| partition.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    let mut ends = BTreeMap::new();
    for partition in partitions {
        let bounds = consumer
            .fetch_watermarks(topic, partition, within)
            .with_context(|| format!("reading the end of {topic}/{partition}"))?;
        ends.insert(partition, bounds);
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lane(target: Option<i64>, end: i64, read: Option<i64>) -> Lane {
        Lane { target, start: 0, end, read, asked: Instant::now() }
    }

    #[test]
    fn a_partition_is_done_once_its_target_is_read() {
        assert!(lane(None, 0, None).done(), "an empty partition with nothing acked");
        assert!(lane(Some(9), 10, Some(9)).done());
        assert!(!lane(Some(9), 10, Some(8)).done());
        assert!(!lane(Some(0), 0, None).done());
    }

    #[test]
    fn a_log_whose_start_moved_past_the_target_is_done_with_nothing_more_to_read() {
        // retention deleted offsets 0..=1699: nothing acknowledged is left to read
        let truncated = Lane { start: 1700, ..lane(Some(1699), 1700, None) };
        assert!(truncated.done() && truncated.stalled());
        // deleted up to 500 of 1700: the rest is still to read
        let partly = Lane { start: 500, ..lane(Some(1699), 1700, None) };
        assert!(!partly.done() && !partly.stalled());
        assert!(Lane { read: Some(1699), ..partly }.done());
    }

    #[test]
    fn a_read_that_took_all_the_log_offered_short_of_its_target_is_stalled_not_unfinished() {
        // acks=1: acknowledged up to 3390, the followers let the end reach 120 only
        assert!(lane(Some(3390), 121, Some(120)).stalled());
        assert!(!lane(Some(3390), 121, Some(100)).stalled());
        assert_eq!(lane(Some(3390), 121, Some(120)).report(1).to_string(), "p1 read to 120 of 3390, readable to 120");
        assert_eq!(lane(Some(5), 0, None).report(0).to_string(), "p0 read to nothing of 5, readable to nothing");
    }
}
