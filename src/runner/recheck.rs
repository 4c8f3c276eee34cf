//! `stateproof recheck HISTORY...`: judges stored histories again, without a
//! cluster: every delivery check a test made, with the pass and the
//! expectations it used (or, for a history without one, the strictest check
//! of its latest read). Exits non-zero when a check fails.

use crate::checks::delivery::{self, Expectations, Judgement};
use crate::history::History;
use anyhow::Result;
use std::path::Path;
use std::process::ExitCode;

pub fn recheck(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("usage: stateproof recheck HISTORY.jsonl...");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in files {
        match recheck_one(Path::new(file)) {
            Ok(passed) => failed |= !passed,
            Err(error) => {
                eprintln!("{file}: {error:#}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Prints each check's verdict; whether all of them passed.
fn recheck_one(file: &Path) -> Result<bool> {
    let history = History::read_jsonl(file)?;
    let mut checks: Vec<(Expectations, Option<String>)> = history
        .checks()
        .map(|checked| {
            let expectations = Expectations {
                pass: Some(checked.pass),
                duplicates_allowed: checked.duplicates_allowed,
                loss_is_finding: checked.loss_is_finding,
            };
            (expectations, Some(checked.verdict.clone()))
        })
        .collect();
    if checks.is_empty() {
        checks.push((Expectations::default(), None));
    }
    let mut passed = true;
    for (expectations, recorded) in checks {
        let verdict = delivery::check(&history, &expectations);
        let pass = expectations.pass.or(history.latest_pass()).unwrap_or(0);
        let same = match &recorded {
            Some(recorded) if *recorded == verdict.to_string() => " (as recorded)",
            Some(_) => " (the run recorded another verdict)",
            None => "",
        };
        println!("{}: read pass {pass}: {}{same}\n{verdict}\n", file.display(), judgement(&verdict));
        passed &= verdict.judgement() != Judgement::Failed;
    }
    Ok(passed)
}

fn judgement(verdict: &delivery::Verdict) -> &'static str {
    match verdict.judgement() {
        Judgement::Passed => "passed",
        Judgement::PassedWithFindings => "passed with findings",
        Judgement::Failed => "FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{AckedBy, MessageId, Offset, Position, SendOutcome, SendReport};

    #[test]
    fn a_stored_history_is_judged_again_as_the_run_judged_it() {
        let mut history = History::default();
        let producer = history.begin_producer("t", AckedBy::Quorum);
        for n in 0..3 {
            let position = Position { partition: 0, offset: Offset::Sequence(n) };
            let id = MessageId::numbered(n as u64);
            history.record_send(
                producer,
                SendReport { id, sent_at: 0, done_at: 1, outcome: SendOutcome::Acked { position } },
            );
        }
        let pass = history.begin_pass("t");
        history.record_read(pass, "m-000000", Position { partition: 0, offset: Offset::Sequence(0) }, 2);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.jsonl");
        history.write_jsonl(&file).unwrap();
        assert!(!recheck_one(&file).unwrap(), "two acknowledged messages were never read");
        assert_eq!(recheck(&[file.display().to_string()]), ExitCode::FAILURE);
    }
}
