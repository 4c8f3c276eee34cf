//! Delivery through a log (Kafka, Pulsar): a checker that finds lost,
//! unreadable, duplicated, reordered and phantom messages in a test's
//! history. It knows only ids and positions, so that every system is judged
//! by the same oracle. Loss is judged against one read pass (the latest, or
//! the one a check names): a message read in an earlier pass and missing from
//! the judged one was lost in between.

use crate::history::{AckedBy, History, MessageId, PartitionRead, Position, Received, SendOutcome, Sent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// The defaults are the strictest: every acknowledged message read in the
/// latest pass, once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expectations {
    /// The read pass to judge loss against; `None` for the latest.
    pub pass: Option<u32>,
    /// At-least-once delivery: reading a message twice is listed as allowed.
    pub duplicates_allowed: bool,
    /// The system as shipped is known to lose acknowledged messages under
    /// this fault: loss is reported as a finding, not a failure, and so are
    /// the marks a truncated log leaves on acknowledgements (an offset acked
    /// twice, a later send acked below an earlier one).
    pub loss_is_finding: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyKind {
    /// Nothing was acknowledged, so the history proves nothing.
    Vacuous,
    /// No read pass to judge: nothing was read back.
    Unread,
    /// Acknowledged, and not in the judged pass although the log holds (or
    /// once served, or a quorum acknowledged) its position.
    Lost,
    /// Acknowledged by the leader alone and never readable before the read
    /// gave up: the ack was not replicated.
    Unreadable,
    /// Read a message whose send definitely failed.
    AbortedRead,
    Phantom,
    /// A position held two ids, or an id was read away from where it was acked.
    InconsistentPosition,
    /// Within a partition and pass, a read below an earlier read.
    ReorderedRead,
    /// Within a partition, a producer's later send acked below an earlier one.
    ReorderedAck,
    /// Read more than once within one pass.
    Duplicated,
    IndeterminateUnseen,
    IndeterminateRecovered,
}

impl AnomalyKind {
    fn severity(self, expectations: &Expectations) -> Severity {
        match self {
            Self::Lost | Self::Unreadable | Self::InconsistentPosition | Self::ReorderedAck
                if expectations.loss_is_finding =>
            {
                Severity::Finding
            }
            Self::Duplicated if expectations.duplicates_allowed => Severity::Allowed,
            Self::IndeterminateUnseen | Self::IndeterminateRecovered => Severity::Allowed,
            _ => Severity::Failure,
        }
    }

    /// What happened, naming the kind, for `n` cases.
    fn phrase(self, n: usize) -> String {
        match self {
            Self::Vacuous => "vacuous: no message was acknowledged, so nothing was checked".to_string(),
            Self::Unread => "unread: no read pass to judge".to_string(),
            Self::Lost => format!("lost {}", counted(n, "acknowledged message")),
            Self::Unreadable => {
                format!("acknowledged, never became readable: {}", counted(n, "message"))
            }
            Self::AbortedRead => format!("aborted read: read {} whose send failed", counted(n, "message")),
            Self::Phantom => format!("phantom: read {} never sent", counted(n, "message")),
            Self::InconsistentPosition => format!("inconsistent position: {}", counted(n, "case")),
            Self::ReorderedRead => format!("reordered {} within a partition", counted(n, "read")),
            Self::ReorderedAck => format!("reordered {} against send order", counted(n, "ack")),
            Self::Duplicated => format!("duplicated {}", counted(n, "message")),
            Self::IndeterminateUnseen => format!("indeterminate: {} never read", counted(n, "send")),
            Self::IndeterminateRecovered => format!("recovered indeterminate: {} read back", counted(n, "send")),
        }
    }
}

fn counted(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Failure,
    /// Does not fail the test under its expectations, but is reported as
    /// prominently as a failure would be.
    Finding,
    /// Allowed by the expectations; listed for the record.
    Allowed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub severity: Severity,
    /// One entry per case, naming its ids and positions, in history order.
    pub cases: Vec<String>,
    /// What the cases have in common (how far the read got), if anything.
    pub note: Option<String>,
}

/// How many cases a line shows; the rest are counted.
const LISTED_CASES: usize = 20;

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.cases[..self.cases.len().min(LISTED_CASES)].join(", ");
        write!(f, "{}: {shown}", self.kind.phrase(self.cases.len()))?;
        if let Some(more) = self.cases.len().checked_sub(LISTED_CASES).filter(|more| *more > 0) {
            write!(f, " and {more} more")?;
        }
        match &self.note {
            Some(note) => write!(f, " ({note})"),
            None => Ok(()),
        }
    }
}

