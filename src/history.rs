//! A test's history: one timeline of everything it did and saw, as Jepsen
//! keeps one. Steps and faults begin and end, producers send and learn each
//! send's outcome, consumers read the log in passes, checks record their
//! verdicts: each an event with the wall-clock time it happened. The
//! delivery checker judges the sends and reads; the report draws the
//! timeline; `stateproof recheck` judges a stored history again.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// Wall-clock time in milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// A message's identity as the text it travels as (`m-000123`). Text rather
/// than a number: a read matches a send only if it carries the same text, so
/// a mangled id shows up as a phantom instead of parsing into a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    pub fn numbered(n: u64) -> Self {
        Self(format!("m-{n:06}"))
    }

    /// The id a record carries, or nothing if the text is not exactly one.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix("m-")?;
        (!digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())).then(|| Self(text.to_string()))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a record sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub partition: i32,
    pub offset: Offset,
}

/// A record's place within its partition, in each system's own terms:
/// packing Pulsar's into one i64 would lose bits (ledger ids are 64-bit),
/// and the messages of one batched entry differ only by their batch index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Offset {
    /// Kafka's offset within the partition.
    Sequence(i64),
    /// Pulsar's message id. A partition's ledgers get increasing ids, so
    /// (ledger, entry, batch) orders its records; batch is -1 when unbatched.
    Ledger { ledger: u64, entry: u64, batch: i32 },
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offset::Sequence(offset) => write!(f, "{offset}"),
            Offset::Ledger { ledger, entry, batch } => write!(f, "{ledger}:{entry}:{batch}"),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}@{}", self.partition, self.offset)
    }
}

/// A record as a consumer read it: its text and where it sits.
pub type Read = (String, Position);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    Acked {
        position: Position,
    },
    /// Certainly not written, e.g. rejected before it left the client. When
    /// in doubt it is `Unknown`: a wrong `Failed` turns a read into an
    /// aborted read.
    Failed {
        error: String,
    },
    /// Timed out or otherwise indeterminate: it may or may not be in the log.
    Unknown {
        error: String,
    },
}

/// One send and what became of it, with when it was sent and when its
/// outcome was known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReport {
    pub id: MessageId,
    pub sent_at: Millis,
    pub done_at: Millis,
    pub outcome: SendOutcome,
}

/// What acknowledged a send: every in-sync replica, or the leader alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckedBy {
    #[default]
    Quorum,
    Leader,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Producer {
    pub producer: u32,
    pub topic: String,
    pub acked_by: AckedBy,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub producer: u32,
    /// The order in which this producer issued its sends.
    pub seq: u64,
    pub id: MessageId,
    pub sent_at: Millis,
    pub done_at: Millis,
    #[serde(flatten)]
    pub outcome: SendOutcome,
}

/// The start of a read of a topic from its beginning, by a new consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassStarted {
    pub pass: u32,
    pub topic: String,
    pub at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// Which read of the topic this record came from.
    pub pass: u32,
    pub id: MessageId,
    pub position: Position,
    pub at: Millis,
}

/// A record whose text is not a message id, kept verbatim: a phantom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unrecognized {
    pub pass: u32,
    pub raw: String,
    pub position: Position,
    pub at: Millis,
}

/// How far a pass got in one partition: what it had to reach (the end the
/// partition had when the read began, and every acknowledged position), the
/// last position the log offered for reading when the read ended, and the
/// last position it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRead {
    pub partition: i32,
    pub target: Option<Offset>,
    pub readable: Option<Offset>,
    pub read: Option<Offset>,
}

impl PartitionRead {
    /// Read up to everything it had to.
    pub fn complete(&self) -> bool {
        match (self.target, self.read) {
            (None, _) => true,
            (Some(target), Some(read)) => read >= target,
            (Some(_), None) => false,
        }
    }

    /// Whether a position of this partition lies beyond what the log
    /// offered for reading when the pass ended.
    pub fn beyond_readable(&self, offset: Offset) -> bool {
        self.readable.is_none_or(|readable| offset > readable)
    }
}

