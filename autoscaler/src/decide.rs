//! The scaling decision: a pure function of one period's observations.
//! KAAP's rules (oracles.md §D.3), with three of its defects removed: the
//! upper clamp never shrinks the set, a scale-down needs the replication to
//! be known healthy, and the victim is the highest ordinal.

use crate::config::{Autoscaler, Defect};

/// What one period saw of a bookie.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookie {
    pub pod: String,
    pub writable: bool,
    pub free_space: i64,
    pub total_space: i64,
}

impl Bookie {
    /// The used share of its ledger disks; `None` when it reports no disk,
    /// which counts as at risk.
    fn usage(&self) -> Option<f64> {
        (self.total_space > 0).then(|| (self.total_space - self.free_space) as f64 / self.total_space as f64)
    }

    fn at_least(&self, threshold: f64) -> bool {
        self.usage().is_none_or(|usage| usage >= threshold)
    }

    fn describe_usage(&self) -> String {
        self.usage().map_or_else(|| "no disk space reported".into(), |usage| format!("{:.1}% used", usage * 100.0))
    }
}

/// Whether the cluster's ledgers are known to be fully replicated.
#[derive(Debug, Clone, PartialEq)]
pub enum Replication {
    /// An auditor is elected, replication is enabled and no ledger is
    /// marked under-replicated.
    Healthy,
    UnderReplicated,
    /// Why the cluster cannot tell (no auditor, replication disabled, the
    /// bookie did not answer).
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub statefulset: String,
    /// The StatefulSet's `spec.replicas`.
    pub replicas: u32,
    pub bookies: Vec<Bookie>,
    pub replication: Replication,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Stay {
        why: String,
    },
    ScaleUp {
        from: u32,
        to: u32,
        why: String,
    },
    /// `victims` in the order they go, one per replica removed.
    ScaleDown {
        from: u32,
        to: u32,
        victims: Vec<String>,
        decommission: bool,
        why: String,
    },
}

pub fn decide(policy: &Autoscaler, defect: Option<Defect>, observed: &Observed) -> Decision {
    let ignore_min = defect == Some(Defect::IgnoreMinWritable);
    let min = policy.min_writable_bookies;
    let writable: Vec<&Bookie> = observed.bookies.iter().filter(|bookie| bookie.writable).collect();
    let w = writable.len() as u32;
    let at_risk: Vec<&str> = writable
        .iter()
        .filter(|bookie| bookie.at_least(policy.disk_usage_tolerance_hwm))
        .map(|bookie| bookie.pod.as_str())
        .collect();
    let a = at_risk.len() as u32;
    let current = observed.replicas;

    let mut add = 0;
    let mut why = Vec::new();
    if w < min && !ignore_min {
        add += min - w;
        why.push(format!("{w} writable bookies, fewer than minWritableBookies {min}"));
    }
    // Extra room only when the bookies not at risk would not cover the
    // minimum (KAAP's rule: at-risk bookies alone do not scale up).
    if a > 0 && (w - a) < min.saturating_sub(add) {
        add += policy.scale_up_by;
        why.push(format!("{a} writable bookies at or above diskUsageToleranceHwm: {}", at_risk.join(", ")));
    }
    if add > 0 {
        let to = (current + add).min(policy.scale_up_max_limit);
        if to <= current {
            return Decision::Stay {
                why: format!(
                    "{}, but {current} replicas already reach scaleUpMaxLimit {}",
                    why.join("; "),
                    policy.scale_up_max_limit
                ),
            };
        }
        return Decision::ScaleUp { from: current, to, why: why.join("; ") };
    }

    let floor = if ignore_min { 0 } else { min };
    if w <= floor {
        return Decision::Stay { why: format!("{w} writable bookies ({a} at risk); nothing to add or release") };
    }
    // Read-only bookies are ignored here, as in KAAP: they hold no new data.
    if let Some(busy) = writable.iter().find(|bookie| bookie.at_least(policy.disk_usage_tolerance_lwm)) {
        return Decision::Stay {
            why: format!(
                "cannot scale down: {} has {}, not below diskUsageToleranceLwm {}",
                busy.pod,
                busy.describe_usage(),
                policy.disk_usage_tolerance_lwm
            ),
        };
    }
    match &observed.replication {
        Replication::Healthy => {}
        Replication::UnderReplicated => {
            return Decision::Stay { why: "cannot scale down: the auditor lists under-replicated ledgers".into() };
        }
        Replication::Unknown(reason) => {
            return Decision::Stay { why: format!("cannot scale down: under-replication unknown ({reason})") };
        }
    }
    let remove = policy.scale_down_by.min(w - floor).min(current);
    let to = current - remove;
    let names: Vec<&str> = observed.bookies.iter().map(|bookie| bookie.pod.as_str()).collect();
    Decision::ScaleDown {
        from: current,
        to,
        victims: victims(&observed.statefulset, &names, remove as usize, defect == Some(Defect::StringOrderVictim)),
        decommission: defect != Some(Defect::NoDecommission),
        why: format!(
            "{w} writable bookies, all below diskUsageToleranceLwm {}, no under-replicated ledgers; \
             releasing {remove} of {} above minWritableBookies {min}",
            policy.disk_usage_tolerance_lwm,
            w - floor
        ),
    }
}

