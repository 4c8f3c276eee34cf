use super::*;
use crate::history::{Offset, PartitionRead, SendReport};

const TOPIC: &str = "t";

fn at(partition: i32, offset: i64) -> Position {
    Position { partition, offset: Offset::Sequence(offset) }
}

fn id(n: u64) -> MessageId {
    MessageId::numbered(n)
}

fn acked(partition: i32, offset: i64) -> SendOutcome {
    SendOutcome::Acked { position: at(partition, offset) }
}

fn send(history: &mut History, producer: u32, n: u64, outcome: SendOutcome) {
    history.record_send(producer, SendReport { id: id(n), sent_at: n as i64, done_at: n as i64 + 1, outcome });
}

/// A read into the latest pass (starting one if there is none).
fn read(history: &mut History, n: u64, partition: i32, offset: i64) {
    let pass = history.latest_pass().unwrap_or_else(|| history.begin_pass(TOPIC));
    history.record_read(pass, &id(n).to_string(), at(partition, offset), 0);
}

/// Messages 0..n acked at offsets 0..n of partition 0 by producer 1, without reads.
fn sent(n: u64) -> History {
    let mut history = History::default();
    let producer = history.begin_producer(TOPIC, AckedBy::Quorum);
    for offset in 0..n {
        send(&mut history, producer, offset, acked(0, offset as i64));
    }
    history
}

/// Messages 0..n sent, acked and read back once, in order, in one pass.
fn round_trip(n: u64) -> History {
    let mut history = sent(n);
    history.begin_pass(TOPIC);
    for offset in 0..n {
        read(&mut history, offset, 0, offset as i64);
    }
    history
}

fn strict(history: &History) -> Verdict {
    check(history, &Expectations::default())
}

fn cases(verdict: &Verdict, kind: AnomalyKind) -> Vec<String> {
    verdict.anomaly(kind).map(|anomaly| anomaly.cases.clone()).unwrap_or_default()
}

fn kinds(verdict: &Verdict) -> Vec<AnomalyKind> {
    verdict.anomalies.iter().map(|anomaly| anomaly.kind).collect()
}

fn finding() -> Expectations {
    Expectations { loss_is_finding: true, ..Expectations::default() }
}

#[test]
fn a_clean_round_trip_passes_with_a_one_line_summary() {
    let verdict = strict(&round_trip(5));
    assert_eq!(verdict.judgement(), Judgement::Passed, "{verdict}");
    assert!(verdict.anomalies.is_empty());
    assert_eq!(verdict.to_string(), "5 sent, 5 acked, 5 received once, in order");
}

#[test]
fn an_acked_message_never_read_is_lost_and_named() {
    let mut history = sent(4);
    for n in [0, 1, 3] {
        read(&mut history, n, 0, n as i64);
    }
    let verdict = strict(&history);
    assert!(!verdict.is_ok());
    assert_eq!(kinds(&verdict), [AnomalyKind::Lost]);
    let text = verdict.to_string();
    assert!(text.starts_with("lost 1 acknowledged message\n"), "{text}");
    assert!(text.contains("\n  lost 1 acknowledged message: m-000002 (p0@2)"), "{text}");
}

#[test]
fn a_message_read_in_one_pass_and_missing_from_the_next_is_lost_naming_both() {
    let mut history = round_trip(3);
    let second = history.begin_pass(TOPIC);
    for n in [0, 2] {
        history.record_read(second, &id(n).to_string(), at(0, n as i64), 0);
    }
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::Lost]);
    assert_eq!(cases(&verdict, AnomalyKind::Lost), ["m-000001 (p0@1): read in pass 1 at p0@1, absent from pass 2"]);
    assert!(verdict.summary().contains("2 received once in pass 2 of 2"), "{}", verdict.summary());
}

#[test]
fn a_second_pass_that_reads_nothing_loses_everything() {
    let mut history = round_trip(2);
    history.begin_pass(TOPIC);
    let verdict = strict(&history);
    assert_eq!(cases(&verdict, AnomalyKind::Lost).len(), 2, "{verdict}");
}

#[test]
fn a_check_may_name_the_pass_it_judges() {
    let mut history = round_trip(2);
    history.begin_pass(TOPIC);
    let first = check(&history, &Expectations { pass: Some(1), ..Expectations::default() });
    assert_eq!(first.judgement(), Judgement::Passed, "{first}");
}

