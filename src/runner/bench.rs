//! `kafka-bench`: how fast the harness's own Kafka client produces and
//! consumes (through its port-forward gateway) against the broker's own
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test` run inside a
//! broker pod, in the same cluster, the same deployment and the same run.
//! Large round-trips stay cheap only if the harness keeps up with them.

use super::env::{Readiness, SuiteEnv};
use super::steps::create_topic;
use crate::cluster::Cluster;
use crate::cluster::forge::Forged;
use crate::history::SendOutcome;
use crate::k8s::exec;
use crate::settings::Settings;
use crate::suite::{self, Acks};
use crate::systems::{Log, Produce};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key and value of a harness message (`m-000123` twice): what the perf
/// tools send per record, so that both move the same bytes.
const RECORD_BYTES: usize = 16;
const READ_TIMEOUT: Duration = Duration::from_secs(600);

struct Args {
    messages: u64,
    rounds: u32,
}

#[derive(Default)]
struct Rates {
    harness_produce: Vec<f64>,
    harness_consume: Vec<f64>,
    tool_produce: Vec<f64>,
    tool_consume: Vec<f64>,
}

pub fn kafka_bench() -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = parse_args().and_then(|args| {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(run(args))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kafka-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Args> {
    let mut args = Args { messages: 100_000, rounds: 3 };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--messages" => args.messages = value.parse().context("--messages")?,
            "--rounds" => args.rounds = value.parse().context("--rounds")?,
            _ => bail!("unknown argument {flag} (usage: kafka-bench [--messages N] [--rounds R])"),
        }
    }
    Ok(args)
}

async fn run(args: Args) -> Result<()> {
    let settings = Settings::from_env().map_err(|why| anyhow!(why))?;
    let file = settings.suites_dir.join("kafka.yaml");
    let loaded = suite::load(&file, &settings, None).map_err(|error| anyhow!("{error}"))?;
    let forged = Forged::ask(&settings).await?;
    let cluster = Arc::new(Cluster::provide(&settings, &loaded.suite.cluster, &forged).await?);
    let run_id = format!("bench-{}", std::process::id());
    let outcome = match SuiteEnv::prepare(&loaded, cluster.clone(), &run_id).await? {
        Readiness::Unavailable(why) => Err(anyhow!("the Kafka fixture cannot run here: {why}")),
        Readiness::Ready(env) => {
            let measured = measure(&env, &args).await;
            let torn_down = env.teardown(settings.keep).await;
            measured.and(torn_down)
        }
    };
    let finished = cluster.finish(settings.keep).await;
    outcome.and(finished)
}

async fn measure(env: &SuiteEnv, args: &Args) -> Result<()> {
    env.deploy().await?;
    let kafka = env.system.log().context("the kafka suite's adapter has no log")?;
    let topics = env.system.replicated_log().context("the kafka suite's adapter has no topics")?;
    let members = env.ordinals().await?;
    let defaults = &env.suite.defaults;
    let mut rates = Rates::default();
    for round in 1..=args.rounds {
        eprintln!("kafka-bench: round {round}/{}: {} messages each way", args.rounds, args.messages);
        let topic = format!("bench-harness-{round}");
        create_topic(topics, &members, &topic, (3, 3), defaults).await?;
        rates.harness_produce.push(harness_produce(kafka, &topic, args.messages).await?);
        rates.harness_consume.push(harness_consume(kafka, &topic, args.messages).await?);
        let topic = format!("bench-tools-{round}");
        create_topic(topics, &members, &topic, (3, 3), defaults).await?;
        rates.tool_produce.push(tool_produce(env, &topic, args.messages).await?);
        rates.tool_consume.push(tool_consume(env, &topic, args.messages).await?);
        eprintln!(
            "kafka-bench: round {round}: produce {:.0} vs {:.0} msg/s, consume {:.0} vs {:.0} msg/s (harness vs tools)",
            rates.harness_produce.last().unwrap_or(&0.0),
            rates.tool_produce.last().unwrap_or(&0.0),
            rates.harness_consume.last().unwrap_or(&0.0),
            rates.tool_consume.last().unwrap_or(&0.0),
        );
    }
    println!("{}", report(&rates, args));
    Ok(())
}

async fn harness_produce(kafka: &dyn Log, topic: &str, messages: u64) -> Result<f64> {
    let started = Instant::now();
    let produce = Produce { topic, via: Some(0), acks: Acks::All, first: 0, count: messages };
    let sends = kafka.produce(produce).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let acked = sends.iter().filter(|send| matches!(send.outcome, SendOutcome::Acked { .. })).count();
    if acked as u64 != messages {
        bail!("the harness producer had {acked} of {messages} messages acknowledged");
    }
    Ok(messages as f64 / elapsed)
}

/// The fetch rate, as the consumer perf test's `fetch.nMsg.sec`: without
/// the lookups that precede fetching (for the tool, its group join).
async fn harness_consume(kafka: &dyn Log, topic: &str, messages: u64) -> Result<f64> {
    let reading = kafka.read(topic, Some(1), &BTreeMap::new(), READ_TIMEOUT).await?;
    let read = reading.records.len();
    if read as u64 != messages {
        bail!("the harness consumer read {read} of {messages} messages");
    }
    Ok(messages as f64 / reading.fetching.as_secs_f64())
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

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn report(rates: &Rates, args: &Args) -> String {
    let row = |what: &str, harness: &[f64], tool: &[f64]| {
        let (harness, tool) = (median(harness), median(tool));
        let ratio = if tool > 0.0 { harness / tool } else { 0.0 };
        format!("{what:<8} {harness:>14.0} {tool:>14.0} {ratio:>7.2}")
    };
    [
        format!(
            "kafka-bench: medians of {} rounds of {} messages ({RECORD_BYTES} bytes each), acks=all, idempotent",
            args.rounds, args.messages
        ),
        format!("{:<8} {:>14} {:>14} {:>7}", "", "harness msg/s", "tools msg/s", "ratio"),
        row("produce", &rates.harness_produce, &rates.tool_produce),
        row("consume", &rates.harness_consume, &rates.tool_consume),
    ]
    .join("\n")
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

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
