//! Signalling a pod's container from its node, as a fault: a killed or
//! frozen server.

use super::kind::ContainerRef;
use anyhow::{Context, Result};

/// The shell script, run on the container's node, that signals its main
/// process: of the processes in its cgroup (named by the runtime's id), the
/// first started whose parent is not among them (exec'd processes start
/// later). The same on a kind node and through the node agent.
pub fn script(target: &ContainerRef<'_>, signal: &str) -> Result<String> {
    let id = target.id.with_context(|| format!("pod {} has no running container {}", target.pod, target.container))?;
    Ok(script_in("/proc", id, signal))
}

fn script_in(proc: &str, id: &str, signal: &str) -> String {
    format!(
        "pids=$(grep -l -- '{id}' {proc}/[0-9]*/cgroup 2>/dev/null | cut -d/ -f{field} | tr '\\n' ' '); \
         [ -n \"$pids\" ] || {{ echo 'no process of container {id} on this node' >&2; exit 1; }}; \
         main=$(for pid in $pids; do \
           parent=$(awk '/^PPid:/ {{print $2}}' {proc}/$pid/status 2>/dev/null); \
           case \" $pids \" in *\" $parent \"*) ;; \
             *) echo \"$(sed 's/^.*) //' {proc}/$pid/stat | cut -d' ' -f20) $pid\";; esac; \
         done | sort -n | head -n 1 | cut -d' ' -f2); \
         [ -n \"$main\" ] || {{ echo 'no main process of container {id}' >&2; exit 1; }}; \
         kill -{signal} \"$main\"",
        field = proc.matches('/').count() + 2
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up /proc: the container's init (started first), its child,
    /// and a process exec'd into the container later (its parent outside).
    #[test]
    fn the_script_picks_the_containers_init() {
        let proc = std::env::temp_dir().join(format!("stateproof-proc-{}", std::process::id()));
        let process = |pid: u32, parent: u32, started: u32, cgroup: &str| {
            let dir = proc.join(pid.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cgroup"), format!("4:memory:/kubepods/pod1/{cgroup}\n")).unwrap();
            std::fs::write(dir.join("status"), format!("Name:\tjava\nPPid:\t{parent}\n")).unwrap();
            let fields: Vec<String> =
                (3..=52).map(|n| if n == 22 { started.to_string() } else { "0".into() }).collect();
            std::fs::write(dir.join("stat"), format!("{pid} (a java thing) {}\n", fields.join(" "))).unwrap();
        };
        process(300, 1, 500, "4f2a");
        process(301, 300, 600, "4f2a");
        process(302, 1, 900, "4f2a");
        process(303, 1, 100, "9999");
        let run = |id: &str| {
            let script = format!("kill() {{ echo \"$*\"; }}; {}", script_in(proc.to_str().unwrap(), id, "STOP"));
            std::process::Command::new("sh").arg("-c").arg(script).output().unwrap()
        };
        let found = run("4f2a");
        assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
        assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), "-STOP 300");
        let missing = run("abcd");
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("no process of container abcd"));
        std::fs::remove_dir_all(&proc).ok();
    }
}
