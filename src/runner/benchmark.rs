//! `stateproof bench [--runs N] [FILTER]`: the whole conformance run (or the
//! tests a filter selects), N times in a row, each a run of its own (a new
//! cluster unless one is named), then per suite and in total the medians of
//! its wall time, the sum of its tests' times, the time they waited on the
//! cluster and the floor Kubernetes imposed, the time to a ready cluster, and
//! the harness's CPU time and peak memory: a table, and the same as JSON
//! (`target/stateproof/bench/bench.json`).

use crate::report::run_stats::RunStats;
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

const OUT: &str = "target/stateproof/bench";

pub fn bench(args: &[String]) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("stateproof bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode> {
    let (runs, passed_on) = parse(args)?;
    let out = PathBuf::from(OUT);
    std::fs::create_dir_all(&out)?;
    let harness = std::env::current_exe().context("finding this program")?;
    let mut stats = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=runs {
        let file = out.join(format!("run-{round}.json"));
        let _ = std::fs::remove_file(&file);
        eprintln!("stateproof bench: run {round} of {runs}");
        let status = Command::new(&harness).args(&passed_on).env("STATEPROOF_RUN_STATS", &file).status()?;
        let run =
            RunStats::read(&file).with_context(|| format!("run {round} left no figures in {}", file.display()))?;
        failures.push((round, run.failed, status.code()));
        stats.push(run);
    }
    let summary = Summary::of(&stats);
    println!("{}", summary.table(&failures));
    let json = out.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&summary)?)?;
    eprintln!("stateproof bench: {}", json.display());
    let clean = failures.iter().all(|(_, failed, code)| *failed == 0 && *code == Some(0));
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `--runs N` and what goes on to each run (a name filter, libtest flags).
fn parse(args: &[String]) -> Result<(u32, Vec<String>)> {
    let mut runs = 3;
    let mut passed_on = Vec::new();
    let mut given = args.iter();
    while let Some(arg) = given.next() {
        if arg == "--runs" {
            let value = given.next().context("--runs needs a number")?;
            runs = value.parse().with_context(|| format!("--runs {value}: not a number"))?;
        } else {
            passed_on.push(arg.clone());
        }
    }
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok((runs, passed_on))
}

/// Medians over the runs.
#[derive(Debug, Serialize)]
struct Summary {
    runs: usize,
    each: Vec<RunStats>,
    wall_seconds: f64,
    /// Per kind config: clusters made side by side are each timed.
    cluster_ready_seconds: BTreeMap<String, f64>,
    harness_cpu_seconds: f64,
    harness_cpu_share: f64,
    harness_peak_rss_mib: f64,
    suites: BTreeMap<String, Medians>,
}

#[derive(Debug, Default, Serialize)]
struct Medians {
    wall_seconds: f64,
    test_seconds: f64,
    waited_seconds: f64,
    floor_seconds: f64,
}

impl Summary {
    fn of(runs: &[RunStats]) -> Summary {
        let over = |of: &dyn Fn(&RunStats) -> f64| median(runs.iter().map(of).collect());
        let mut names: Vec<String> =
            runs.iter().flat_map(|run| run.suites.iter().map(|suite| suite.suite.clone())).collect();
        names.sort();
        names.dedup();
        let suites = names
            .into_iter()
            .map(|name| {
                let of = |field: fn(&crate::report::run_stats::SuiteStats) -> f64| {
                    median(
                        runs.iter().flat_map(|run| run.suites.iter().filter(|s| s.suite == name).map(field)).collect(),
                    )
                };
                let medians = Medians {
                    wall_seconds: of(|s| s.wall_seconds),
                    test_seconds: of(|s| s.test_seconds),
                    waited_seconds: of(|s| s.waited_seconds),
                    floor_seconds: of(|s| s.floor_seconds),
                };
                (name, medians)
            })
            .collect();
        let wall = over(&|run| run.wall_seconds);
        let cpu = over(&|run| run.harness_cpu_seconds);
        Summary {
            runs: runs.len(),
            each: runs.to_vec(),
            wall_seconds: wall,
            cluster_ready_seconds: cluster_medians(runs),
            harness_cpu_seconds: cpu,
            harness_cpu_share: if wall > 0.0 { cpu / wall } else { 0.0 },
            harness_peak_rss_mib: over(&|run| run.harness_peak_rss_mib),
            suites,
        }
    }

    fn table(&self, failures: &[(u32, usize, Option<i32>)]) -> String {
        let mut lines = vec![
            format!("medians of {} run(s)", self.runs),
            format!("{:<44} {:>9} {:>9} {:>9} {:>9}", "suite", "wall s", "tests s", "waited s", "floor s"),
        ];
        for (suite, m) in &self.suites {
            lines.push(format!(
                "{suite:<44} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                m.wall_seconds, m.test_seconds, m.waited_seconds, m.floor_seconds
            ));
        }
        let ready: Vec<String> =
            self.cluster_ready_seconds.iter().map(|(config, seconds)| format!("{config} {seconds:.0}s")).collect();
        lines.push(format!(
            "total: wall {:.0}s, cluster ready ({}), harness CPU {:.1}s ({:.1}% of wall), peak RSS {:.0} MiB",
            self.wall_seconds,
            ready.join(", "),
            self.harness_cpu_seconds,
            self.harness_cpu_share * 100.0,
            self.harness_peak_rss_mib
        ));
        for (round, failed, code) in failures {
            lines.push(format!(
                "run {round}: {failed} failed test(s), exit {}",
                code.map_or("?".into(), |c| c.to_string())
            ));
        }
        lines.join("\n")
    }
}

fn cluster_medians(runs: &[RunStats]) -> BTreeMap<String, f64> {
    let mut each: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for cluster in runs.iter().flat_map(|run| &run.clusters) {
        each.entry(cluster.config.clone()).or_default().push(cluster.ready_seconds);
    }
    each.into_iter().map(|(config, seconds)| (config, median(seconds))).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::run_stats::{ClusterStats, SuiteStats};

    fn run(wall: f64, zk_wall: f64) -> RunStats {
        RunStats {
            run: "r".into(),
            wall_seconds: wall,
            harness_cpu_seconds: wall / 50.0,
            harness_peak_rss_mib: 80.0,
            clusters: vec![
                ClusterStats { config: "default".into(), ready_seconds: wall / 20.0 },
                ClusterStats { config: "autoscaling".into(), ready_seconds: 30.0 },
            ],
            suites: vec![SuiteStats { suite: "zookeeper".into(), wall_seconds: zk_wall, ..SuiteStats::default() }],
            failed: 0,
        }
    }

    #[test]
    fn the_summary_takes_medians_over_runs() {
        let summary = Summary::of(&[run(900.0, 300.0), run(800.0, 280.0), run(1000.0, 290.0)]);
        assert_eq!(summary.wall_seconds, 900.0);
        assert_eq!(summary.suites["zookeeper"].wall_seconds, 290.0);
        assert!((summary.harness_cpu_share - 0.02).abs() < 1e-9);
        let table = summary.table(&[(1, 0, Some(0))]);
        assert!(table.contains("zookeeper") && table.contains("run 1: 0 failed test(s), exit 0"), "{table}");
        assert!(table.contains("cluster ready (autoscaling 30s, default 45s)"), "{table}");
    }

    #[test]
    fn runs_and_filters_are_told_apart() {
        let args: Vec<String> = ["--runs", "2", "zookeeper", "--exact"].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse(&args).unwrap(), (2, vec!["zookeeper".to_string(), "--exact".to_string()]));
        assert!(parse(&["--runs".to_string(), "0".to_string()]).is_err());
    }
}