impl fmt::Display for PartitionRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |offset: Option<Offset>| offset.map_or("nothing".to_string(), |offset| offset.to_string());
        write!(
            f,
            "p{} read to {} of {}, readable to {}",
            self.partition,
            shown(self.read),
            shown(self.target),
            shown(self.readable)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassEnded {
    pub pass: u32,
    pub at: Millis,
    pub partitions: Vec<PartitionRead>,
}

/// A step of the test, as it began or ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvent {
    /// 1-based, as the report numbers steps.
    pub index: usize,
    pub step: String,
    pub at: Millis,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Passed,
    Failed,
}

/// A fault the test put on the system, or the undoing of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEvent {
    pub fault: String,
    pub at: Millis,
    pub phase: FaultPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultPhase {
    Started,
    Undone,
    UndoFailed,
}

/// What a delivery check was asked and what it concluded, so that a stored
/// history can be judged again the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub at: Millis,
    pub pass: u32,
    pub duplicates_allowed: bool,
    pub loss_is_finding: bool,
    pub verdict: String,
}

/// Something the cluster did, as a watch saw it: a pod created, ready,
/// restarted, deleted; a node turning NotReady or Ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub at: Millis,
    /// The pod or node.
    pub subject: String,
    pub what: String,
}

/// A sample of the system's state, as a series the test judges (the
/// bookies while an autoscaler works, say), kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampled {
    pub at: Millis,
    /// What was sampled.
    pub of: String,
    pub value: serde_json::Value,
}

impl Eq for Sampled {}

/// A figure the test measured (the longest time without an ack, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub at: Millis,
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl Eq for Measured {}

/// One line of the history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Step(StepEvent),
    Fault(FaultEvent),
    Producer(Producer),
    Sent(Sent),
    PassStarted(PassStarted),
    Received(Received),
    Unrecognized(Unrecognized),
    PassEnded(PassEnded),
    Checked(Checked),
    Measured(Measured),
    Observed(Observed),
    Sampled(Sampled),
}

/// One test's history in the order it was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
    passes: u32,
    producers: u32,
    next_seq: HashMap<u32, u64>,
}

impl Event {
    /// When it happened (a send: when it was sent).
    pub fn at(&self) -> Millis {
        match self {
            Event::Step(event) => event.at,
            Event::Fault(event) => event.at,
            Event::Producer(event) => event.at,
            Event::Sent(event) => event.sent_at,
            Event::PassStarted(event) => event.at,
            Event::Received(event) => event.at,
            Event::Unrecognized(event) => event.at,
            Event::PassEnded(event) => event.at,
            Event::Checked(event) => event.at,
            Event::Measured(event) => event.at,
            Event::Observed(event) => event.at,
            Event::Sampled(event) => event.at,
        }
    }
}

impl History {
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn push(&mut self, event: Event) {
        match &event {
            Event::Sent(sent) => {
                let next = self.next_seq.entry(sent.producer).or_default();
                *next = (*next).max(sent.seq + 1);
            }
            Event::Producer(producer) => self.producers = self.producers.max(producer.producer),
            Event::PassStarted(PassStarted { pass, .. }) => self.passes = self.passes.max(*pass),
            _ => {}
        }
        self.events.push(event);
    }

    /// Starts recording a producer's sends to `topic`; returns its number.
    pub fn begin_producer(&mut self, topic: &str, acked_by: AckedBy) -> u32 {
        let producer = self.producers + 1;
        self.push(Event::Producer(Producer { producer, topic: topic.to_string(), acked_by, at: now() }));
        producer
    }

    /// Records a producer's sends in the order it issued them: the sequence
    /// number taken here is what the acknowledged offsets are checked against.
    pub fn record_send(&mut self, producer: u32, send: SendReport) {
        let seq = self.next_seq.get(&producer).copied().unwrap_or(0);
        let SendReport { id, sent_at, done_at, outcome } = send;
        self.push(Event::Sent(Sent { producer, seq, id, sent_at, done_at, outcome }));
    }

    /// Starts another read of `topic` from its beginning; returns its number.
    pub fn begin_pass(&mut self, topic: &str) -> u32 {
        let pass = self.passes + 1;
        self.push(Event::PassStarted(PassStarted { pass, topic: topic.to_string(), at: now() }));
        pass
    }