/// Sends are counted per distinct id: an id sent twice counts once, by the
/// best outcome of its sends (acked over unknown over failed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub attempted: usize,
    pub acked: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Of `unknown`, those read back: they were written after all.
    pub unknown_recovered: usize,
    /// The pass judged, and how many there were.
    pub pass: u32,
    pub passes: u32,
    /// Records read in the judged pass, duplicates and unrecognized text included.
    pub received_total: usize,
    pub received_distinct: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Passed,
    /// The test passes, and the verdict's text belongs in its output: a
    /// finding nobody reads is a finding lost.
    PassedWithFindings,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub counts: Counts,
    pub anomalies: Vec<Anomaly>,
}

impl Verdict {
    pub fn judgement(&self) -> Judgement {
        if self.with(Severity::Failure).next().is_some() {
            Judgement::Failed
        } else if self.with(Severity::Finding).next().is_some() {
            Judgement::PassedWithFindings
        } else {
            Judgement::Passed
        }
    }

    /// Passed, possibly with findings.
    pub fn is_ok(&self) -> bool {
        self.judgement() != Judgement::Failed
    }

    pub fn anomaly(&self, kind: AnomalyKind) -> Option<&Anomaly> {
        self.anomalies.iter().find(|anomaly| anomaly.kind == kind)
    }

    /// One line of counts, e.g. "10000 sent, 10000 acked, 10000 received once, in order".
    pub fn summary(&self) -> String {
        let counts = &self.counts;
        let mut parts = vec![format!("{} sent", counts.attempted), format!("{} acked", counts.acked)];
        if counts.failed > 0 {
            parts.push(format!("{} failed", counts.failed));
        }
        if counts.unknown > 0 {
            parts.push(format!("{} indeterminate ({} read back)", counts.unknown, counts.unknown_recovered));
        }
        for kind in [AnomalyKind::Lost, AnomalyKind::Unreadable] {
            if let Some(anomaly) = self.anomaly(kind) {
                let what = if kind == AnomalyKind::Lost { "lost" } else { "never readable" };
                parts.push(format!("{} {what}", anomaly.cases.len()));
            }
        }
        let in_pass =
            if counts.passes > 1 { format!(" in pass {} of {}", counts.pass, counts.passes) } else { String::new() };
        parts.push(match (counts.received_total, counts.received_distinct) {
            (total, distinct) if total == distinct => format!("{distinct} received once{in_pass}"),
            (total, distinct) => format!("{total} received ({distinct} distinct){in_pass}"),
        });
        let reordered = [AnomalyKind::ReorderedRead, AnomalyKind::ReorderedAck];
        let in_order = reordered.iter().all(|kind| self.anomaly(*kind).is_none());
        parts.push(if in_order { "in order" } else { "out of order" }.to_string());
        parts.join(", ")
    }

    /// The first line, which a JUnit message shows on its own.
    fn headline(&self) -> String {
        let phrases = |severity| {
            self.with(severity).map(|anomaly| anomaly.kind.phrase(anomaly.cases.len())).collect::<Vec<_>>().join("; ")
        };
        match self.judgement() {
            Judgement::Failed => phrases(Severity::Failure),
            Judgement::PassedWithFindings => format!("passed with findings: {}", phrases(Severity::Finding)),
            Judgement::Passed => self.summary(),
        }
    }

