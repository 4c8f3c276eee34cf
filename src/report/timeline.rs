//! A test's history as the report draws it: seconds since the test began,
//! its steps as spans, its faults as windows, what the watches saw as
//! marks, and its traffic second by second (a history of 10,000 sends is
//! drawn from a few hundred per-second figures, never send by send).

use crate::history::{Event, FaultPhase, History, Millis, Phase, SendOutcome};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// Seconds from the first event to the last.
    pub end: f64,
    pub steps: Vec<StepSpan>,
    pub faults: Vec<FaultWindow>,
    pub marks: Vec<Mark>,
    /// Second by second from the first send to the last outcome, when the
    /// test sent anything.
    pub traffic: Option<Vec<Second>>,
    /// The delivery checks' verdicts, and the figures the test measured.
    pub checks: Vec<String>,
    pub measured: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepSpan {
    pub index: usize,
    pub name: String,
    pub from: f64,
    pub to: f64,
    pub state: StepState,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    Passed,
    Failed,
    /// Began and never ended: the run was interrupted, or the test gave up.
    Unfinished,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub fault: String,
    pub from: f64,
    pub to: f64,
    /// False if its undoing failed or never happened.
    pub undone: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub at: f64,
    pub subject: String,
    pub what: String,
    pub kind: MarkKind,
}

/// How a mark is coloured: going down, coming back, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Down,
    Up,
    Other,
}

/// One second of traffic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// When it begins, in seconds since the test began.
    pub at: f64,
    /// Sends whose acknowledgement came in this second.
    pub acked: u32,
    /// Sends whose failure or unknown outcome came in this second.
    pub unacked: u32,
    /// Of the acknowledged sends made in this second, the median and the
    /// longest time to their acknowledgement, in milliseconds.
    pub latency: Option<(f64, f64)>,
}

impl Timeline {
    pub fn of(history: &History) -> Timeline {
        let events = history.events();
        let times = events.iter().flat_map(|event| match event {
            Event::Sent(sent) => vec![sent.sent_at, sent.done_at],
            other => vec![other.at()],
        });
        let (start, last) = times.fold((Millis::MAX, Millis::MIN), |(lo, hi), at| (lo.min(at), hi.max(at)));
        if start > last {
            return Timeline::empty();
        }
        let seconds = |at: Millis| (at - start) as f64 / 1000.0;
        let end = seconds(last);
        let mut timeline = Timeline { end, ..Timeline::empty() };
        let mut open_steps: BTreeMap<usize, (String, f64)> = BTreeMap::new();
        let mut open_faults: HashMap<&str, Vec<f64>> = HashMap::new();
        for event in events {
            match event {
                Event::Step(step) => match step.phase {
                    Phase::Started => {
                        open_steps.insert(step.index, (step.step.clone(), seconds(step.at)));
                    }
                    Phase::Passed | Phase::Failed => {
                        let from = open_steps.remove(&step.index).map_or(seconds(step.at), |(_, from)| from);
                        let state = if step.phase == Phase::Passed { StepState::Passed } else { StepState::Failed };
                        timeline.steps.push(StepSpan {
                            index: step.index,
                            name: step.step.clone(),
                            from,
                            to: seconds(step.at),
                            state,
                            error: step.error.clone(),
                        });
                    }
                },
                Event::Fault(fault) => match fault.phase {
                    FaultPhase::Started => open_faults.entry(&fault.fault).or_default().push(seconds(fault.at)),
                    FaultPhase::Undone | FaultPhase::UndoFailed => {
                        // The same fault may be put on twice: each undoing ends the earliest still on.
                        let started = open_faults.get_mut(fault.fault.as_str()).filter(|open| !open.is_empty());
                        let from = started.map_or(0.0, |open| open.remove(0));
                        let undone = fault.phase == FaultPhase::Undone;
                        timeline.faults.push(FaultWindow {
                            fault: fault.fault.clone(),
                            from,
                            to: seconds(fault.at),
                            undone,
                        });
                    }
                },
                Event::Observed(seen) => timeline.marks.push(Mark {
                    at: seconds(seen.at),
                    subject: seen.subject.clone(),
                    what: seen.what.clone(),
                    kind: kind_of(&seen.what),
                }),
                Event::Checked(checked) => timeline.checks.push(checked.verdict.clone()),
                Event::Measured(measured) => {
                    timeline.measured.push(format!("{}: {} {}", measured.name, measured.value, measured.unit))
                }
                _ => {}
            }
        }
        for (index, (name, from)) in open_steps {
            let state = StepState::Unfinished;
            timeline.steps.push(StepSpan { index, name, from, to: end, state, error: None });
        }
        timeline.steps.sort_by_key(|step| step.index);
        for (fault, starts) in open_faults {
            for from in starts {
                timeline.faults.push(FaultWindow { fault: fault.to_string(), from, to: end, undone: false });
            }
        }
        timeline.faults.sort_by(|a, b| a.from.total_cmp(&b.from));
        timeline.traffic = traffic(history, start);
        timeline
    }

    fn empty() -> Timeline {
        Timeline {
            end: 0.0,
            steps: Vec::new(),
            faults: Vec::new(),
            marks: Vec::new(),
            traffic: None,
            checks: Vec::new(),
            measured: Vec::new(),
        }
    }
}

