//! Producing and consuming with outcomes recorded: every send gets its
//! delivery report classified by librdkafka's own persistence status, and
//! every record read goes into the history with its partition and offset.

use crate::checks::delivery::{MessageId, Offset, Position, Read, SendOutcome};
use crate::suite::Acks;
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

/// Delivery reports, by the index of the send.
#[derive(Default)]
struct Recorder {
    outcomes: Mutex<HashMap<usize, SendOutcome>>,
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
        self.outcomes.lock().expect("delivery outcomes").insert(index, outcome);
    }
}

/// A producer at work in the background; `finish` stops it (if it runs
/// until stopped) and returns every send with its outcome, in send order.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Vec<(MessageId, SendOutcome)>>>,
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
            Ok(ids
                .into_iter()
                .enumerate()
                .map(|(index, (id, refused))| {
                    let outcome = refused.or_else(|| outcomes.remove(&index)).unwrap_or(SendOutcome::Unknown {
                        error: "no delivery report before the producer was closed".into(),
                    });
                    (id, outcome)
                })
                .collect())
        });
        Ok(Traffic { stop, task })
    }

    pub async fn finish(mut self) -> Result<Vec<(MessageId, SendOutcome)>> {
        self.stop.store(true, Ordering::SeqCst);
        (&mut self.task).await.context("the producer task panicked")?
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
/// Returns every id in send order, with an outcome for those the client
/// refused outright (never sent).
fn send_all(
    producer: &ThreadedProducer<Recorder>,
    topic: &str,
    first: u64,
    count: Option<u64>,
    rate: Option<u32>,
    stop: &AtomicBool,
) -> Vec<(MessageId, Option<SendOutcome>)> {
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
        let refused = send_one(producer, topic, &id, sent.len());
        sent.push((id, refused));
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

/// What a read to the end found, and how long it fetched: from the
/// assignment, once the partitions and their ends are known, to the last
/// record (what `kafka-consumer-perf-test` reports as its fetch time).
pub struct Reading {
    pub records: Vec<Read>,
    pub fetching: Duration,
}

/// Reads every partition from the beginning to its high watermark as it was
/// when the read began.
pub async fn read_to_end(mut config: ClientConfig, topic: &str, within: Duration) -> Result<Reading> {
    config
        .set("group.id", format!("stateproof-read-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_blocking(&consumer, &topic, within)).await?
}

fn read_blocking(consumer: &BaseConsumer, topic: &str, within: Duration) -> Result<Reading> {
    let deadline = Instant::now() + within;
    let ends = high_watermarks(consumer, topic, within)?;
    let mut assignment = TopicPartitionList::new();
    for partition in ends.keys() {
        assignment.add_partition_offset(topic, *partition, KafkaOffset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let fetch_started = Instant::now();
    let mut next: BTreeMap<i32, i64> = ends.keys().map(|partition| (*partition, 0)).collect();
    let mut records = Vec::new();
    let behind = |next: &BTreeMap<i32, i64>| ends.iter().filter(|(partition, end)| next[partition] < **end).count();
    while behind(&next) > 0 {
        if Instant::now() > deadline {
            let unfinished: Vec<String> = ends
                .iter()
                .filter(|(partition, end)| next[partition] < **end)
                .map(|(partition, end)| format!("partition {partition} at offset {} of {end}", next[partition]))
                .collect();
            bail!("{topic} was not read to its end within {within:?}: {}", unfinished.join(", "));
        }
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                let text = message.payload().map(|bytes| String::from_utf8_lossy(bytes).into_owned());
                let position = Position { partition: message.partition(), offset: Offset::Sequence(message.offset()) };
                records.push((text.unwrap_or_default(), position));
                next.insert(message.partition(), message.offset() + 1);
            }
            // Reaching the end of the log (even one truncated below the
            // watermark read before) finishes the partition.
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                next.insert(partition, ends.get(&partition).copied().unwrap_or(0));
            }
            None => {}
            Some(Err(error)) => eprintln!("stateproof: reading {topic}: {error}"),
        }
    }
    Ok(Reading { records, fetching: fetch_started.elapsed() })
}

/// Each partition's high watermark: the end a complete read must reach.
fn high_watermarks(consumer: &BaseConsumer, topic: &str, within: Duration) -> Result<BTreeMap<i32, i64>> {
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
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, within)
            .with_context(|| format!("reading the end of {topic}/{partition}"))?;
        ends.insert(partition, high);
    }
    Ok(ends)
}