#[test]
fn without_any_read_there_is_nothing_to_judge() {
    let verdict = strict(&sent(2));
    assert_eq!(kinds(&verdict), [AnomalyKind::Unread]);
    assert!(verdict.to_string().starts_with("unread: no read pass to judge"), "{verdict}");
}

fn incomplete_read(acked_by: AckedBy) -> History {
    let mut history = History::default();
    let producer = history.begin_producer(TOPIC, acked_by);
    for offset in 0..4 {
        send(&mut history, producer, offset, acked(0, offset as i64));
    }
    let pass = history.begin_pass(TOPIC);
    for n in 0..2 {
        history.record_read(pass, &id(n).to_string(), at(0, n as i64), 0);
    }
    let partition = PartitionRead {
        partition: 0,
        target: Some(Offset::Sequence(3)),
        readable: Some(Offset::Sequence(1)),
        read: Some(Offset::Sequence(1)),
    };
    history.end_pass(pass, vec![partition]);
    history
}

#[test]
fn a_leader_only_ack_never_offered_for_reading_is_unreadable_not_lost() {
    let verdict = strict(&incomplete_read(AckedBy::Leader));
    assert_eq!(kinds(&verdict), [AnomalyKind::Unreadable]);
    let text = verdict.to_string();
    assert!(
        text.contains(
            "acknowledged, never became readable: 2 messages: m-000002 (p0@2), m-000003 (p0@3) \
             (the read ended with p0 read to 1 of 3, readable to 1)"
        ),
        "{text}"
    );
    assert_eq!(check(&incomplete_read(AckedBy::Leader), &finding()).judgement(), Judgement::PassedWithFindings);
}

#[test]
fn a_quorum_ack_never_offered_for_reading_is_lost() {
    let verdict = strict(&incomplete_read(AckedBy::Quorum));
    assert_eq!(kinds(&verdict), [AnomalyKind::Lost]);
    assert_eq!(
        cases(&verdict, AnomalyKind::Lost)[0],
        "m-000002 (p0@2): acknowledged by every in-sync replica, never readable"
    );
}

#[test]
fn sends_to_other_topics_are_not_judged_by_a_pass_of_this_one() {
    let mut history = round_trip(2);
    let other = history.begin_producer("other", AckedBy::Quorum);
    send(&mut history, other, 9, acked(0, 0));
    let verdict = strict(&history);
    assert!(verdict.anomalies.is_empty(), "{verdict}");
    assert_eq!(verdict.counts.attempted, 2);
}

#[test]
fn loss_as_a_finding_passes_but_leads_the_text() {
    let mut history = sent(2);
    history.begin_pass(TOPIC);
    let verdict = check(&history, &finding());
    assert_eq!(AnomalyKind::ReorderedAck.severity(&finding()), Severity::Finding);
    assert_eq!(AnomalyKind::ReorderedRead.severity(&finding()), Severity::Failure);
    assert!(verdict.is_ok());
    assert_eq!(verdict.judgement(), Judgement::PassedWithFindings);
    let text = verdict.to_string();
    assert!(text.starts_with("passed with findings: lost 2 acknowledged messages\n"), "{text}");
    assert!(text.contains("findings, which this test's expectations do not fail on:\n  lost 2"), "{text}");
    assert!(text.contains("m-000000 (p0@0), m-000001 (p0@1)"), "{text}");
}

#[test]
fn duplicates_fail_when_forbidden() {
    let mut history = round_trip(3);
    read(&mut history, 1, 0, 1);
    let verdict = strict(&history);
    assert_eq!(verdict.judgement(), Judgement::Failed);
    assert_eq!(cases(&verdict, AnomalyKind::Duplicated), ["m-000001 (read 2 times)"]);
    assert!(verdict.to_string().contains("duplicated 1 message: m-000001 (read 2 times)"), "{verdict}");
}

#[test]
fn duplicates_are_listed_but_pass_when_allowed() {
    let mut history = round_trip(3);
    read(&mut history, 1, 0, 1);
    read(&mut history, 1, 0, 1);
    let verdict = check(&history, &Expectations { duplicates_allowed: true, ..Expectations::default() });
    assert_eq!(verdict.judgement(), Judgement::Passed, "{verdict}");
    let text = verdict.to_string();
    assert!(text.contains("allowed by this test's expectations:\n  duplicated 1 message: m-000001 (read 3 times)"));
    assert!(text.starts_with("3 sent, 3 acked, 5 received (3 distinct), in order"), "{text}");
}