    fn with(&self, severity: Severity) -> impl Iterator<Item = &Anomaly> {
        self.anomalies.iter().filter(move |anomaly| anomaly.severity == severity)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if self.judgement() != Judgement::Passed {
            write!(f, "\n{}", self.summary())?;
        }
        let sections = [
            (Severity::Failure, "failures:"),
            (Severity::Finding, "findings, which this test's expectations do not fail on:"),
            (Severity::Allowed, "allowed by this test's expectations:"),
        ];
        for (severity, heading) in sections {
            if self.with(severity).next().is_some() {
                write!(f, "\n{heading}")?;
            }
            for anomaly in self.with(severity) {
                write!(f, "\n  {anomaly}")?;
            }
        }
        Ok(())
    }
}

pub fn check(history: &History, expectations: &Expectations) -> Verdict {
    let scope = Scope::of(history, expectations.pass);
    let index = Index::of(&scope);
    let counts = index.counts(&scope);
    let (lost, unreadable) = lost_or_unreadable(&scope, &index);
    let found = [
        (AnomalyKind::Vacuous, vacuous(&counts), None),
        (AnomalyKind::Unread, unread(&scope), None),
        (AnomalyKind::Lost, lost, None),
        (AnomalyKind::Unreadable, unreadable, scope.incomplete_partitions()),
        (AnomalyKind::AbortedRead, aborted_reads(&index), None),
        (AnomalyKind::Phantom, phantoms(&scope, &index), None),
        (AnomalyKind::InconsistentPosition, inconsistent_positions(&scope, &index), None),
        (AnomalyKind::ReorderedRead, reordered_reads(&scope), None),
        (AnomalyKind::ReorderedAck, reordered_acks(&scope), None),
        (AnomalyKind::Duplicated, duplicated(&scope, &index), None),
        (AnomalyKind::IndeterminateUnseen, indeterminate(&index, false), None),
        (AnomalyKind::IndeterminateRecovered, indeterminate(&index, true), None),
    ];
    let anomalies = found
        .into_iter()
        .filter(|(_, cases, _)| !cases.is_empty())
        .map(|(kind, cases, note)| Anomaly { kind, severity: kind.severity(expectations), cases, note })
        .collect();
    Verdict { counts, anomalies }
}

/// The part of a history a check judges: the sends to the judged pass's
/// topic and every read of that topic, the judged pass among them.
struct Scope<'h> {
    judged: Option<u32>,
    passes: u32,
    sends: Vec<(&'h Sent, AckedBy)>,
    reads: Vec<&'h Received>,
    unrecognized: Vec<&'h crate::history::Unrecognized>,
    /// How far the judged pass got, per partition (none: read in full).
    partitions: BTreeMap<i32, &'h PartitionRead>,
}

impl<'h> Scope<'h> {
    fn of(history: &'h History, pass: Option<u32>) -> Self {
        let judged = pass.or(history.latest_pass());
        let topic = judged.and_then(|pass| history.pass_started(pass)).map(|started| started.topic.as_str());
        let on_topic = |candidate: &str| topic.is_none_or(|topic| topic == candidate);
        let producers: HashMap<u32, (&str, AckedBy)> =
            history.producers().map(|p| (p.producer, (p.topic.as_str(), p.acked_by))).collect();
        let passes_of_topic: HashSet<u32> = history
            .events()
            .iter()
            .filter_map(|event| match event {
                crate::history::Event::PassStarted(started) if on_topic(&started.topic) => Some(started.pass),
                _ => None,
            })
            .collect();
        let sends = history
            .sends()
            .filter_map(|sent| match producers.get(&sent.producer) {
                Some((topic, acked_by)) => on_topic(topic).then_some((sent, *acked_by)),
                None => Some((sent, AckedBy::Quorum)),
            })
            .collect();
        let partitions = judged
            .and_then(|pass| history.pass_ended(pass))
            .map(|ended| ended.partitions.iter().map(|read| (read.partition, read)).collect())
            .unwrap_or_default();
        Scope {
            judged,
            passes: passes_of_topic.len() as u32,
            sends,
            reads: history.reads().filter(|read| passes_of_topic.contains(&read.pass)).collect(),
            unrecognized: history.unrecognized().filter(|read| passes_of_topic.contains(&read.pass)).collect(),
            partitions,
        }
    }

