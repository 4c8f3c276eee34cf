//! The end of a run, or of a suite: tearing down what the run made,
//! accounting for anything it could not remove (a failed testcase of its
//! own, a non-zero exit), reaping what a dead run left, and the clean-up of
//! an interrupt.

use super::gate::ClusterGate;
use super::harness::{ClusterPlace, EnvState, Shared, SuiteSlot, record, record_run_failure, run_failure};
use crate::cluster::{Cluster, kind, local_volumes};
use crate::k8s::namespace;
use crate::report::run_stats::RunStats;
use crate::report::{self, TestResult, github, summary};
use crate::settings::ClusterChoice;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const NODE_UNDO_WITHIN: Duration = Duration::from_secs(180);

/// Tears everything down, looks for leftovers, then writes the reports and
/// the summary.
pub(super) fn finish(shared: &Shared) {
    shared.runtime.block_on(teardown(shared));
    let results = shared.results.lock().unwrap().clone();
    write_report(shared, &results);
    github::publish(&shared.run, &results, &shared.settings.html_path);
    write_stats(shared, &results);
    if !results.is_empty() {
        eprintln!("\n{}", summary::render(&results));
    }
}

fn write_stats(shared: &Shared, results: &[TestResult]) {
    let walls = shared.suite_walls.lock().unwrap().clone();
    let clusters = shared.cluster_stats.lock().unwrap().clone();
    let stats = RunStats::of(&shared.run, shared.started.elapsed(), results, &walls, clusters);
    let path = shared
        .settings
        .run_stats
        .clone()
        .unwrap_or_else(|| shared.settings.report_dir.join(&shared.run).join("run.json"));
    match stats.write(&path) {
        Ok(()) => eprintln!(
            "stateproof: run figures {} ({:.0}s wall, harness {:.1}s CPU, {:.0} MiB peak)",
            path.display(),
            stats.wall_seconds,
            stats.harness_cpu_seconds,
            stats.harness_peak_rss_mib
        ),
        Err(error) => eprintln!("stateproof: cannot write the run figures {}: {error}", path.display()),
    }
}

/// Tears a suite's environment down (once): its namespace, cluster-scoped
/// objects, operator and local volumes. A failure is the suite's `teardown`
/// testcase. With `gate`, the part that touches nodes (the volumes'
/// directories) waits until no other test has nodes stopped; the namespace
/// goes at once.
pub(super) async fn finish_suite(shared: &Shared, slot: &SuiteSlot, gate: Option<&ClusterGate>) {
    let mut state = slot.env.lock().await;
    let env = match state.take() {
        Some(EnvState::Ready(env)) | Some(EnvState::Failed { env: Some(env), .. }) => env,
        other => {
            *state = other;
            return;
        }
    };
    *state = Some(EnvState::Finished);
    let started = Instant::now();
    if let Err(error) = env.teardown(shared.settings.keep, gate).await {
        let why = format!("tearing down namespace {}: {error:#}", env.namespace);
        eprintln!("stateproof: {why}");
        shared.run_failures.fetch_add(1, Ordering::SeqCst);
        let mut failure = run_failure(&slot.loaded.file, &slot.loaded.label(), "teardown", why);
        failure.duration = started.elapsed();
        record(shared, failure);
    }
}

async fn teardown(shared: &Shared) {
    for slot in &shared.suites {
        finish_suite(shared, slot, None).await;
    }
    let faults = shared.ledger.remaining();
    if !faults.is_empty() {
        record_run_failure(shared, "leftovers", format!("faults never undone: {}", faults.join(", ")));
    }
    finish_clusters(shared, "cluster-teardown").await;
}

/// Every cluster of the run not finished yet.
async fn finish_clusters(shared: &Shared, failure: &str) {
    let clusters: Vec<_> = shared.clusters.lock().unwrap().values().cloned().collect();
    for place in clusters {
        finish_cluster(shared, &place, failure).await;
    }
}

/// What the run made on the cluster and left looked for, then the cluster
/// deleted if this run created it, or began to (an interrupt reaches `kind
/// create` too, and a creation may still be under way). Once only.
pub(super) async fn finish_cluster(shared: &Shared, place: &ClusterPlace, failure: &str) {
    let mut finished = place.finished.lock().await;
    if *finished {
        return;
    }
    *finished = true;
    let keep = shared.settings.keep;
    let outcome = match place.cluster.get() {
        Some(Ok(cluster)) => {
            if !keep {
                report_leftovers(shared, cluster).await;
            }
            cluster.finish(keep).await
        }
        Some(Err(_)) | None => match &place.choice {
            ClusterChoice::Kind { name, .. } if !keep => kind::delete_unfinished(&shared.settings, name).await,
            _ => Ok(()),
        },
    };
    if let Err(error) = outcome {
        record_run_failure(shared, failure, format!("{error:#}"));
    }
}