/// The pods a StatefulSet removes when it shrinks: its highest ordinals,
/// highest first. With `string_order` (the self-check's copy of KAAP's
/// defect) the last names in string order instead, which differ from ten
/// pods on (`bookie-9` sorts after `bookie-10`).
pub fn victims(statefulset: &str, pods: &[&str], count: usize, string_order: bool) -> Vec<String> {
    let mut names: Vec<&str> = pods.to_vec();
    if string_order {
        names.sort_unstable();
    } else {
        names.sort_by_key(|name| ordinal(statefulset, name));
    }
    names.iter().rev().take(count).map(|name| name.to_string()).collect()
}

/// A StatefulSet pod's ordinal, from its name `<statefulset>-<n>`.
pub fn ordinal(statefulset: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(statefulset)?.strip_prefix('-')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK: i64 = 1_000_000;

    /// A bookie at `used` percent of a 1,000,000-byte disk, as in KAAP's tests.
    fn bookie(ordinal: u32, writable: bool, used: i64) -> Bookie {
        Bookie { pod: format!("bookie-{ordinal}"), writable, free_space: DISK - DISK * used / 100, total_space: DISK }
    }

    fn observed(bookies: Vec<Bookie>, replication: Replication) -> Observed {
        Observed { statefulset: "bookie".into(), replicas: bookies.len() as u32, bookies, replication }
    }

    /// `n` bookies at `used` percent, the ones in `read_only` not writable.
    fn cluster(n: u32, used: i64, read_only: &[u32]) -> Vec<Bookie> {
        (0..n).map(|i| bookie(i, !read_only.contains(&i), used)).collect()
    }

    fn decide_default(observed: &Observed) -> Decision {
        decide(&Autoscaler::default(), None, observed)
    }

    fn target(decision: &Decision) -> Option<u32> {
        match decision {
            Decision::Stay { .. } => None,
            Decision::ScaleUp { to, .. } | Decision::ScaleDown { to, .. } => Some(*to),
        }
    }

    // KAAP's upstream unit cases (BookKeeperAutoscalerTest), oracles §D.3.

    #[test]
    fn one_of_three_read_only_adds_one() {
        let decision = decide_default(&observed(cluster(3, 10, &[1]), Replication::Healthy));
        assert_eq!(target(&decision), Some(4), "{decision:?}");
    }

    #[test]
    fn three_healthy_bookies_stay() {
        let decision = decide_default(&observed(cluster(3, 10, &[]), Replication::Healthy));
        assert_eq!(target(&decision), None, "{decision:?}");
    }

    #[test]
    fn two_of_three_read_only_add_two() {
        let decision = decide_default(&observed(cluster(3, 10, &[0, 2]), Replication::Healthy));
        assert_eq!(target(&decision), Some(5), "{decision:?}");
    }

    #[test]
    fn no_replicas_grow_to_the_minimum() {
        let decision = decide_default(&observed(vec![], Replication::Unknown("no bookie".into())));
        assert_eq!(
            decision,
            Decision::ScaleUp { from: 0, to: 3, why: "0 writable bookies, fewer than minWritableBookies 3".into() }
        );
    }

    #[test]
    fn three_full_bookies_add_one() {
        let decision = decide_default(&observed(cluster(3, 99, &[]), Replication::Healthy));
        assert_eq!(target(&decision), Some(4), "{decision:?}");
    }

    #[test]
    fn one_read_only_and_one_full_add_two() {
        let mut bookies = cluster(3, 10, &[0]);
        bookies[1] = bookie(1, true, 99);
        let decision = decide_default(&observed(bookies, Replication::Healthy));
        assert_eq!(target(&decision), Some(5), "{decision:?}");
    }

    #[test]
    fn four_empty_bookies_release_the_highest_ordinal() {
        let decision = decide_default(&observed(cluster(4, 1, &[]), Replication::Healthy));
        let Decision::ScaleDown { from, to, victims, decommission, .. } = decision else { panic!("{decision:?}") };
        assert_eq!((from, to, victims, decommission), (4, 3, vec!["bookie-3".to_string()], true));
    }

    #[test]
    fn four_empty_bookies_stay_while_replication_is_not_known_healthy() {
        for replication in [Replication::UnderReplicated, Replication::Unknown("no auditor elected".into())] {
            let decision = decide_default(&observed(cluster(4, 1, &[]), replication));
            let Decision::Stay { why } = &decision else { panic!("{decision:?}") };
            assert!(why.contains("under-replicat"), "{why}");
        }
    }

    #[test]
    fn four_bookies_one_read_only_stay() {
        let decision = decide_default(&observed(cluster(4, 1, &[2]), Replication::Healthy));
        assert_eq!(target(&decision), None, "{decision:?}");
    }

    #[test]
    fn five_bookies_one_full_stay() {
        let mut bookies = cluster(5, 1, &[]);
        bookies[4] = bookie(4, true, 99);
        let decision = decide_default(&observed(bookies, Replication::Healthy));
        let Decision::Stay { why } = &decision else { panic!("{decision:?}") };
        assert!(why.contains("bookie-4 has 99.0% used, not below diskUsageToleranceLwm"), "{why}");
    }

    // Beyond KAAP's cases.

    #[test]
    fn the_band_between_the_thresholds_holds_still() {
        // 80%: below HWM (no scale-up), not below LWM (no scale-down).
        let decision = decide_default(&observed(cluster(5, 80, &[]), Replication::Healthy));
        assert_eq!(target(&decision), None, "{decision:?}");
    }

    #[test]
    fn a_bookie_without_disk_is_at_risk() {
        let mut bookies = cluster(3, 10, &[]);
        bookies[0].total_space = 0;
        let decision = decide_default(&observed(bookies, Replication::Healthy));
        assert_eq!(target(&decision), Some(4), "{decision:?}");
    }

    #[test]
    fn read_only_bookies_do_not_block_a_scale_down() {
        // 5 replicas, bookie-1 read-only and full: W = 4 > 3.
        let mut bookies = cluster(5, 1, &[]);
        bookies[1] = bookie(1, false, 99);
        let decision = decide_default(&observed(bookies, Replication::Healthy));
        assert_eq!(target(&decision), Some(4), "{decision:?}");
    }

    #[test]
    fn a_scale_down_stops_at_the_minimum_and_at_scale_down_by() {
        let policy = Autoscaler { scale_down_by: 5, ..Autoscaler::default() };
        let decision = decide(&policy, None, &observed(cluster(5, 1, &[]), Replication::Healthy));
        let Decision::ScaleDown { to, victims, .. } = decision else { panic!("{decision:?}") };
        assert_eq!((to, victims), (3, vec!["bookie-4".to_string(), "bookie-3".to_string()]));
        let policy = Autoscaler { scale_down_by: 1, ..Autoscaler::default() };
        let decision = decide(&policy, None, &observed(cluster(6, 1, &[]), Replication::Healthy));
        assert_eq!(target(&decision), Some(5), "{decision:?}");
    }

    #[test]
    fn growth_stops_at_the_upper_limit() {
        let policy = Autoscaler { scale_up_max_limit: 4, ..Autoscaler::default() };
        let decision = decide(&policy, None, &observed(cluster(3, 10, &[0, 1, 2]), Replication::Healthy));
        assert_eq!(target(&decision), Some(4), "{decision:?}");
        let at_limit = decide(&policy, None, &observed(cluster(4, 99, &[]), Replication::Healthy));
        let Decision::Stay { why } = &at_limit else { panic!("{at_limit:?}") };
        assert!(why.contains("reach scaleUpMaxLimit 4"), "{why}");
    }

    #[test]
    fn above_the_upper_limit_a_scale_up_never_shrinks() {
        // KAAP clamps 8 to 5 here: a scale-down by three without any check.
        let policy = Autoscaler { scale_up_max_limit: 5, ..Autoscaler::default() };
        let decision = decide(&policy, None, &observed(cluster(8, 99, &[]), Replication::Healthy));
        assert_eq!(target(&decision), None, "{decision:?}");
        let needed = decide(&policy, None, &observed(cluster(8, 10, &[0, 1, 2, 3, 4, 5, 6]), Replication::Healthy));
        assert_eq!(target(&needed), None, "{needed:?}");
    }

    #[test]
    fn above_the_upper_limit_only_a_checked_scale_down_shrinks() {
        let policy = Autoscaler { scale_up_max_limit: 5, ..Autoscaler::default() };
        let decision = decide(&policy, None, &observed(cluster(8, 1, &[]), Replication::Healthy));
        assert_eq!(target(&decision), Some(7), "{decision:?}");
        let blocked = decide(&policy, None, &observed(cluster(8, 1, &[]), Replication::UnderReplicated));
        assert_eq!(target(&blocked), None, "{blocked:?}");
    }

    #[test]
    fn the_victim_is_the_highest_ordinal_by_number() {
        let decision = decide_default(&observed(cluster(11, 1, &[]), Replication::Healthy));
        let Decision::ScaleDown { victims, .. } = decision else { panic!("{decision:?}") };
        assert_eq!(victims, ["bookie-10"]);
    }

    // Each self-check defect changes the decision the way it should.

    #[test]
    fn defect_string_order_victim_picks_bookie_9_of_11() {
        let decision = decide(
            &Autoscaler::default(),
            Some(Defect::StringOrderVictim),
            &observed(cluster(11, 1, &[]), Replication::Healthy),
        );
        let Decision::ScaleDown { victims, .. } = decision else { panic!("{decision:?}") };
        assert_eq!(victims, ["bookie-9"]);
    }

    #[test]
    fn defect_no_decommission_shrinks_without_decommission() {
        let decision = decide(
            &Autoscaler::default(),
            Some(Defect::NoDecommission),
            &observed(cluster(4, 1, &[]), Replication::Healthy),
        );
        let Decision::ScaleDown { to, decommission, .. } = decision else { panic!("{decision:?}") };
        assert_eq!((to, decommission), (3, false));
    }

    #[test]
    fn defect_ignore_min_writable_neither_adds_nor_stops_at_the_minimum() {
        let defect = Some(Defect::IgnoreMinWritable);
        let policy = Autoscaler::default();
        let none_writable = decide(&policy, defect, &observed(cluster(3, 10, &[0, 1, 2]), Replication::Healthy));
        assert_eq!(target(&none_writable), None, "{none_writable:?}");
        let at_minimum = decide(&policy, defect, &observed(cluster(3, 1, &[]), Replication::Healthy));
        assert_eq!(target(&at_minimum), Some(2), "{at_minimum:?}");
    }

    #[test]
    fn victims_and_ordinals() {
        let pods = ["bookie-10", "bookie-2", "bookie-9", "bookie-1"];
        assert_eq!(victims("bookie", &pods, 2, false), ["bookie-10", "bookie-9"]);
        assert_eq!(victims("bookie", &pods, 2, true), ["bookie-9", "bookie-2"]);
        assert_eq!(ordinal("bookie", "bookie-12"), Some(12));
        assert_eq!(ordinal("bookie", "bookie-x"), None);
        assert_eq!(ordinal("bookie", "bookies-1"), None);
    }
}