    fn in_judged(&self, pass: u32) -> bool {
        self.judged == Some(pass)
    }

    /// How far the judged pass got where it did not get everywhere it had to.
    fn incomplete_partitions(&self) -> Option<String> {
        let incomplete: Vec<String> =
            self.partitions.values().filter(|read| !read.complete()).map(ToString::to_string).collect();
        (!incomplete.is_empty()).then(|| format!("the read ended with {}", incomplete.join("; ")))
    }
}

/// What an id's sends achieved at best.
#[derive(Debug, Clone, Copy)]
enum Fate<'h> {
    Acked(&'h Position, AckedBy),
    Unknown,
    Failed,
}

impl<'h> Fate<'h> {
    fn of(outcome: &'h SendOutcome, acked_by: AckedBy) -> Self {
        match outcome {
            SendOutcome::Acked { position } => Self::Acked(position, acked_by),
            SendOutcome::Unknown { .. } => Self::Unknown,
            SendOutcome::Failed { .. } => Self::Failed,
        }
    }

    fn better(self, other: Self) -> Self {
        match (self, other) {
            (Self::Acked(..), _) => self,
            (_, Self::Acked(..)) => other,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            _ => Self::Failed,
        }
    }
}

/// The scope looked up by id.
#[derive(Default)]
struct Index<'h> {
    /// Distinct ids in the order first sent.
    sent: Vec<&'h MessageId>,
    fate: HashMap<&'h MessageId, Fate<'h>>,
    /// Distinct ids in the order first read, in any pass.
    read: Vec<&'h MessageId>,
    /// Where each id was read, in any pass, in read order, with the pass.
    read_at: HashMap<&'h MessageId, Vec<(u32, &'h Position)>>,
}

impl<'h> Index<'h> {
    fn of(scope: &Scope<'h>) -> Self {
        let mut index = Self::default();
        for (sent, acked_by) in &scope.sends {
            let fate = Fate::of(&sent.outcome, *acked_by);
            let known = index.fate.entry(&sent.id).or_insert_with(|| {
                index.sent.push(&sent.id);
                fate
            });
            *known = known.better(fate);
        }
        for read in &scope.reads {
            let positions = index.read_at.entry(&read.id).or_default();
            if positions.is_empty() {
                index.read.push(&read.id);
            }
            positions.push((read.pass, &read.position));
        }
        index
    }