/// Anything this run made on the cluster that is still there.
async fn report_leftovers(shared: &Shared, cluster: &Arc<Cluster>) {
    let owners: Vec<String> = shared
        .namespaces
        .lock()
        .unwrap()
        .iter()
        .filter(|(owner_cluster, _)| Arc::ptr_eq(owner_cluster, cluster))
        .map(|(_, name)| name.clone())
        .collect();
    let host_paths = shared.volume_paths.lock().unwrap().clone();
    let mut found = Vec::new();
    for owner in &owners {
        if namespace::exists(&cluster.client, owner).await.unwrap_or(true) {
            found.push(format!("namespace {owner}"));
        }
    }
    match local_volumes::leftovers(cluster, &owners, &host_paths).await {
        Ok(volumes) => found.extend(volumes),
        Err(error) => found.push(format!("(could not look for local volumes: {error:#})")),
    }
    if !found.is_empty() {
        let why = format!("the run made these and could not remove them: {}", found.join(", "));
        eprintln!("stateproof: {why}");
        record_run_failure(shared, "leftovers", why);
    }
}

pub(super) async fn reap_orphans(cluster: &Cluster) {
    if let Ok(orphans) = namespace::orphans(&cluster.client).await {
        for orphan in orphans {
            eprintln!("stateproof: deleting namespace {orphan}, left by an interrupted run");
            let _ = namespace::delete(&cluster.client, &orphan, Duration::ZERO).await;
            let _ = local_volumes::reap(cluster, &orphan).await;
        }
    }
}

fn write_report(shared: &Shared, results: &[TestResult]) {
    report::write_files(&shared.settings.junit_path, &shared.settings.html_path, &shared.run, results);
}

/// Ctrl-C or SIGTERM: report the tests in flight as interrupted, undo every
/// fault, delete what the run created (unless kept) and write the reports
/// before exiting.
pub(super) fn watch_for_interrupt(shared: &Arc<Shared>) {
    let shared = shared.clone();
    let handle = shared.runtime.handle().clone();
    std::thread::spawn(move || {
        handle.block_on(async {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(signal) => { signal.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        shared.ledger.close();
        eprintln!("\nstateproof: interrupted; cleaning up (interrupt again to abandon the cleanup)");
        let again = handle.clone();
        std::thread::spawn(move || {
            let _ = again.block_on(tokio::signal::ctrl_c());
            eprintln!("stateproof: cleanup abandoned");
            std::process::exit(130);
        });
        let running: Vec<_> = shared.running.lock().unwrap().drain().collect();
        for (test, (suite, file, started)) in running {
            let mut interrupted = run_failure(
                &file,
                &suite,
                test.rsplit_once("::").map_or(&test, |(_, name)| name),
                "interrupted".into(),
            );
            interrupted.duration = started.elapsed();
            record(&shared, interrupted);
        }
        let results = shared.results.lock().unwrap().clone();
        write_report(&shared, &results);
        // Now rather than after the cleanup: a cancelled CI job is killed
        // seconds after its interrupt, long before namespaces are deleted.
        github::publish(&shared.run, &results, &shared.settings.html_path);
        handle.block_on(interrupt_cleanup(&shared));
        write_report(&shared, &shared.results.lock().unwrap().clone());
        std::process::exit(130);
    });
}

/// The suite environments may be locked by tests in flight: delete their
/// namespaces by name, then the cluster if this run created it.
async fn interrupt_cleanup(shared: &Shared) {
    let keep = shared.settings.keep;
    for undone in shared.ledger.undo(None, |_| true, NODE_UNDO_WITHIN).await {
        match undone.result {
            Ok(()) => eprintln!("stateproof: undid {}", undone.fault),
            Err(error) => record_run_failure(shared, "interrupt-cleanup", format!("{error:#}")),
        }
    }
    let namespaces = shared.namespaces.lock().unwrap().clone();
    for (cluster, name) in &namespaces {
        let cleaned = if keep {
            namespace::mark_kept(&cluster.client, name).await
        } else {
            let deleted = namespace::delete(&cluster.client, name, Duration::from_secs(120)).await;
            deleted.and(local_volumes::reap(cluster, name).await)
        };
        if let Err(error) = cleaned {
            record_run_failure(shared, "interrupt-cleanup", format!("namespace {name}: {error:#}"));
        }
    }
    finish_clusters(shared, "interrupt-cleanup").await;
}