    /// A record read in `pass`, duplicates included; `text` is the id exactly
    /// as the record carried it.
    pub fn record_read(&mut self, pass: u32, text: &str, position: Position, at: Millis) {
        self.push(match MessageId::parse(text) {
            Some(id) => Event::Received(Received { pass, id, position, at }),
            None => Event::Unrecognized(Unrecognized { pass, raw: text.to_string(), position, at }),
        });
    }

    pub fn end_pass(&mut self, pass: u32, partitions: Vec<PartitionRead>) {
        self.push(Event::PassEnded(PassEnded { pass, at: now(), partitions }));
    }

    pub fn latest_pass(&self) -> Option<u32> {
        (self.passes > 0).then_some(self.passes)
    }

    pub fn producers(&self) -> impl Iterator<Item = &Producer> {
        self.events.iter().filter_map(|event| match event {
            Event::Producer(producer) => Some(producer),
            _ => None,
        })
    }

    pub fn sends(&self) -> impl Iterator<Item = &Sent> {
        self.events.iter().filter_map(|event| match event {
            Event::Sent(sent) => Some(sent),
            _ => None,
        })
    }

    pub fn reads(&self) -> impl Iterator<Item = &Received> {
        self.events.iter().filter_map(|event| match event {
            Event::Received(read) => Some(read),
            _ => None,
        })
    }

    pub fn unrecognized(&self) -> impl Iterator<Item = &Unrecognized> {
        self.events.iter().filter_map(|event| match event {
            Event::Unrecognized(read) => Some(read),
            _ => None,
        })
    }

    pub fn pass_started(&self, pass: u32) -> Option<&PassStarted> {
        self.events.iter().find_map(|event| match event {
            Event::PassStarted(started) if started.pass == pass => Some(started),
            _ => None,
        })
    }

    pub fn pass_ended(&self, pass: u32) -> Option<&PassEnded> {
        self.events.iter().find_map(|event| match event {
            Event::PassEnded(ended) if ended.pass == pass => Some(ended),
            _ => None,
        })
    }

    pub fn checks(&self) -> impl Iterator<Item = &Checked> {
        self.events.iter().filter_map(|event| match event {
            Event::Checked(checked) => Some(checked),
            _ => None,
        })
    }