/// The observer's words (`not ready`, `node NotReady`, `restarted (2
/// restarts)`, `ready`, `node Ready`, `created`, …) as a colour.
fn kind_of(what: &str) -> MarkKind {
    if what == "not ready" || what.ends_with("NotReady") || what.starts_with("restarted") || what == "deleted" {
        MarkKind::Down
    } else if what == "ready" || what.ends_with("Ready") {
        MarkKind::Up
    } else {
        MarkKind::Other
    }
}

/// Seconds of traffic drawn at most: a history whose clock jumped must
/// not take the memory with it.
const MOST_SECONDS: Millis = 24 * 3600;

fn traffic(history: &History, start: Millis) -> Option<Vec<Second>> {
    let second = |at: Millis| (at - start).max(0) / 1000;
    let first = history.sends().map(|sent| second(sent.sent_at)).min()?;
    let last = history.sends().map(|sent| second(sent.done_at.max(sent.sent_at))).max()?.min(first + MOST_SECONDS);
    let mut seconds: Vec<Second> = (first..=last).map(|at| Second { at: at as f64, ..Second::default() }).collect();
    let slot = |at: Millis| (second(at).clamp(first, last) - first) as usize;
    let mut latencies: Vec<Vec<Millis>> = vec![Vec::new(); seconds.len()];
    for sent in history.sends() {
        match sent.outcome {
            SendOutcome::Acked { .. } => {
                seconds[slot(sent.done_at)].acked += 1;
                latencies[slot(sent.sent_at)].push(sent.done_at - sent.sent_at);
            }
            SendOutcome::Failed { .. } | SendOutcome::Unknown { .. } => seconds[slot(sent.done_at)].unacked += 1,
        }
    }
    for (second, mut latencies) in seconds.iter_mut().zip(latencies) {
        if latencies.is_empty() {
            continue;
        }
        latencies.sort_unstable();
        let median = latencies[latencies.len() / 2] as f64;
        second.latency = Some((median, *latencies.last().expect("not empty") as f64));
    }
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FaultEvent, MessageId, Observed, Offset, Position, Sent, StepEvent};

    fn step(index: usize, at: Millis, phase: Phase) -> Event {
        let error = (phase == Phase::Failed).then(|| "no".to_string());
        Event::Step(StepEvent { index, step: format!("step {index}"), at, phase, error })
    }

    fn fault(at: Millis, phase: FaultPhase) -> Event {
        Event::Fault(FaultEvent { fault: "node w stopped".into(), at, phase, error: None })
    }

    fn sent(seq: u64, sent_at: Millis, done_at: Millis, acked: bool) -> Event {
        let outcome = if acked {
            SendOutcome::Acked { position: Position { partition: 0, offset: Offset::Sequence(seq as i64) } }
        } else {
            SendOutcome::Unknown { error: "timed out".into() }
        };
        Event::Sent(Sent { producer: 1, seq, id: MessageId::numbered(seq), sent_at, done_at, outcome })
    }

    fn history(events: Vec<Event>) -> History {
        let mut history = History::default();
        events.into_iter().for_each(|event| history.push(event));
        history
    }

    #[test]
    fn steps_faults_and_marks_are_placed_in_seconds_from_the_start() {
        let timeline = Timeline::of(&history(vec![
            step(1, 10_000, Phase::Started),
            fault(10_500, FaultPhase::Started),
            step(1, 12_000, Phase::Passed),
            step(2, 12_000, Phase::Started),
            Event::Observed(Observed { at: 13_000, subject: "w".into(), what: "node NotReady".into() }),
            fault(14_000, FaultPhase::Undone),
            fault(14_500, FaultPhase::Started),
            step(2, 15_000, Phase::Failed),
            step(3, 15_000, Phase::Started),
        ]));
        assert_eq!(timeline.end, 5.0);
        let spans: Vec<_> = timeline.steps.iter().map(|step| (step.index, step.from, step.to, step.state)).collect();
        assert_eq!(
            spans,
            [(1, 0.0, 2.0, StepState::Passed), (2, 2.0, 5.0, StepState::Failed), (3, 5.0, 5.0, StepState::Unfinished)]
        );
        assert_eq!(timeline.steps[1].error.as_deref(), Some("no"));
        let windows: Vec<_> = timeline.faults.iter().map(|fault| (fault.from, fault.to, fault.undone)).collect();
        assert_eq!(windows, [(0.5, 4.0, true), (4.5, 5.0, false)], "a fault never undone lasts to the end");
        assert_eq!((timeline.marks[0].at, timeline.marks[0].kind), (3.0, MarkKind::Down));
        assert_eq!(timeline.traffic, None);
    }

    #[test]
    fn traffic_is_counted_per_second() {
        let timeline = Timeline::of(&history(vec![
            step(1, 0, Phase::Started),
            sent(0, 1_100, 1_200, true),
            sent(1, 1_300, 1_900, true),
            sent(2, 1_500, 3_400, true),
            sent(3, 1_600, 3_500, false),
            step(1, 3_600, Phase::Passed),
        ]));
        let traffic = timeline.traffic.unwrap();
        assert_eq!(traffic.iter().map(|second| second.at).collect::<Vec<_>>(), [1.0, 2.0, 3.0], "from the first send");
        assert_eq!((traffic[0].acked, traffic[1].acked, traffic[2].acked), (2, 0, 1));
        assert_eq!(traffic[2].unacked, 1);
        assert_eq!(traffic[0].latency, Some((600.0, 1_900.0)), "by the second each was sent in");
        assert_eq!(traffic[1].latency, None);
    }

    #[test]
    fn an_empty_history_is_an_empty_timeline() {
        assert_eq!(Timeline::of(&History::default()), Timeline::empty());
    }
}
