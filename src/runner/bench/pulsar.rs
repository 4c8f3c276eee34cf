//! Pulsar's own `pulsar-perf produce` and `pulsar-perf consume`, run inside
//! the broker's container, with the harness client's settings: no batching,
//! 1000 sends in flight, messages of the harness's size.

use super::{About, Tools, in_pod};
use crate::runner::env::SuiteEnv;
use anyhow::{Context, Result};
use async_trait::async_trait;

/// A harness message's payload (`m-000123`).
const RECORD_BYTES: usize = 8;
/// The harness producer's window of sends in flight.
const IN_FLIGHT: &str = "1000";
/// Far above what one producer reaches here: the tool's default is 100 msg/s.
const UNLIMITED_RATE: &str = "10000000";

pub struct PulsarTools;

#[async_trait]
impl Tools for PulsarTools {
    fn about(&self) -> About {
        About {
            command: "pulsar-bench",
            suite_file: "pulsar-bookies.yaml",
            record_bytes: RECORD_BYTES,
            settings: "persistent, unbatched, 1000 in flight, the suite's quorums",
        }
    }

    /// The broker creates a topic on first use, for either client.
    async fn prepare_topic(&self, _env: &SuiteEnv, _topic: &str) -> Result<()> {
        Ok(())
    }

    async fn produce(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
        let (count, size) = (messages.to_string(), RECORD_BYTES.to_string());
        let command =
            ["pulsar-perf", "produce", "-m", &count, "-s", &size, "-r", UNLIMITED_RATE, "-o", IN_FLIGHT, "-db", topic];
        let output = in_broker(env, &command).await?;
        aggregated_rate(&output, "records sent")
            .with_context(|| format!("no aggregated rate in pulsar-perf produce's output:\n{output}"))
    }

    async fn consume(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
        let count = messages.to_string();
        let command = ["pulsar-perf", "consume", "-m", &count, "-sp", "Earliest", "-ss", "bench", topic];
        let output = in_broker(env, &command).await?;
        aggregated_rate(&output, "records received")
            .with_context(|| format!("no aggregated rate in pulsar-perf consume's output:\n{output}"))
    }
}

async fn in_broker(env: &SuiteEnv, command: &[&str]) -> Result<String> {
    let broker = env.suite.params.get("broker").and_then(|broker| broker.get("statefulset"));
    let statefulset = broker.and_then(|name| name.as_str()).context("the suite names no broker statefulset")?;
    in_pod(env, &format!("{statefulset}-0"), "broker", command).await
}

/// The msg/s of the tool's closing line:
/// `Aggregated throughput stats --- 100000 records sent --- 9876.543 msg/s --- 0.632 Mbit/s`.
fn aggregated_rate(output: &str, counted: &str) -> Option<f64> {
    let line =
        output.lines().rev().find(|line| line.contains("Aggregated throughput stats") && line.contains(counted))?;
    let (_, rest) = line.split_once(counted)?;
    let rate = rest.trim_start_matches([' ', '-']).split_whitespace().next()?;
    rate.replace(',', "").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_aggregated_rate_of_the_closing_line() {
        let output = "12:00:01 INFO Throughput produced: 10000 msg --- 9999.9 msg/s --- 0.6 Mbit/s\n\
                      12:00:10 INFO Aggregated throughput stats --- 100000 records sent --- 9876.543 msg/s --- \
                      0.632 Mbit/s\n";
        assert_eq!(aggregated_rate(output, "records sent"), Some(9876.543));
        assert_eq!(aggregated_rate(output, "records received"), None);
    }
}
