//! Durable storage: the server's data on claimed volumes, and the same
//! claims, with the same identities, bound to the same volumes, before and
//! after the StatefulSet is deleted and re-applied or a pod recreated.

use std::collections::BTreeMap;

/// A claim as observed: its uid, the volume it is bound to, and whether it
/// is being deleted (a claim deleted with its StatefulSet lingers until its
/// pod is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub uid: String,
    pub volume: Option<String>,
    pub deleting: bool,
}

/// Claims by name (`<template>-<statefulset>-<ordinal>`).
pub type StorageSnapshot = BTreeMap<String, Claim>;

/// Remembered claims against the claims now: the same, different for
/// good (recreated, or bound to another volume), or not yet decided (a claim
/// not back yet, or not bound yet).
#[derive(Debug, PartialEq, Eq)]
pub enum Comparison {
    Same,
    Differs(String),
    NotYet(String),
}

pub fn compare(before: &StorageSnapshot, after: &StorageSnapshot) -> Comparison {
    let mut differences = Vec::new();
    let mut waiting = Vec::new();
    for (name, claim) in before {
        match after.get(name) {
            None => waiting.push(format!("claim {name} is gone")),
            Some(Claim { deleting: true, .. }) => waiting.push(format!("claim {name} is being deleted")),
            Some(now) if now.uid != claim.uid => {
                differences.push(format!("claim {name} was recreated (uid {} -> {})", claim.uid, now.uid))
            }
            Some(Claim { volume: None, .. }) => waiting.push(format!("claim {name} is not bound")),
            Some(now) if now.volume != claim.volume => {
                differences.push(format!("claim {name} moved from volume {:?} to {:?}", claim.volume, now.volume))
            }
            Some(_) => {}
        }
    }
    match (differences.is_empty(), waiting.is_empty()) {
        (false, _) => Comparison::Differs(differences.join("; ")),
        (true, false) => Comparison::NotYet(waiting.join("; ")),
        (true, true) => Comparison::Same,
    }
}

/// A volume mounted into the server's container.
#[derive(Debug, Clone)]
pub struct Mount {
    pub path: String,
    pub volume: String,
    /// Backed by a PersistentVolumeClaim (not an emptyDir, a configMap...).
    pub claimed: bool,
}

/// Each of the server's data directories must lie on a claimed volume:
/// anywhere else its data is lost with the pod.
pub fn data_on_claims(pod: &str, directories: &[String], mounts: &[Mount]) -> Result<(), String> {
    let claimed: Vec<String> = mounts
        .iter()
        .filter(|mount| mount.claimed)
        .map(|mount| format!("{} at {}", mount.volume, mount.path))
        .collect();
    let claimed = if claimed.is_empty() { "none".to_string() } else { claimed.join(", ") };
    let mut problems = Vec::new();
    for directory in directories {
        let holder =
            mounts.iter().filter(|mount| lies_under(directory, &mount.path)).max_by_key(|mount| mount.path.len());
        match holder {
            Some(mount) if mount.claimed => {}
            Some(mount) => problems.push(format!(
                "{pod}'s data directory {directory} is on volume {} (mounted at {}), which no claim backs",
                mount.volume, mount.path
            )),
            None => problems.push(format!(
                "{pod}'s data directory {directory} is on no volume: the container's own filesystem, lost with the pod"
            )),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("{} (claimed volumes: {claimed})", problems.join("; "))) }
}

fn lies_under(path: &str, mount: &str) -> bool {
    let mount = mount.trim_end_matches('/');
    path == mount || path.strip_prefix(mount).is_some_and(|rest| rest.starts_with('/')) || mount.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(claims: &[(&str, &str, &str)]) -> StorageSnapshot {
        claims
            .iter()
            .map(|(name, uid, volume)| {
                let claim = Claim { uid: uid.to_string(), volume: Some(volume.to_string()), deleting: false };
                (name.to_string(), claim)
            })
            .collect()
    }

    #[test]
    fn identical_claims_are_the_same() {
        let before = snapshot(&[("datadir-zk-0", "u0", "pv0")]);
        assert_eq!(compare(&before, &before.clone()), Comparison::Same);
    }

    #[test]
    fn a_recreated_claim_differs_at_once_even_while_another_is_not_back() {
        let before = snapshot(&[("d-0", "u0", "pv0"), ("d-1", "u1", "pv1")]);
        let mut after = snapshot(&[("d-0", "u9", "pv0")]);
        assert_eq!(compare(&before, &after), Comparison::Differs("claim d-0 was recreated (uid u0 -> u9)".into()));
        after.insert("d-0".into(), Claim { uid: "u0".into(), volume: Some("pv7".into()), deleting: false });
        assert!(matches!(compare(&before, &after), Comparison::Differs(why) if why.contains("moved")));
    }

    #[test]
    fn a_claim_not_back_or_not_bound_is_not_decided_yet() {
        let before = snapshot(&[("d-0", "u0", "pv0"), ("d-1", "u1", "pv1")]);
        let mut after = snapshot(&[("d-0", "u0", "pv0")]);
        after.insert("d-1".into(), Claim { uid: "u1".into(), volume: None, deleting: false });
        assert_eq!(compare(&before, &after), Comparison::NotYet("claim d-1 is not bound".into()));
        after.insert("d-1".into(), Claim { uid: "u1".into(), volume: Some("pv1".into()), deleting: true });
        assert_eq!(compare(&before, &after), Comparison::NotYet("claim d-1 is being deleted".into()));
        after.remove("d-1");
        assert_eq!(compare(&before, &after), Comparison::NotYet("claim d-1 is gone".into()));
    }

    fn mount(path: &str, volume: &str, claimed: bool) -> Mount {
        Mount { path: path.into(), volume: volume.into(), claimed }
    }

    #[test]
    fn data_on_claimed_volumes_passes_and_elsewhere_fails_naming_where_it_is() {
        let mounts = [
            mount("/pulsar/data/bookkeeper/journal", "journal-disk", true),
            mount("/pulsar/data/bookkeeper/ledgers-unused", "ledgers-disk", true),
            mount("/var/lib/zk", "scratch", false),
        ];
        let journal = "/pulsar/data/bookkeeper/journal".to_string();
        assert!(data_on_claims("bookie-0", std::slice::from_ref(&journal), &mounts).is_ok());
        let ledgers = "/pulsar/data/bookkeeper/ledgers".to_string();
        let error = data_on_claims("bookie-0", &[journal, ledgers], &mounts).unwrap_err();
        assert_eq!(
            error,
            "bookie-0's data directory /pulsar/data/bookkeeper/ledgers is on no volume: the container's own \
             filesystem, lost with the pod (claimed volumes: journal-disk at /pulsar/data/bookkeeper/journal, \
             ledgers-disk at /pulsar/data/bookkeeper/ledgers-unused)"
        );
        let error = data_on_claims("zk-0", &["/var/lib/zk/data/version-2".into()], &mounts).unwrap_err();
        assert!(error.contains("is on volume scratch (mounted at /var/lib/zk), which no claim backs"), "{error}");
    }
}