#[test]
fn a_rewind_is_a_duplicate_not_a_reordering() {
    let mut history = round_trip(3);
    read(&mut history, 1, 0, 1);
    read(&mut history, 2, 0, 2);
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::Duplicated]);
    assert_eq!(cases(&verdict, AnomalyKind::Duplicated), ["m-000001 (read 2 times)", "m-000002 (read 2 times)"]);
}

#[test]
fn a_read_below_an_earlier_read_in_its_partition_is_reordered() {
    let mut history = sent(3);
    send(&mut history, 1, 9, acked(1, 0));
    for (n, partition, offset) in [(0, 0, 0), (2, 0, 2), (9, 1, 0), (1, 0, 1)] {
        read(&mut history, n, partition, offset);
    }
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::ReorderedRead]);
    assert_eq!(cases(&verdict, AnomalyKind::ReorderedRead), ["m-000001 (p0@1) read after m-000002 (p0@2)"]);
    assert!(verdict.to_string().contains("reordered 1 read within a partition: m-000001"), "{verdict}");
}

#[test]
fn a_later_send_acked_below_an_earlier_one_is_reordered() {
    let mut history = History::default();
    let first = history.begin_producer(TOPIC, AckedBy::Quorum);
    send(&mut history, first, 0, acked(0, 0));
    send(&mut history, first, 1, acked(0, 2));
    send(&mut history, first, 2, acked(0, 1));
    // Other partitions and producers keep their own order.
    send(&mut history, first, 3, acked(1, 0));
    let second = history.begin_producer(TOPIC, AckedBy::Quorum);
    send(&mut history, second, 4, acked(0, 3));
    for (n, partition, offset) in [(0, 0, 0), (2, 0, 1), (1, 0, 2), (4, 0, 3), (3, 1, 0)] {
        read(&mut history, n, partition, offset);
    }
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::ReorderedAck]);
    assert_eq!(
        cases(&verdict, AnomalyKind::ReorderedAck),
        ["m-000002 sent after m-000001 but acked below it (p0@1 < p0@2)"]
    );
    assert!(verdict.to_string().contains("reordered 1 ack against send order"), "{verdict}");
}

#[test]
fn reading_again_in_a_new_pass_is_neither_duplicate_nor_reordered() {
    let mut history = round_trip(3);
    history.begin_pass(TOPIC);
    for n in 0..3 {
        read(&mut history, n, 0, n as i64);
    }
    let verdict = strict(&history);
    assert!(verdict.anomalies.is_empty(), "{verdict}");
    assert_eq!((verdict.counts.received_total, verdict.counts.pass, verdict.counts.passes), (3, 2, 2));
}

#[test]
fn messages_never_sent_and_unrecognized_text_are_phantoms() {
    let mut history = round_trip(2);
    read(&mut history, 77, 0, 2);
    history.record_read(1, "m-00x003", at(0, 3), 0);
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::Phantom]);
    assert_eq!(cases(&verdict, AnomalyKind::Phantom), ["m-000077 (p0@2)", r#""m-00x003" (p0@3)"#]);
    assert!(verdict.to_string().contains("phantom: read 2 messages never sent"), "{verdict}");
}

#[test]
fn reading_a_definitely_failed_send_is_an_aborted_read() {
    let mut history = round_trip(2);
    send(&mut history, 1, 2, SendOutcome::Failed { error: "record too large".into() });
    read(&mut history, 2, 0, 2);
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::AbortedRead]);
    assert_eq!(cases(&verdict, AnomalyKind::AbortedRead), ["m-000002 (p0@2)"]);
    assert!(verdict.to_string().contains("aborted read: read 1 message whose send failed"), "{verdict}");
    assert_eq!(verdict.counts.failed, 1);
}

#[test]
fn a_position_with_two_ids_or_an_id_read_elsewhere_is_inconsistent() {
    let mut history = sent(3);
    read(&mut history, 0, 0, 0);
    read(&mut history, 2, 0, 1);
    let verdict = strict(&history);
    assert_eq!(
        cases(&verdict, AnomalyKind::InconsistentPosition),
        ["p0@1 holds m-000001 and m-000002", "m-000002 acked at p0@2, read at p0@1"]
    );
    assert!(verdict.to_string().contains("inconsistent position: 2 cases"), "{verdict}");
    assert_eq!(cases(&verdict, AnomalyKind::Lost), ["m-000001 (p0@1)"]);
}

