//! The one wait/retry mechanism: poll a probe until it reports done or a
//! deadline passes. Every wait in stateproof goes through [`until`], which
//! also accounts the time spent waiting on the cluster for the test report.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What one look at the world found.
pub enum Probe<T> {
    /// The condition holds; the wait ends with this value.
    Done(T),
    /// Not yet; the text says what was seen, for the timeout message.
    Pending(String),
    /// It never will (a permanent cause): the wait ends now, saying why.
    Never(String),
}

/// A wait that ended without its condition: out of time, with the last
/// thing it saw, or given up on a permanent cause.
#[derive(Debug, thiserror::Error)]
pub enum Unmet {
    #[error("timed out after {}s waiting for {what}; last seen: {last_seen}", waited.as_secs())]
    TimedOut { what: String, waited: Duration, last_seen: String },
    #[error("gave up after {}s waiting for {what}: {why}", waited.as_secs())]
    Never { what: String, waited: Duration, why: String },
}

tokio::task_local! {
    static WAITED: Cell<Duration>;
}

const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The longest a watched wait goes without looking, whatever the watch says.
const WATCHED_POLL: Duration = Duration::from_secs(5);
const PROGRESS_EVERY: Duration = Duration::from_secs(30);

/// Polls `probe` once a second until it is done or `timeout` has passed.
/// A probe error is not fatal: clusters under faults answer errors for a
/// while, and the error is what the timeout message will show.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> Result<T, Unmet>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Probe<T>>>,
{
    wait(what, timeout, None, probe).await
}

/// As [`until`], for a probe that reads objects a watch follows: it looks
/// again as soon as `changes` says something changed, and at least every
/// `WATCHED_POLL` all the same.
pub async fn until_changed<T, F, Fut>(
    what: &str,
    timeout: Duration,
    changes: watch::Receiver<u64>,
    probe: F,
) -> Result<T, Unmet>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Probe<T>>>,
{
    wait(what, timeout, Some(changes), probe).await
}

async fn wait<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut changes: Option<watch::Receiver<u64>>,
    mut probe: F,
) -> Result<T, Unmet>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Probe<T>>>,
{
    let started = Instant::now();
    let mut last_progress = started;
    // What the last look that answered saw: a look cut short by the
    // deadline must not hide it.
    let mut answered: Option<String> = None;
    let result = loop {
        // A hung call must not outlast the wait itself.
        let remaining = timeout.saturating_sub(started.elapsed()).max(POLL_INTERVAL);
        let last_seen = match tokio::time::timeout(remaining, probe()).await {
            Ok(Ok(Probe::Done(value))) => break Ok(value),
            Ok(Ok(Probe::Never(why))) => {
                break Err(Unmet::Never { what: what.to_string(), waited: started.elapsed(), why });
            }
            Ok(Ok(Probe::Pending(seen))) => answered.insert(seen).clone(),
            Ok(Err(error)) => answered.insert(format!("error: {error:#}")).clone(),
            Err(_) => match &answered {
                Some(seen) => format!("{seen} (the look after it got no answer within {}s)", remaining.as_secs()),
                None => format!("no answer within {}s", remaining.as_secs()),
            },
        };
        if started.elapsed() >= timeout {
            break Err(Unmet::TimedOut { what: what.to_string(), waited: started.elapsed(), last_seen });
        }
        if let Some(elapsed) = progress_due(&mut last_progress, started) {
            eprintln!("stateproof: still waiting ({elapsed}s of {}s) for {what}: {last_seen}", timeout.as_secs());
        }
        let left = timeout.saturating_sub(started.elapsed());
        match changes.as_mut() {
            Some(changes) => {
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { tokio::time::sleep(POLL_INTERVAL.min(left)).await },
                    () = tokio::time::sleep(WATCHED_POLL.min(left)) => {}
                }
            }
            None => tokio::time::sleep(POLL_INTERVAL.min(left)).await,
        }
    };
    account(started.elapsed());
    result
}

/// Long waits say what they wait for every `PROGRESS_EVERY`, so that a run
/// that seems stuck shows where it is.
fn progress_due(last: &mut Instant, started: Instant) -> Option<u64> {
    if last.elapsed() < PROGRESS_EVERY {
        return None;
    }
    *last = Instant::now();
    Some(started.elapsed().as_secs())
}

/// Awaits `future` as time spent on the cluster, for work that is one long
/// call rather than a poll (a rollout watch, a client operation).
pub async fn on_cluster<T>(future: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let value = future.await;
    account(started.elapsed());
    value
}

fn account(elapsed: Duration) {
    let _ = WAITED.try_with(|waited| waited.set(waited.get() + elapsed));
}

/// Runs `future` and returns its output with the time it spent in waits.
pub async fn measured<T>(future: impl Future<Output = T>) -> (T, Duration) {
    WAITED
        .scope(Cell::new(Duration::ZERO), async {
            let value = future.await;
            (value, WAITED.with(Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_probe_is_done() {
        let mut calls = 0;
        let value = until("the third call", Duration::from_secs(10), || {
            calls += 1;
            let seen = calls;
            async move { Ok(if seen < 3 { Probe::Pending(format!("call {seen}")) } else { Probe::Done(seen) }) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_observation() {
        let error = until::<(), _, _>("nothing", Duration::from_secs(3), || async {
            Err(anyhow::anyhow!("connection refused"))
        })
        .await
        .unwrap_err();
        let Unmet::TimedOut { what, last_seen, waited } = error else { panic!("{error}") };
        assert_eq!(what, "nothing");
        assert!(last_seen.contains("connection refused"), "{last_seen}");
        assert!(waited >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_look_cut_short_by_the_deadline_keeps_what_the_one_before_saw() {
        let mut calls = 0;
        let error = until::<(), _, _>("brokers [0, 1, 2]", Duration::from_secs(3), || {
            calls += 1;
            let first = calls == 1;
            async move {
                if !first {
                    std::future::pending::<()>().await;
                }
                Ok(Probe::Pending("registered brokers are [1001, 1002, 1003]".into()))
            }
        })
        .await
        .unwrap_err();
        let Unmet::TimedOut { last_seen, .. } = error else { panic!("{error}") };
        assert!(last_seen.starts_with("registered brokers are [1001, 1002, 1003] (the look after it"), "{last_seen}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_watched_wait_looks_again_when_told_of_a_change() {
        let (changed, changes) = watch::channel(0u64);
        let looks = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counted = looks.clone();
        let waiting = tokio::spawn(until_changed("the change", Duration::from_secs(60), changes, move || {
            let look = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move { Ok(if look >= 2 { Probe::Done(look) } else { Probe::Pending("not yet".into()) }) }
        }));
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        changed.send_modify(|count| *count += 1);
        assert_eq!(waiting.await.unwrap().unwrap(), 2);
        assert!(started.elapsed() < WATCHED_POLL, "it looked again on the change, not after the fallback poll");
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_cause_ends_the_wait_at_once() {
        let started = tokio::time::Instant::now();
        let error = until::<(), _, _>("bookie-2 to be Ready", Duration::from_secs(480), || async {
            Ok(Probe::Never("Unschedulable for 30s".into()))
        })
        .await
        .unwrap_err();
        assert!(matches!(&error, Unmet::Never { why, .. } if why == "Unschedulable for 30s"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn measured_counts_only_waiting_time() {
        let ((), waited) = measured(async {
            let _ =
                until::<(), _, _>("never", Duration::from_secs(5), || async { Ok(Probe::Pending("no".into())) }).await;
        })
        .await;
        assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(7), "{waited:?}");
    }
}
