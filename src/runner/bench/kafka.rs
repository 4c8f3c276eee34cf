//! Kafka's own `kafka-producer-perf-test` and `kafka-consumer-perf-test`,
//! run inside the first broker's container.

use super::{About, Tools};
use crate::k8s::exec;
use crate::runner::env::SuiteEnv;
use crate::runner::steps::create_topic;
use anyhow::{Context, Result};
use async_trait::async_trait;

/// Key and value of a harness message (`m-000123` twice): what the perf
/// tools send per record, so that both move the same bytes.
const RECORD_BYTES: usize = 16;

pub struct KafkaTools;

#[async_trait]
impl Tools for KafkaTools {
    fn about(&self) -> About {
        About {
            command: "kafka-bench",
            suite_file: "kafka.yaml",
            record_bytes: RECORD_BYTES,
            settings: "acks=all, idempotent",
        }
    }

    /// Three partitions, three replicas, as the suite's topics.
    async fn prepare_topic(&self, env: &SuiteEnv, topic: &str) -> Result<()> {
        let topics = env.system.replicated_log().context("the kafka suite's adapter has no topics")?;
        create_topic(topics, &env.ordinals().await?, topic, (3, 3), &env.suite.defaults).await
    }

    async fn produce(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
        tool_produce(env, topic, messages).await
    }

    async fn consume(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
        tool_consume(env, topic, messages).await
    }
}

async fn tool_produce(env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
    let (count, size) = (messages.to_string(), RECORD_BYTES.to_string());
    let command = [
        "kafka-producer-perf-test",
        "--topic",
        topic,
        "--num-records",
        &count,
        "--record-size",
        &size,
        "--throughput",
        "-1",
        "--producer-props",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=5",
        "bootstrap.servers=localhost:9092",
    ];
    let output = in_broker(env, &command).await?;
    producer_rate(&output).with_context(|| format!("no rate in kafka-producer-perf-test's output:\n{output}"))
}

async fn tool_consume(env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64> {
    let count = messages.to_string();
    let command = [
        "kafka-consumer-perf-test",
        "--bootstrap-server",
        "localhost:9092",
        "--topic",
        topic,
        "--messages",
        &count,
        "--timeout",
        "60000",
    ];
    let output = in_broker(env, &command).await?;
    consumer_rate(&output).with_context(|| format!("no rate in kafka-consumer-perf-test's output:\n{output}"))
}

/// Runs a tool in the first broker's container; its output if it succeeded.
async fn in_broker(env: &SuiteEnv, command: &[&str]) -> Result<String> {
    exec::exec_ok(&env.members.pods, &env.members.pod(0), &env.suite.members.container, command).await
}

/// The rate from the perf test's final line:
/// `100000 records sent, 41152.3 records/sec (0.63 MB/sec), …`.
fn producer_rate(output: &str) -> Option<f64> {
    let line = output.lines().rev().find(|line| line.contains("records sent,"))?;
    let (_, rest) = line.split_once("records sent,")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `fetch.nMsg.sec` of the consumer perf test's CSV (header, then values):
/// its fetch rate, without the group join that precedes it.
fn consumer_rate(output: &str) -> Option<f64> {
    let mut lines = output.lines().filter(|line| line.contains(','));
    let header: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let values: Vec<&str> = lines.next()?.split(',').map(str::trim).collect();
    let column = header.iter().position(|name| *name == "fetch.nMsg.sec")?;
    values.get(column)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_producer_perf_tests_final_rate() {
        let output = "50000 records sent, 9999.0 records/sec (0.15 MB/sec), 12.0 ms avg latency.\n\
                      100000 records sent, 41152.3 records/sec (0.63 MB/sec), 20.1 ms avg latency, 250.0 ms max \
                      latency, 3 ms 50th, 60 ms 95th, 120 ms 99th, 240 ms 99.9th.\n";
        assert_eq!(producer_rate(output), Some(41152.3));
        assert_eq!(producer_rate("nothing useful"), None);
    }

    #[test]
    fn reads_the_consumer_perf_tests_fetch_rate_by_its_column_name() {
        let output = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, \
                      rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n\
                      2026-11-21 15:00:00:000, 2026-11-21 15:00:05:000, 1.5, 0.3, 100000, 20000.0, 3000, 2000, \
                      0.76, 50000.0\n";
        assert_eq!(consumer_rate(output), Some(50000.0));
    }
}
