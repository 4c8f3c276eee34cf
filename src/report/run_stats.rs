//! A run in figures, written beside the report (`run.json`) for the
//! benchmark to compare runs: the wall time of the run and of each suite
//! (from its admission to the end of its teardown), the sum of its tests'
//! times, how much of that waited on the cluster, the floor Kubernetes
//! imposed (pods coming up), the time to have each cluster ready, and the
//! harness's own CPU time and peak memory.

use super::{Outcome, TestResult};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    pub run: String,
    pub wall_seconds: f64,
    pub harness_cpu_seconds: f64,
    pub harness_peak_rss_mib: f64,
    pub clusters: Vec<ClusterStats>,
    pub suites: Vec<SuiteStats>,
    pub failed: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    pub config: String,
    /// From asking for the cluster to every node Ready (created, or reused).
    pub ready_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuiteStats {
    pub suite: String,
    pub wall_seconds: f64,
    pub tests: usize,
    pub test_seconds: f64,
    pub waited_seconds: f64,
    pub floor_seconds: f64,
}

impl RunStats {
    /// The figures of a finished run, from its results and the suites' walls.
    pub fn of(
        run: &str,
        wall: Duration,
        results: &[TestResult],
        suite_walls: &[(String, Duration)],
        clusters: Vec<ClusterStats>,
    ) -> RunStats {
        let (cpu, rss) = own_usage();
        let suites = suite_walls
            .iter()
            .map(|(suite, wall)| {
                let tests: Vec<&TestResult> = results.iter().filter(|result| result.suite == *suite).collect();
                let seconds = |of: fn(&TestResult) -> f64| tests.iter().map(|test| of(test)).sum::<f64>();
                SuiteStats {
                    suite: suite.clone(),
                    wall_seconds: wall.as_secs_f64(),
                    tests: tests.len(),
                    test_seconds: seconds(|test| test.duration.as_secs_f64()),
                    waited_seconds: seconds(|test| test.waited.as_secs_f64()),
                    floor_seconds: seconds(|test| {
                        test.properties
                            .iter()
                            .find(|(name, _)| name == "floor-seconds")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0.0)
                    }),
                }
            })
            .collect();
        RunStats {
            run: run.to_string(),
            wall_seconds: wall.as_secs_f64(),
            harness_cpu_seconds: cpu,
            harness_peak_rss_mib: rss,
            clusters,
            suites,
            failed: results.iter().filter(|result| matches!(result.outcome, Outcome::Failed(_))).count(),
        }
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self).map_err(std::io::Error::other)?)
    }

    pub fn read(path: &Path) -> anyhow::Result<RunStats> {
        let text = std::fs::read_to_string(path)?;
        Ok(serde_json::from_str(&text)?)
    }
}

/// This process's CPU time (user and system) and peak resident memory.
fn own_usage() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib = peak_resident_kib(&status).unwrap_or(usage.ru_maxrss as u64);
    (seconds(usage.ru_utime) + seconds(usage.ru_stime), peak_kib as f64 / 1024.0)
}

/// The peak resident memory of this program's own address space (VmHWM).
/// Not getrusage's ru_maxrss: Linux carries that across exec, so under
/// `cargo test` it reports cargo's own size when it forked the harness.
fn peak_resident_kib(proc_status: &str) -> Option<u64> {
    let line = proc_status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_the_address_spaces_high_water_mark() {
        let status = "Name:\te2e\nVmPeak:\t 2097152 kB\nVmHWM:\t   49432 kB\nVmRSS:\t   47100 kB\n";
        assert_eq!(peak_resident_kib(status), Some(49432));
        assert_eq!(peak_resident_kib("Name:\te2e\n"), None);
    }

    #[test]
    fn a_suites_figures_sum_its_tests() {
        let result = |test: &str, seconds: u64, floor: &str| TestResult {
            suite: "zookeeper".into(),
            suite_file: "suites/zookeeper.yaml".into(),
            test: test.into(),
            outcome: Outcome::Passed,
            duration: Duration::from_secs(seconds),
            waited: Duration::from_secs(seconds / 2),
            diagnostics: None,
            properties: vec![("floor-seconds".into(), floor.into())],
        };
        let results = [result("a", 10, "4.0"), result("b", 20, "6.5")];
        let walls = [("zookeeper".to_string(), Duration::from_secs(45))];
        let stats = RunStats::of("r", Duration::from_secs(60), &results, &walls, Vec::new());
        let suite = &stats.suites[0];
        assert_eq!((suite.tests, suite.test_seconds, suite.waited_seconds, suite.floor_seconds), (2, 30.0, 15.0, 10.5));
        assert_eq!(suite.wall_seconds, 45.0);
        assert!(stats.harness_cpu_seconds > 0.0 && stats.harness_peak_rss_mib > 1.0, "{stats:?}");
        // Figures with few digits, which JSON carries exactly.
        let stats = RunStats { harness_cpu_seconds: 1.5, harness_peak_rss_mib: 80.25, ..stats };
        let dir = tempfile::tempdir().unwrap();
        stats.write(&dir.path().join("run.json")).unwrap();
        assert_eq!(RunStats::read(&dir.path().join("run.json")).unwrap(), stats);
    }
}
