//! Client benchmarks (`kafka-bench`, `pulsar-bench`): how fast the
//! harness's own client produces and consumes (through its port-forward
//! gateway) against the system's own perf tools run inside a pod of the
//! same cluster, the same deployment and the same run. Large round-trips
//! stay cheap only if the harness keeps up with them.

mod kafka;
mod pulsar;

use super::env::SuiteEnv;
use crate::cluster::Cluster;
use crate::cluster::forge::Forged;
use crate::history::SendOutcome;
use crate::k8s::exec;
use crate::settings::Settings;
use crate::suite::{self, Acks};
use crate::systems::{Log, Produce};
use anyhow::{Context, Result, anyhow, bail};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use kafka::KafkaTools;
pub use pulsar::PulsarTools;

const READ_TIMEOUT: Duration = Duration::from_secs(600);

/// What a benchmark is called, what it deploys, and how both clients send.
pub struct About {
    /// The command's name, for its messages and its table.
    pub command: &'static str,
    /// The suite whose fixture is deployed, under `suites/`.
    pub suite_file: &'static str,
    /// Bytes per message, the same for both clients.
    pub record_bytes: usize,
    /// The delivery settings both clients use, for the table's title.
    pub settings: &'static str,
}

/// A system's own perf tools, and how its suite's deployment is measured.
#[async_trait]
pub trait Tools: Sync {
    fn about(&self) -> About;
    /// Makes `topic` ready for both clients.
    async fn prepare_topic(&self, env: &SuiteEnv, topic: &str) -> Result<()>;
    async fn produce(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64>;
    async fn consume(&self, env: &SuiteEnv, topic: &str, messages: u64) -> Result<f64>;
}

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

pub fn client_bench(tools: &dyn Tools) -> std::process::ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = parse_args(tools).and_then(|args| {
        // The pulsar client's futures are deep; 2 MiB stacks overflow in debug builds.
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(16 << 20).build()?;
        runtime.block_on(run(tools, args))
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: {error:#}", tools.about().command);
            std::process::ExitCode::FAILURE
        }
    }
}

fn parse_args(tools: &dyn Tools) -> Result<Args> {
    let mut args = Args { messages: 100_000, rounds: 3 };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--messages" => args.messages = value.parse().context("--messages")?,
            "--rounds" => args.rounds = value.parse().context("--rounds")?,
            _ => bail!("unknown argument {flag} (usage: {} [--messages N] [--rounds R])", tools.about().command),
        }
    }
    Ok(args)
}

async fn run(tools: &dyn Tools, args: Args) -> Result<()> {
    let settings = Settings::from_env().map_err(|why| anyhow!(why))?;
    let file = settings.suites_dir.join(tools.about().suite_file);
    let loaded = suite::load(&file, &settings, None).map_err(|error| anyhow!("{error}"))?;
    let forged = Forged::ask(&settings).await?;
    let run_id = format!("bench-{}", std::process::id());
    let cluster = Arc::new(Cluster::provide(&settings, &loaded.suite.cluster, &forged, &run_id).await?);
    let logs = settings.report_dir.join(&run_id);
    let outcome = match SuiteEnv::images_missing(&loaded, &cluster).await? {
        Some(why) => Err(anyhow!("the fixture of {} cannot run here: {why}", tools.about().suite_file)),
        None => {
            let env = SuiteEnv::prepare(&loaded, cluster.clone(), &run_id, &logs).await?;
            let measured = measure(tools, &env, &args).await;
            let torn_down = env.teardown(settings.keep, None).await;
            measured.and(torn_down)
        }
    };
    let finished = cluster.finish(settings.keep).await;
    outcome.and(finished)
}

async fn measure(tools: &dyn Tools, env: &SuiteEnv, args: &Args) -> Result<()> {
    env.deploy().await?;
    let log = env.system.log().context("the suite's adapter has no log")?;
    let command = tools.about().command;
    let mut rates = Rates::default();
    for round in 1..=args.rounds {
        eprintln!("{command}: round {round}/{}: {} messages each way", args.rounds, args.messages);
        let topic = format!("bench-harness-{round}");
        tools.prepare_topic(env, &topic).await?;
        rates.harness_produce.push(harness_produce(log, &topic, args.messages).await?);
        rates.harness_consume.push(harness_consume(log, &topic, args.messages).await?);
        let topic = format!("bench-tools-{round}");
        tools.prepare_topic(env, &topic).await?;
        rates.tool_produce.push(tools.produce(env, &topic, args.messages).await?);
        rates.tool_consume.push(tools.consume(env, &topic, args.messages).await?);
        eprintln!(
            "{command}: round {round}: produce {:.0} vs {:.0} msg/s, consume {:.0} vs {:.0} msg/s (harness vs tools)",
            rates.harness_produce.last().unwrap_or(&0.0),
            rates.tool_produce.last().unwrap_or(&0.0),
            rates.harness_consume.last().unwrap_or(&0.0),
            rates.tool_consume.last().unwrap_or(&0.0),
        );
    }
    println!("{}", report(tools, &rates, args));
    Ok(())
}

async fn harness_produce(log: &dyn Log, topic: &str, messages: u64) -> Result<f64> {
    let started = Instant::now();
    let produce = Produce { topic, via: Some(0), acks: Acks::All, first: 0, count: messages };
    let sends = log.produce(produce).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let acked = sends.iter().filter(|send| matches!(send.outcome, SendOutcome::Acked { .. })).count();
    if acked as u64 != messages {
        bail!("the harness producer had {acked} of {messages} messages acknowledged");
    }
    Ok(messages as f64 / elapsed)
}

/// The fetch rate, as the perf tools count it: without the lookups and the
/// subscription that precede fetching.
async fn harness_consume(log: &dyn Log, topic: &str, messages: u64) -> Result<f64> {
    let reading = log.read(topic, Some(1), &BTreeMap::new(), READ_TIMEOUT).await?;
    let read = reading.records.len();
    if read as u64 != messages {
        bail!("the harness consumer read {read} of {messages} messages");
    }
    Ok(messages as f64 / reading.fetching.as_secs_f64())
}

/// Runs a tool in a pod's container; its output (stdout, then stderr) if it
/// succeeded.
async fn in_pod(env: &SuiteEnv, pod: &str, container: &str, command: &[&str]) -> Result<String> {
    let output = exec::exec(&env.members.pods, pod, container, command).await?;
    if let Some(why) = output.failure {
        bail!("{command:?} on {pod} failed: {why}; stderr: {}", output.stderr.trim());
    }
    Ok(format!("{}{}", output.stdout, output.stderr))
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

fn report(tools: &dyn Tools, rates: &Rates, args: &Args) -> String {
    let row = |what: &str, harness: &[f64], tool: &[f64]| {
        let (harness, tool) = (median(harness), median(tool));
        let ratio = if tool > 0.0 { harness / tool } else { 0.0 };
        format!("{what:<8} {harness:>14.0} {tool:>14.0} {ratio:>7.2}")
    };
    [
        format!(
            "{}: medians of {} rounds of {} messages ({} bytes each), {}",
            tools.about().command,
            args.rounds,
            args.messages,
            tools.about().record_bytes,
            tools.about().settings
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
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