#[test]
fn a_message_written_twice_is_a_duplicate_not_an_inconsistency() {
    let mut history = sent(1);
    read(&mut history, 0, 0, 0);
    read(&mut history, 0, 0, 1);
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::Duplicated]);
}

#[test]
fn indeterminate_sends_are_counted_not_failed() {
    let mut history = round_trip(1);
    let timeout = || SendOutcome::Unknown { error: "delivery timed out".into() };
    send(&mut history, 1, 1, timeout());
    send(&mut history, 1, 2, timeout());
    read(&mut history, 2, 0, 1);
    let verdict = strict(&history);
    assert_eq!(verdict.judgement(), Judgement::Passed, "{verdict}");
    assert_eq!(cases(&verdict, AnomalyKind::IndeterminateUnseen), ["m-000001"]);
    assert_eq!(cases(&verdict, AnomalyKind::IndeterminateRecovered), ["m-000002 (p0@1)"]);
    let text = verdict.to_string();
    assert!(text.starts_with("3 sent, 1 acked, 2 indeterminate (1 read back), 2 received once"), "{text}");
    assert!(text.contains("indeterminate: 1 send never read: m-000001"), "{text}");
    assert!(text.contains("recovered indeterminate: 1 send read back: m-000002 (p0@1)"), "{text}");
}

#[test]
fn a_resend_that_was_acked_counts_once_as_acked() {
    let mut history = History::default();
    let producer = history.begin_producer(TOPIC, AckedBy::Quorum);
    send(&mut history, producer, 0, SendOutcome::Unknown { error: "timeout".into() });
    send(&mut history, producer, 0, acked(0, 0));
    read(&mut history, 0, 0, 0);
    let verdict = strict(&history);
    assert!(verdict.anomalies.is_empty(), "{verdict}");
    assert_eq!((verdict.counts.attempted, verdict.counts.acked, verdict.counts.unknown), (1, 1, 0));
}

#[test]
fn a_history_without_acks_is_vacuous() {
    let mut history = History::default();
    let producer = history.begin_producer(TOPIC, AckedBy::Quorum);
    send(&mut history, producer, 0, SendOutcome::Failed { error: "no brokers".into() });
    history.begin_pass(TOPIC);
    let verdict = strict(&history);
    assert_eq!(kinds(&verdict), [AnomalyKind::Vacuous]);
    assert!(verdict.to_string().starts_with("vacuous: no message was acknowledged"), "{verdict}");
}

#[test]
fn long_lists_are_cut_at_twenty_cases() {
    let mut history = sent(25);
    history.begin_pass(TOPIC);
    let text = strict(&history).to_string();
    assert!(text.contains("lost 25 acknowledged messages: m-000000 (p0@0), "), "{text}");
    assert!(text.contains("m-000019 (p0@19) and 5 more"), "{text}");
    assert!(!text.contains("m-000020"), "{text}");
}

#[test]
fn the_failure_text_reads_as_a_report() {
    let mut history = sent(4);
    send(&mut history, 1, 4, SendOutcome::Unknown { error: "timed out".into() });
    send(&mut history, 1, 5, SendOutcome::Failed { error: "rejected".into() });
    for (n, offset) in [(0, 0), (2, 2), (1, 1), (0, 0), (5, 5)] {
        read(&mut history, n, 0, offset);
    }
    history.record_read(1, "hello", at(0, 6), 0);
    let expected = "\
lost 1 acknowledged message; aborted read: read 1 message whose send failed; phantom: read 1 message never sent; \
reordered 1 read within a partition; duplicated 1 message
6 sent, 4 acked, 1 failed, 1 indeterminate (0 read back), 1 lost, 6 received (4 distinct), out of order
failures:
  lost 1 acknowledged message: m-000003 (p0@3)
  aborted read: read 1 message whose send failed: m-000005 (p0@5)
  phantom: read 1 message never sent: \"hello\" (p0@6)
  reordered 1 read within a partition: m-000001 (p0@1) read after m-000002 (p0@2)
  duplicated 1 message: m-000000 (read 2 times)
allowed by this test's expectations:
  indeterminate: 1 send never read: m-000004";
    assert_eq!(strict(&history).to_string(), expected);
}