    fn sent(&self) -> impl Iterator<Item = (&'h MessageId, Fate<'h>)> + '_ {
        self.sent.iter().map(|id| (*id, self.fate[id]))
    }

    fn acked(&self) -> impl Iterator<Item = (&'h MessageId, &'h Position, AckedBy)> + '_ {
        self.sent().filter_map(|(id, fate)| match fate {
            Fate::Acked(position, acked_by) => Some((id, position, acked_by)),
            _ => None,
        })
    }

    fn was_read(&self, id: &MessageId) -> bool {
        self.read_at.contains_key(id)
    }

    fn reads_of(&self, id: &MessageId) -> &[(u32, &'h Position)] {
        self.read_at.get(id).map_or(&[], Vec::as_slice)
    }

    /// The id with where it was first read.
    fn as_read(&self, id: &MessageId) -> String {
        format!("{id} ({})", self.read_at[id][0].1)
    }

    fn counts(&self, scope: &Scope) -> Counts {
        let with_fate = |wanted: fn(&Fate) -> bool| self.sent().filter(|(_, fate)| wanted(fate)).count();
        let unknown = |fate: &Fate| matches!(fate, Fate::Unknown);
        let judged: Vec<&Received> = scope.reads.iter().copied().filter(|read| scope.in_judged(read.pass)).collect();
        let distinct: HashSet<&MessageId> = judged.iter().map(|read| &read.id).collect();
        let unrecognized = scope.unrecognized.iter().filter(|read| scope.in_judged(read.pass)).count();
        Counts {
            attempted: self.sent.len(),
            acked: with_fate(|fate| matches!(fate, Fate::Acked(..))),
            failed: with_fate(|fate| matches!(fate, Fate::Failed)),
            unknown: with_fate(unknown),
            unknown_recovered: self.sent().filter(|(id, fate)| unknown(fate) && self.was_read(id)).count(),
            pass: scope.judged.unwrap_or(0),
            passes: scope.passes,
            received_total: judged.len() + unrecognized,
            received_distinct: distinct.len(),
        }
    }
}

fn vacuous(counts: &Counts) -> Vec<String> {
    if counts.acked > 0 {
        return Vec::new();
    }
    vec![format!("{} sent, {} failed, {} indeterminate", counts.attempted, counts.failed, counts.unknown)]
}

fn unread(scope: &Scope) -> Vec<String> {
    match scope.judged {
        None => vec!["the test never read the log".to_string()],
        Some(_) => Vec::new(),
    }
}

/// Acknowledged ids missing from the judged pass. One read in an earlier
/// pass, or at a position the judged pass read past, or acknowledged by a
/// quorum, is lost; one acknowledged by the leader alone beyond what the log
/// ever offered for reading never became readable.
fn lost_or_unreadable(scope: &Scope, index: &Index) -> (Vec<String>, Vec<String>) {
    let (mut lost, mut unreadable) = (Vec::new(), Vec::new());
    let Some(judged) = scope.judged else { return (lost, unreadable) };
    for (id, position, acked_by) in index.acked() {
        let reads = index.reads_of(id);
        if reads.iter().any(|(pass, _)| *pass == judged) {
            continue;
        }
        if let Some((pass, at)) = reads.first() {
            lost.push(format!("{id} ({position}): read in pass {pass} at {at}, absent from pass {judged}"));
            continue;
        }
        let partition = scope.partitions.get(&position.partition);
        let never_offered = partition.is_some_and(|read| !read.complete() && read.beyond_readable(position.offset));
        match (never_offered, acked_by) {
            (true, AckedBy::Leader) => unreadable.push(format!("{id} ({position})")),
            (true, AckedBy::Quorum) => {
                lost.push(format!("{id} ({position}): acknowledged by every in-sync replica, never readable"))
            }
            (false, _) => lost.push(format!("{id} ({position})")),
        }
    }
    (lost, unreadable)
}

fn aborted_reads(index: &Index) -> Vec<String> {
    index
        .sent()
        .filter(|(id, fate)| matches!(fate, Fate::Failed) && index.was_read(id))
        .map(|(id, _)| index.as_read(id))
        .collect()
}

fn indeterminate(index: &Index, read_back: bool) -> Vec<String> {
    index
        .sent()
        .filter(|(id, fate)| matches!(fate, Fate::Unknown) && index.was_read(id) == read_back)
        .map(|(id, _)| if read_back { index.as_read(id) } else { id.to_string() })
        .collect()
}

fn phantoms(scope: &Scope, index: &Index) -> Vec<String> {
    let never_sent = index.read.iter().filter(|id| !index.fate.contains_key(*id)).map(|id| index.as_read(id));
    let unrecognized =
        scope.unrecognized.iter().map(|read| format!("{:?} ({})", abbreviated(&read.raw), read.position));
    never_sent.chain(unrecognized).collect()
}

