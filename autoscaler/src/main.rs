//! bookie-autoscaler: a reference implementation of DataStax KAAP's bookie
//! autoscaler contract, without KAAP's known defects, for stateproof's
//! autoscaler suites to test. It runs in the bookies' namespace and, every
//! period, scales their StatefulSet up when writable bookies are missing or
//! running out of disk, and down, one safely decommissioned bookie at a
//! time, when every writable bookie has room to spare.
//!
//! Usage: bookie-autoscaler --config FILE

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

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bookie-autoscaler: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let path = config_path(std::env::args().skip(1))?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let config = config::parse(&text, std::env::var("POD_NAMESPACE").ok()).with_context(|| path.clone())?;
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

fn config_path(mut args: impl Iterator<Item = String>) -> Result<String> {
    const USAGE: &str = "usage: bookie-autoscaler --config FILE";
    let path = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--config"), Some(path), None) => path,
        (Some(arg), None, None) if arg.starts_with("--config=") => arg["--config=".len()..].to_string(),
        _ => bail!(USAGE),
    };
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::config_path;

    fn path(args: &[&str]) -> Result<String, String> {
        config_path(args.iter().map(|arg| arg.to_string())).map_err(|error| error.to_string())
    }

    #[test]
    fn the_config_file_is_the_only_argument() {
        assert_eq!(path(&["--config", "/etc/autoscaler/config.yaml"]), Ok("/etc/autoscaler/config.yaml".into()));
        assert_eq!(path(&["--config=/c.yaml"]), Ok("/c.yaml".into()));
        for wrong in [&[][..], &["--config"], &["/c.yaml"], &["--config", "a", "b"], &["--help"]] {
            assert_eq!(path(wrong), Err("usage: bookie-autoscaler --config FILE".into()), "{wrong:?}");
        }
    }
}
