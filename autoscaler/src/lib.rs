//! bookie-autoscaler: a reference implementation of DataStax KAAP's bookie
//! autoscaler contract, without KAAP's known defects, for stateproof's
//! autoscaler suites to test. It runs in the bookies' namespace and, every
//! period, scales their StatefulSet up when writable bookies are missing or
//! running out of disk, and down, one safely decommissioned bookie at a
//! time, when every writable bookie has room to spare.
//!
//! Usage: bookie-autoscaler --config FILE [--config FILE...]
//! (later files override what earlier ones set, key by key)

mod bookie_http;
mod config;
mod control;
mod decide;
mod decommission;
mod events;
mod http;
mod observe;
mod shell;

use anyhow::{Context, Result, anyhow, bail};
use events::say;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// The autoscaler's whole life: its exit code says how it ended. The binary
/// is stateproof's `bookie-autoscaler`, so that the test build that runs the
/// suites also builds the system they test.
pub fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bookie-autoscaler: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bookie-autoscaler: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let paths = config_paths(std::env::args().skip(1))?;
    let text = merged(&paths)?;
    let config = config::parse(&text, std::env::var("POD_NAMESPACE").ok()).with_context(|| paths.join(" + "))?;
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow!("a TLS crypto provider was installed already"))?;

    if let Some(defect) = config.defect {
        say(&format!(
            "WARNING: selfCheckDefect {defect} is set: this autoscaler is DELIBERATELY BROKEN, for stateproof's self-check; \
             never run it on bookies whose data matters"
        ));
    }
    let a = &config.autoscaler;
    say(&format!(
        "bookie-autoscaler {}: StatefulSet {}/{}; enabled {}, every {} ms, HWM {}, LWM {}, minWritableBookies {}, \
         scaleUpBy {}, scaleDownBy {}, scaleUpMaxLimit {}, stabilizationWindowMs {}",
        env!("CARGO_PKG_VERSION"),
        config.bookies.namespace,
        config.bookies.statefulset,
        a.enabled,
        a.period_ms,
        a.disk_usage_tolerance_hwm,
        a.disk_usage_tolerance_lwm,
        a.min_writable_bookies,
        a.scale_up_by,
        a.scale_down_by,
        a.scale_up_max_limit,
        a.stabilization_window_ms
    ));

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    if !a.enabled {
        say("autoscaler.enabled is false: doing nothing");
        tokio::select! { _ = terminate.recv() => {}, _ = interrupt.recv() => {} }
        return Ok(());
    }
    let period = Duration::from_millis(a.period_ms);
    let client = kube::Client::try_default().await.context("no Kubernetes client configuration")?;
    let mut controller = control::Controller::new(client, config);
    // A signal ends the wait between periods, never a period: a decommission
    // half done would leave a read-only bookie behind. The Deployment's
    // grace period is what bounds a period in progress.
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = tokio::time::sleep(period) => {}
        }
        if let Err(error) = controller.period().await {
            say(&format!("no decision this period: {error:#}"));
        }
    }
    say("stopping");
    Ok(())
}

/// The `--config` files, in order.
fn config_paths(mut args: impl Iterator<Item = String>) -> Result<Vec<String>> {
    const USAGE: &str = "usage: bookie-autoscaler --config FILE [--config FILE...]";
    let mut paths = Vec::new();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--config=") {
            Some(path) => paths.push(path.to_string()),
            None if arg == "--config" => paths.push(args.next().ok_or_else(|| anyhow!(USAGE))?),
            None => bail!(USAGE),
        }
    }
    if paths.is_empty() {
        bail!(USAGE);
    }
    Ok(paths)
}

/// The files read and merged (as JSON text): a later file's keys win, maps
/// merging key by key, so that a small file can change one setting.
fn merged(paths: &[String]) -> Result<String> {
    let mut merged = serde_json::Value::Null;
    for path in paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).map_err(|error| anyhow!("{path}: not YAML: {error}"))?;
        merge(&mut merged, value);
    }
    Ok(merged.to_string())
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use super::{config_paths, merge};

    fn paths(args: &[&str]) -> Result<Vec<String>, String> {
        config_paths(args.iter().map(|arg| arg.to_string())).map_err(|error| error.to_string())
    }

    #[test]
    fn config_files_are_the_only_arguments() {
        assert_eq!(paths(&["--config", "/etc/autoscaler/config.yaml"]), Ok(vec!["/etc/autoscaler/config.yaml".into()]));
        assert_eq!(paths(&["--config=/c.yaml", "--config", "/d.yaml"]), Ok(vec!["/c.yaml".into(), "/d.yaml".into()]));
        for wrong in [&[][..], &["--config"], &["/c.yaml"], &["--help"]] {
            assert!(paths(wrong).unwrap_err().starts_with("usage: bookie-autoscaler --config FILE"), "{wrong:?}");
        }
    }

    #[test]
    fn a_later_file_changes_only_the_keys_it_names() {
        let mut config = serde_json::json!({"autoscaler": {"periodMs": 10000, "scaleUpBy": 1}, "bookies": {"statefulSet": "bookie"}});
        merge(&mut config, serde_json::json!({"autoscaler": {"periodMs": 2000}, "selfCheckDefect": "no-decommission"}));
        assert_eq!(
            config,
            serde_json::json!({"autoscaler": {"periodMs": 2000, "scaleUpBy": 1}, "bookies": {"statefulSet": "bookie"},
                "selfCheckDefect": "no-decommission"})
        );
    }
}
