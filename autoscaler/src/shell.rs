//! `bookkeeper-shell` in a bookie pod, through the pod exec API. The
//! image's wrapper runs BookKeeper's BookieShell with that bookie's own
//! configuration, so the shell finds the cluster's metadata by itself.

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// What a shell command did: BookieShell exits 0 on success and 255 on any
/// failure, which the exec API reports as status `Success` or `Failure`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShellRun {
    pub ok: bool,
    /// Standard output, then standard error (the shell logs to both).
    pub output: String,
}

impl ShellRun {
    /// The last lines of the output that say something, for messages and
    /// events (whose notes the API server caps at 1 kB): Java stack frames
    /// do not.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self
            .output
            .lines()
            .map(str::trim)
            .filter(|line| !(line.is_empty() || line.starts_with("at ") || line.starts_with("... ")))
            .collect();
        let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
        let excess = tail.chars().count().saturating_sub(400);
        match tail.char_indices().nth(excess) {
            Some((cut, _)) if excess > 0 => format!("...{}", &tail[cut..]),
            _ => tail,
        }
    }
}

pub async fn run(pods: &Api<Pod>, pod: &str, container: &str, args: &[&str], timeout: Duration) -> Result<ShellRun> {
    let command: Vec<&str> = std::iter::once("bookkeeper-shell").chain(args.iter().copied()).collect();
    let params = AttachParams::default().container(container).stdout(true).stderr(true);
    let exchange = async {
        let mut process = pods.exec(pod, command.clone(), &params).await?;
        let mut stdout = process.stdout().context("exec without stdout")?;
        let mut stderr = process.stderr().context("exec without stderr")?;
        let status = process.take_status().context("exec without status")?;
        let (mut out, mut err) = (String::new(), String::new());
        let (read_out, read_err) = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
        read_out?;
        read_err?;
        let status = status.await;
        // The status decides; a failure to close the stream after it does not.
        process.join().await.ok();
        let ok = status.as_ref().and_then(|status| status.status.as_deref()) == Some("Success");
        anyhow::Ok(ShellRun { ok, output: out + &err })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .with_context(|| format!("{command:?} in {pod} did not end within {timeout:?}"))?
        .with_context(|| format!("{command:?} in {pod}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_of_a_failed_recovery_skips_the_stack() {
        // What `recover -f` printed on 4.17.2 with too few bookies left (shortened).
        let output = "Constructing admin
Failed to recover ledger 7 : LedgerRecoveryException: Error while recovering ledger
Got an exception
com.google.common.util.concurrent.UncheckedExecutionException: Error while recovering ledger
\tat org.apache.bookkeeper.tools.cli.commands.bookies.RecoverCommand.apply(RecoverCommand.java:115) ~[bookkeeper-server-4.17.2.jar:4.17.2]
Caused by: org.apache.bookkeeper.client.BKException$BKLedgerRecoveryException: Error while recovering ledger
\t... 4 more
";
        let run = ShellRun { ok: false, output: output.into() };
        assert_eq!(
            run.tail(),
            "Failed to recover ledger 7 : LedgerRecoveryException: Error while recovering ledger | Got an exception | \
             com.google.common.util.concurrent.UncheckedExecutionException: Error while recovering ledger | \
             Caused by: org.apache.bookkeeper.client.BKException$BKLedgerRecoveryException: Error while recovering ledger"
        );
    }

    #[test]
    fn the_tail_is_the_last_lines_and_short() {
        let run = ShellRun { ok: false, output: "a\n\n b \nc\nd\ne\n".into() };
        assert_eq!(run.tail(), "b | c | d | e");
        let long = ShellRun { ok: false, output: "x".repeat(1000) };
        assert_eq!(long.tail().len(), 403);
        assert!(long.tail().starts_with("..."));
    }
}
