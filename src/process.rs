//! The one way stateproof runs a host program (kind, docker, the forge).

use anyhow::{Context, Result, bail};
use std::process::Stdio;
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