fn abbreviated(raw: &str) -> String {
    const SHOWN: usize = 40;
    match raw.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_string(),
    }
}

/// A position holding two ids, from acks or reads of any pass; or an id
/// read, but never where it was acked. An id read both there and elsewhere
/// was written twice, which `duplicated` reports.
fn inconsistent_positions(scope: &Scope, index: &Index) -> Vec<String> {
    let mut holders: BTreeMap<&Position, Vec<&MessageId>> = BTreeMap::new();
    let acks = index.acked().map(|(id, position, _)| (id, position));
    let reads = scope.reads.iter().map(|read| (&read.id, &read.position));
    for (id, position) in acks.chain(reads) {
        let ids = holders.entry(position).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let shared = holders.into_iter().filter(|(_, ids)| ids.len() > 1).map(|(position, ids)| {
        format!("{position} holds {}", ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "))
    });
    let moved = index.acked().filter_map(|(id, acked_at, _)| {
        let read_at = index.read_at.get(id)?;
        (!read_at.iter().any(|(_, at)| *at == acked_at))
            .then(|| format!("{id} acked at {acked_at}, read at {}", read_at[0].1))
    });
    shared.chain(moved).collect()
}

/// Within one pass and partition, a read below the highest position read so
/// far. Reading a position again is a redelivery, which `duplicated` reports.
fn reordered_reads(scope: &Scope) -> Vec<String> {
    let mut highest: HashMap<(u32, i32), &Received> = HashMap::new();
    let mut seen: HashSet<(u32, &Position)> = HashSet::new();
    let mut cases = Vec::new();
    for read in &scope.reads {
        let first_time = seen.insert((read.pass, &read.position));
        let lane = (read.pass, read.position.partition);
        match highest.get(&lane) {
            Some(top) if read.position <= top.position => {
                if first_time {
                    cases.push(format!("{} ({}) read after {} ({})", read.id, read.position, top.id, top.position));
                }
            }
            _ => {
                highest.insert(lane, read);
            }
        }
    }
    cases
}

/// Within one producer and partition, an ack below the highest ack of its
/// earlier sends: the log does not hold the messages in the order sent.
fn reordered_acks(scope: &Scope) -> Vec<String> {
    let mut acked: Vec<(&Sent, &Position)> = scope
        .sends
        .iter()
        .filter_map(|(sent, _)| match &sent.outcome {
            SendOutcome::Acked { position } => Some((*sent, position)),
            _ => None,
        })
        .collect();
    acked.sort_by_key(|(sent, _)| (sent.producer, sent.seq));
    let mut highest: HashMap<(u32, i32), (&Sent, &Position)> = HashMap::new();
    let mut cases = Vec::new();
    for (sent, position) in acked {
        let lane = (sent.producer, position.partition);
        match highest.get(&lane) {
            Some((top, top_position)) if position < *top_position => {
                let (later, earlier) = (&sent.id, &top.id);
                cases.push(format!("{later} sent after {earlier} but acked below it ({position} < {top_position})"))
            }
            _ => {
                highest.insert(lane, (sent, position));
            }
        }
    }
    cases
}

/// Read more than once within a pass; the count is the most in any pass.
fn duplicated(scope: &Scope, index: &Index) -> Vec<String> {
    let mut per_pass: HashMap<(u32, &MessageId), usize> = HashMap::new();
    for read in &scope.reads {
        *per_pass.entry((read.pass, &read.id)).or_default() += 1;
    }
    let mut most: HashMap<&MessageId, usize> = HashMap::new();
    for ((_, id), times) in per_pass {
        let known = most.entry(id).or_default();
        *known = (*known).max(times);
    }
    index
        .read
        .iter()
        .filter_map(|id| {
            let times = most[id];
            (times > 1).then(|| format!("{id} (read {times} times)"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
