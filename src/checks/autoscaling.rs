//! Autoscaling judged over a series of samples of the bookies (taken every
//! couple of seconds while a test runs): the replicas asked for, the pods,
//! each bookie's state and ledger-disk usage, the claims, the cookies and
//! which bookies each ledger names. Each invariant is a pure function over
//! the series; a failure names the first sample that broke it.

use crate::history::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: Millis,
    /// The StatefulSet's `spec.replicas`.
    pub replicas: u32,
    pub pods: Vec<PodSample>,
    /// The bookies that answered, by ordinal.
    pub bookies: Vec<BookieSample>,
    /// Claim names.
    pub claims: BTreeSet<String>,
    /// Pods (by name) whose bookie has a cookie.
    pub cookies: BTreeSet<String>,
    /// Per ledger, the pods whose bookies its metadata names.
    pub ledgers: BTreeMap<u64, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSample {
    pub name: String,
    pub ordinal: u32,
    /// Since when it has been Ready, if it is.
    pub ready_since: Option<Millis>,
    pub terminating: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookieSample {
    pub ordinal: u32,
    pub writable: bool,
    pub usage: f64,
}

/// The invariants a test asks for; each `None` is not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Invariants {
    /// `spec.replicas` never above this (scaleUpMaxLimit).
    #[serde(default)]
    pub replicas_at_most: Option<u32>,
    /// Never fewer writable bookies than this (minWritableBookies).
    #[serde(default)]
    pub writable_at_least: Option<usize>,
    /// No change of `spec.replicas` by more than this at once.
    #[serde(default)]
    pub step_at_most: Option<u32>,
    /// No change of `spec.replicas` unless every pod had been Ready this
    /// long (the stabilization window), and none the opposite way within
    /// it of the last (no flapping).
    #[serde(default, with = "humantime_serde")]
    pub settled_for: Option<std::time::Duration>,
    /// A change within the window is a known defect of the system under
    /// test, which this names: a finding, not a failure (flapping still fails).
    #[serde(default)]
    pub unsettled_is_known: Option<String>,
    /// Every scale-down decommissioned its victim first: the highest
    /// ordinal; read-only before the StatefulSet shrank; named by no ledger
    /// when its pod went; its claims deleted only after its pod; its cookie
    /// gone by the end.
    #[serde(default)]
    pub safe_decommission: bool,
}

impl fmt::Display for Invariants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kept = Vec::new();
        if let Some(limit) = self.replicas_at_most {
            kept.push(format!("at most {limit} replicas"));
        }
        if let Some(floor) = self.writable_at_least {
            kept.push(format!("at least {floor} writable"));
        }
        if let Some(step) = self.step_at_most {
            kept.push(format!("steps of at most {step}"));
        }
        if let Some(window) = self.settled_for {
            kept.push(format!("changes only after {} settled", humantime::format_duration(window)));
        }
        if let Some(defect) = &self.unsettled_is_known {
            kept.push(format!("(an unsettled change is a known defect: {defect})"));
        }
        if self.safe_decommission {
            kept.push("every victim decommissioned first".into());
        }
        f.write_str(&kept.join(", "))
    }
}

/// The first sample that broke an invariant, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub sample: usize,
    pub at: Millis,
    pub why: String,
    /// The known defect this is, when the test names it: a finding.
    pub known_defect: Option<String>,
}

impl Broken {
    fn new(sample: usize, at: Millis, why: String) -> Self {
        Broken { sample, at, why, known_defect: None }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = chrono::DateTime::from_timestamp_millis(self.at)
            .map_or_else(|| self.at.to_string(), |at| at.format("%H:%M:%S%.3f").to_string());
        write!(f, "sample {} at {time}: {}", self.sample + 1, self.why)?;
        match &self.known_defect {
            Some(defect) => write!(f, " (the known defect: {defect})"),
            None => Ok(()),
        }
    }
}

/// Every invariant asked for, over the series: the first broken, per invariant.
pub fn check(samples: &[Sample], invariants: &Invariants) -> Vec<Broken> {
    judge(samples, invariants, Series::Complete)
}

