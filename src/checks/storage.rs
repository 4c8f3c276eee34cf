//! Durable storage: the same claims, with the same identities, bound to the
//! same volumes, before and after the StatefulSet is deleted and re-applied.

use std::collections::BTreeMap;

/// A claim as observed: its uid and the volume it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub uid: String,
    pub volume: Option<String>,
}

/// Claims by name (`<template>-<statefulset>-<ordinal>`).
pub type StorageSnapshot = BTreeMap<String, Claim>;

pub fn same_storage(before: &StorageSnapshot, after: &StorageSnapshot) -> Result<(), String> {
    let mut differences = Vec::new();
    for (name, claim) in before {
        match after.get(name) {
            None => differences.push(format!("claim {name} is gone")),
            Some(now) if now.uid != claim.uid => {
                differences.push(format!("claim {name} was recreated (uid {} -> {})", claim.uid, now.uid))
            }
            Some(now) if now.volume != claim.volume => {
                differences.push(format!("claim {name} moved from volume {:?} to {:?}", claim.volume, now.volume))
            }
            Some(_) => {}
        }
    }
    if differences.is_empty() { Ok(()) } else { Err(differences.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(claims: &[(&str, &str, &str)]) -> StorageSnapshot {
        claims
            .iter()
            .map(|(name, uid, volume)| {
                (name.to_string(), Claim { uid: uid.to_string(), volume: Some(volume.to_string()) })
            })
            .collect()
    }

    #[test]
    fn identical_claims_pass() {
        let before = snapshot(&[("datadir-zk-0", "u0", "pv0")]);
        assert!(same_storage(&before, &before.clone()).is_ok());
    }

    #[test]
    fn a_recreated_claim_fails() {
        let error = same_storage(&snapshot(&[("d-0", "u0", "pv0")]), &snapshot(&[("d-0", "u9", "pv0")])).unwrap_err();
        assert!(error.contains("recreated"), "{error}");
    }

    #[test]
    fn a_moved_or_missing_claim_fails() {
        let before = snapshot(&[("d-0", "u0", "pv0"), ("d-1", "u1", "pv1")]);
        let error = same_storage(&before, &snapshot(&[("d-0", "u0", "pv7")])).unwrap_err();
        assert!(error.contains("moved") && error.contains("d-1 is gone"), "{error}");
    }
}
