//! The one way to run a command in a container, with its output and status.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncReadExt;

#[derive(Debug)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// Why the command failed (a non-zero exit), as the API server reports it.
    pub failure: Option<String>,
}

pub async fn exec(pods: &Api<Pod>, pod: &str, container: &str, command: &[&str]) -> Result<ExecOutput> {
    let params = AttachParams::default().container(container).stdout(true).stderr(true);
    let mut process = pods
        .exec(pod, command.iter().copied(), &params)
        .await
        .with_context(|| format!("exec {command:?} in {pod}/{container}"))?;
    let mut stdout = process.stdout().context("exec without stdout")?;
    let mut stderr = process.stderr().context("exec without stderr")?;
    let status = process.take_status().context("exec without status")?;
    let (mut out, mut err) = (String::new(), String::new());
    let (read_out, read_err) = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
    read_out?;
    read_err?;
    let status = status.await;
    process.join().await.ok();
    let success = status.as_ref().is_some_and(|status| status.status.as_deref() == Some("Success"));
    let failure = (!success).then(|| status.and_then(|status| status.message).unwrap_or_else(|| "no status".into()));
    Ok(ExecOutput { stdout: out, stderr: err, failure })
}

/// Runs a command that must succeed; its standard output.
pub async fn exec_ok(pods: &Api<Pod>, pod: &str, container: &str, command: &[&str]) -> Result<String> {
    let output = exec(pods, pod, container, command).await?;
    match output.failure {
        Some(why) => bail!("{command:?} on {pod} failed: {why}; stderr: {}", output.stderr.trim()),
        None => Ok(output.stdout),
    }
}
