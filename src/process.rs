//! The one way stateproof runs a host program (kind, docker, the forge, an
//! operator beside the cluster).

use anyhow::{Context, Result, bail};
use std::collections::VecDeque;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// What an error quotes of a visible command's output.
const VISIBLE_LINES_KEPT: usize = 15;

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
/// to our standard error as it comes. A non-zero exit is an error naming the
/// command and quoting the end of its output.
pub async fn visible(program: &str, args: &[&str]) -> Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{program}`: is it installed and on PATH?"))?;
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let stdout = relay(child.stdout.take().expect("piped"), kept.clone());
    let stderr = relay(child.stderr.take().expect("piped"), kept.clone());
    let status = child.wait().await.with_context(|| format!("waiting for `{program}`"))?;
    let _ = tokio::join!(stdout, stderr);
    if !status.success() {
        let kept: Vec<String> = kept.lock().unwrap().drain(..).collect();
        bail!("`{} {}` failed ({status}): {}", program, args.join(" "), kept.join("\n"));
    }
    Ok(())
}

/// Copies a child's output to our standard error line by line, keeping the
/// last `VISIBLE_LINES_KEPT` lines of its outputs together.
fn relay<R>(from: R, kept: Arc<Mutex<VecDeque<String>>>) -> tokio::task::JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(from).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            let mut kept = kept.lock().unwrap();
            if kept.len() == VISIBLE_LINES_KEPT {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    })
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

    #[tokio::test]
    async fn a_visible_failure_quotes_the_end_of_its_output() {
        let script = "for i in $(seq 1 20); do echo line $i; done; echo broken >&2; exit 3";
        let error = visible("sh", &["-c", script]).await.unwrap_err().to_string();
        assert!(error.contains("sh -c") && error.contains("broken") && error.contains("line 20"), "{error}");
        assert!(!error.contains("line 5\n"), "only the end is quoted: {error}");
        visible("sh", &["-c", "echo fine"]).await.unwrap();
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    }
}