    /// One event per line.
    pub fn write_jsonl(&self, path: &Path) -> Result<()> {
        let write = || -> Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = BufWriter::new(File::create(path)?);
            for event in &self.events {
                serde_json::to_writer(&mut out, event)?;
                out.write_all(b"\n")?;
            }
            Ok(out.flush()?)
        };
        write().with_context(|| format!("writing the history to {}", path.display()))
    }

    pub fn read_jsonl(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut history = Self::default();
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let event = serde_json::from_str(&line?).with_context(|| format!("{}:{}", path.display(), index + 1))?;
            history.push(event);
        }
        Ok(history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acked(partition: i32, offset: i64) -> SendOutcome {
        SendOutcome::Acked { position: Position { partition, offset: Offset::Sequence(offset) } }
    }

    fn send(n: u64, outcome: SendOutcome) -> SendReport {
        SendReport { id: MessageId::numbered(n), sent_at: 1_000 + n as i64, done_at: 1_100 + n as i64, outcome }
    }

    #[test]
    fn producers_passes_and_sequences_are_numbered_from_one_and_zero() {
        let mut history = History::default();
        let producer = history.begin_producer("t", AckedBy::Leader);
        history.record_send(producer, send(0, acked(0, 0)));
        history.record_send(producer, send(1, acked(0, 1)));
        assert_eq!(producer, 1);
        assert_eq!(history.sends().map(|sent| sent.seq).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(history.latest_pass(), None);
        assert_eq!(history.begin_pass("t"), 1);
        assert_eq!(history.begin_pass("t"), 2);
        assert_eq!(history.latest_pass(), Some(2));
        assert_eq!(history.begin_producer("t", AckedBy::Quorum), 2);
    }

    #[test]
    fn message_ids_are_parsed_only_from_their_exact_text() {
        assert_eq!(MessageId::parse("m-000123"), Some(MessageId::numbered(123)));
        for text in ["m-", "m-12a", " m-000123", "000123", ""] {
            assert_eq!(MessageId::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn pulsar_positions_order_by_ledger_entry_then_batch() {
        let pulsar = |ledger, entry, batch| Position { partition: 0, offset: Offset::Ledger { ledger, entry, batch } };
        assert!(pulsar(7, 9, 0) < pulsar(7, 9, 1) && pulsar(7, 9, 1) < pulsar(7, 10, -1));
        assert!(pulsar(7, 10, -1) < pulsar(8, 0, -1));
        assert_eq!(pulsar(7, 9, 1).to_string(), "p0@7:9:1");
    }

    #[test]
    fn a_partition_read_is_complete_once_it_reached_its_target() {
        let read = |target: Option<i64>, read: Option<i64>| PartitionRead {
            partition: 0,
            target: target.map(Offset::Sequence),
            readable: Some(Offset::Sequence(9)),
            read: read.map(Offset::Sequence),
        };
        assert!(read(Some(5), Some(5)).complete());
        assert!(!read(Some(5), Some(4)).complete());
        assert!(!read(Some(0), None).complete());
        assert!(read(None, None).complete(), "an empty partition has nothing to reach");
        assert!(read(Some(5), Some(4)).beyond_readable(Offset::Sequence(10)));
        assert!(!read(Some(5), Some(4)).beyond_readable(Offset::Sequence(9)));
        assert_eq!(read(Some(5), Some(4)).to_string(), "p0 read to 4 of 5, readable to 9");
    }

    #[test]
    fn every_kind_of_event_round_trips_through_json_lines() {
        let mut history = History::default();
        history.push(Event::Step(StepEvent {
            index: 1,
            step: "produce".into(),
            at: 5,
            phase: Phase::Started,
            error: None,
        }));
        history.push(Event::Fault(FaultEvent {
            fault: "node w stopped".into(),
            at: 6,
            phase: FaultPhase::UndoFailed,
            error: Some("no".into()),
        }));
        let producer = history.begin_producer("t", AckedBy::Quorum);
        history.record_send(producer, send(0, acked(0, 0)));
        let ledger = Position { partition: 0, offset: Offset::Ledger { ledger: u64::MAX, entry: 3, batch: -1 } };
        history.record_send(producer, send(1, SendOutcome::Acked { position: ledger }));
        history.record_send(producer, send(2, SendOutcome::Unknown { error: "timeout".into() }));
        history.record_send(producer, send(3, SendOutcome::Failed { error: "rejected".into() }));
        let pass = history.begin_pass("t");
        history.record_read(pass, "m-000000", Position { partition: 0, offset: Offset::Sequence(0) }, 7);
        history.record_read(pass, "not an id", Position { partition: 0, offset: Offset::Sequence(1) }, 8);
        let partitions = vec![PartitionRead {
            partition: 0,
            target: Some(Offset::Sequence(1)),
            readable: Some(Offset::Sequence(1)),
            read: Some(Offset::Sequence(1)),
        }];
        history.end_pass(pass, partitions);
        history.push(Event::Checked(Checked {
            at: 9,
            pass,
            duplicates_allowed: false,
            loss_is_finding: true,
            verdict: "ok".into(),
        }));
        history.push(Event::Measured(Measured { at: 10, name: "gap".into(), value: 1.5, unit: "s".into() }));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/history.jsonl");
        history.write_jsonl(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), history.events().len());
        assert!(text.contains(r#"{"event":"sent","producer":1,"seq":0,"id":"m-000000","sent_at":1000"#), "{text}");
        let mut restored = History::read_jsonl(&path).unwrap();
        assert_eq!(restored, history);
        restored.record_send(producer, send(4, acked(0, 9)));
        assert!(matches!(restored.events().last(), Some(Event::Sent(Sent { seq: 4, .. }))));
        assert_eq!(restored.begin_pass("t"), 2);
    }

    #[test]
    fn a_malformed_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let mut history = History::default();
        history.begin_pass("t");
        history.write_jsonl(&path).unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"event\":\"sent\"}\n");
        std::fs::write(&path, text).unwrap();
        let error = History::read_jsonl(&path).unwrap_err();
        assert!(format!("{error:#}").contains("history.jsonl:2"), "{error:#}");
    }

    #[test]
    fn a_history_can_move_to_another_task() {
        fn assert_send<T: std::marker::Send>() {}
        assert_send::<History>();
    }
}
