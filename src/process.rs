//! The one way stateproof runs a host program (kind, docker, the forge, an
//! operator beside the cluster).

use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Runs `program args` and returns its standard output. A non-zero exit is an
/// error naming the command and quoting the end of its standard error.
pub async fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run `{program}`: is it installed and on PATH?"))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            program,
            args.join(" "),
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a long command whose progress the user should see: its output goes
/// to our standard error as it comes.
pub async fn visible(program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .status()
        .await
        .with_context(|| format!("cannot run `{program}`: is it installed and on PATH?"))?;
    if !status.success() {
        bail!("`{} {}` failed ({status})", program, args.join(" "));
    }
    Ok(())
}

/// Whether `program args` exits zero, for existence checks.
pub async fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// A program that runs beside the harness until stopped (an operator).
pub struct Background {
    child: tokio::process::Child,
}

/// Starts `program args` with `env` added, its output appended to `log`. It
/// dies with the harness, even when an interrupt ends it without clean-up.
pub fn background(program: &Path, args: &[&OsStr], env: &[(String, String)], log: &Path) -> Result<Background> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let output = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut command = Command::new(program);
    command.args(args).envs(env.iter().cloned()).stdin(Stdio::null()).stdout(output.try_clone()?).stderr(output);
    command.kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = command.spawn().with_context(|| format!("starting {}", program.display()))?;
    Ok(Background { child })
}

impl Background {
    /// SIGTERM, then SIGKILL if it has not ended `within`.
    pub async fn stop(mut self, within: Duration) -> Result<()> {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: a plain kill(2) of our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(within, self.child.wait()).await.is_err() {
            self.child.kill().await.context("killing it after SIGTERM")?;
        }
        Ok(())
    }
}

/// The last `lines` lines of `text`, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_returns_stdout() {
        assert_eq!(output("sh", &["-c", "echo hello"]).await.unwrap(), "hello\n");
    }

    #[tokio::test]
    async fn failure_names_the_command_and_its_stderr() {
        let error = output("sh", &["-c", "echo broken >&2; exit 3"]).await.unwrap_err().to_string();
        assert!(error.contains("sh -c") && error.contains("broken") && error.contains('3'), "{error}");
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let error = output("no-such-program-stateproof", &[]).await.unwrap_err().to_string();
        assert!(error.contains("no-such-program-stateproof"), "{error}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    }
}