/// The same over a series a failed step cut short: what it already shows,
/// without the rules about how a series ends (claims and cookies gone).
pub fn check_so_far(samples: &[Sample], invariants: &Invariants) -> Vec<Broken> {
    judge(samples, invariants, Series::CutShort)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Series {
    Complete,
    CutShort,
}

fn judge(samples: &[Sample], invariants: &Invariants, series: Series) -> Vec<Broken> {
    let mut broken = Vec::new();
    if let Some(limit) = invariants.replicas_at_most {
        broken.extend(first(samples, |_, sample| {
            (sample.replicas > limit)
                .then(|| format!("{} replicas asked for, more than the {limit} allowed", sample.replicas))
        }));
    }
    if let Some(floor) = invariants.writable_at_least {
        broken.extend(first(samples, |_, sample| {
            let writable = sample.bookies.iter().filter(|bookie| bookie.writable).count();
            (writable < floor).then(|| format!("{writable} writable bookies, fewer than the {floor} required"))
        }));
    }
    if let Some(step) = invariants.step_at_most {
        broken.extend(first(samples, |before, sample| {
            let before = before?.replicas;
            (before.abs_diff(sample.replicas) > step)
                .then(|| format!("replicas went from {before} to {} at once", sample.replicas))
        }));
    }
    if let Some(window) = invariants.settled_for {
        let unsettled = unsettled_change(samples, window.as_millis() as Millis);
        broken.extend(
            unsettled.map(|unsettled| Broken { known_defect: invariants.unsettled_is_known.clone(), ..unsettled }),
        );
        broken.extend(flapping(samples, window.as_millis() as Millis));
    }
    if invariants.safe_decommission {
        broken.extend(unsafe_decommission(samples, series));
    }
    broken
}

/// The first sample (with the one before it) for which `broke` says why.
fn first(samples: &[Sample], broke: impl Fn(Option<&Sample>, &Sample) -> Option<String>) -> Option<Broken> {
    samples.iter().enumerate().find_map(|(index, sample)| {
        let before = index.checked_sub(1).map(|before| &samples[before]);
        broke(before, sample).map(|why| Broken::new(index, sample.at, why))
    })
}

/// A change of replicas while some pod had not been Ready for the window.
fn unsettled_change(samples: &[Sample], window: Millis) -> Option<Broken> {
    first(samples, |before, sample| {
        let before = before?;
        if before.replicas == sample.replicas {
            return None;
        }
        let young = before.pods.iter().find(|pod| pod.ready_since.is_none_or(|since| sample.at - since < window))?;
        let ready = match young.ready_since {
            Some(since) => format!("Ready for {:.1}s", (sample.at - since) as f64 / 1000.0),
            None => "not Ready".to_string(),
        };
        Some(format!(
            "replicas went from {} to {} while {} was {ready}, within the {:.0}s window",
            before.replicas,
            sample.replicas,
            young.name,
            window as f64 / 1000.0
        ))
    })
}

/// A change of replicas the opposite way of the last one within the window.
fn flapping(samples: &[Sample], window: Millis) -> Option<Broken> {
    let mut last: Option<(Millis, i64)> = None;
    for (index, pair) in samples.windows(2).enumerate() {
        let change = i64::from(pair[1].replicas) - i64::from(pair[0].replicas);
        if change == 0 {
            continue;
        }
        if let Some((at, previous)) = last
            && previous.signum() != change.signum()
            && pair[1].at - at < window
        {
            let why = format!(
                "replicas changed by {change:+} {:.1}s after a change by {previous:+}, within the {:.0}s window",
                (pair[1].at - at) as f64 / 1000.0,
                window as f64 / 1000.0
            );
            return Some(Broken::new(index + 1, pair[1].at, why));
        }
        last = Some((pair[1].at, change));
    }
    None
}

/// Each scale-down, judged from the samples around it: the victim is the
/// highest ordinal (the StatefulSet removes it), so it must be the bookie
/// that was decommissioned.
fn unsafe_decommission(samples: &[Sample], series: Series) -> Option<Broken> {
    for (index, pair) in samples.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        if after.replicas >= before.replicas {
            continue;
        }
        let shrink = index + 1;
        let victim = before.pods.iter().max_by_key(|pod| pod.ordinal)?;
        let writable =
            |ordinal: u32| before.bookies.iter().find(|bookie| bookie.ordinal == ordinal).map(|b| b.writable);
        if writable(victim.ordinal) == Some(true) {
            let instead: Vec<String> = before
                .bookies
                .iter()
                .filter(|bookie| !bookie.writable)
                .filter_map(|bookie| before.pods.iter().find(|pod| pod.ordinal == bookie.ordinal))
                .map(|pod| pod.name.clone())
                .collect();
            let instead =
                if instead.is_empty() { String::new() } else { format!("; read-only instead: {}", instead.join(", ")) };
            let why = format!(
                "the StatefulSet shrank while its victim {} (the highest ordinal) was still writable{instead}",
                victim.name
            );
            return Some(Broken::new(shrink, after.at, why));
        }
        let later = &samples[shrink..];
        if let Some(gone) = later.iter().position(|sample| sample.pods.iter().all(|pod| pod.name != victim.name)) {
            let sample = &later[gone];
            let named: Vec<String> = sample
                .ledgers
                .iter()
                .filter(|(_, pods)| pods.contains(&victim.name))
                .map(|(ledger, _)| ledger.to_string())
                .collect();
            if !named.is_empty() {
                let why = format!("{} was gone while ledgers {} still named it", victim.name, named.join(", "));
                return Some(Broken::new(shrink + gone, sample.at, why));
            }
        }
        let claims_of =
            |sample: &Sample| sample.claims.iter().any(|claim| claim.ends_with(&format!("-{}", victim.name)));
        let pod_of = |sample: &Sample| sample.pods.iter().any(|pod| pod.name == victim.name);
        if let Some(early) = samples[index..].iter().position(|sample| !claims_of(sample) && pod_of(sample)) {
            let why = format!("the claims of {} were deleted while its pod still existed", victim.name);
            return Some(Broken::new(index + early, samples[index + early].at, why));
        }
        if series == Series::CutShort {
            continue;
        }
        let last = samples.last()?;
        if claims_of(last) && !pod_of(last) {
            let why = format!("the claims of {} were still there at the end, its pod gone", victim.name);
            return Some(Broken::new(samples.len() - 1, last.at, why));
        }
        if last.cookies.contains(&victim.name) {
            let why = format!("the cookie of {} was still there at the end", victim.name);
            return Some(Broken::new(samples.len() - 1, last.at, why));
        }
    }
    None
}

#[cfg(test)]
mod tests;
