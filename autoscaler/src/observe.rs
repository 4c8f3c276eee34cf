//! One period's look at the bookies: the StatefulSet and its pods, the gate
//! that says whether they have settled, and each bookie's own view of its
//! state and disks.

use crate::bookie_http::{BookieHttp, ClusterInfo};
use crate::decide::{self, Bookie, Replication};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams};

/// The pods the StatefulSet controls, by its own selector, in ordinal order.
pub async fn pods(api: &Api<Pod>, statefulset: &StatefulSet) -> Result<Vec<Pod>> {
    let name = statefulset.metadata.name.clone().unwrap_or_default();
    let selector = statefulset.spec.as_ref().map(|spec| &spec.selector).context("a StatefulSet without spec")?;
    let listed = api.list(&ListParams::default().labels(&selector_text(selector)?)).await?;
    let mut pods: Vec<Pod> = listed.items.into_iter().filter(|pod| controlled_by(pod, &name)).collect();
    pods.sort_by_key(|pod| decide::ordinal(&name, pod.metadata.name.as_deref().unwrap_or_default()));
    Ok(pods)
}

/// A label selector in the list API's text form.
fn selector_text(selector: &LabelSelector) -> Result<String> {
    let mut terms: Vec<String> =
        selector.match_labels.iter().flatten().map(|(key, value)| format!("{key}={value}")).collect();
    for expression in selector.match_expressions.iter().flatten() {
        let (key, values) = (&expression.key, expression.values.clone().unwrap_or_default().join(","));
        terms.push(match expression.operator.as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => bail!("unknown selector operator {other:?}"),
        });
    }
    Ok(terms.join(","))
}

fn controlled_by(pod: &Pod, statefulset: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|owner| owner.controller == Some(true) && owner.kind == "StatefulSet" && owner.name == statefulset)
}

pub fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

pub fn ip(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())
}

/// The gate: the StatefulSet has rolled out to exactly its replicas, and
/// every one of its pods has been Ready for the whole window (`None`: no
/// window, the self-check's defect). Readiness, not the pod's start time: a
/// bookie that was restarted or read-only a minute ago has not settled.
/// `Err` says what is still moving.
pub fn settled(statefulset: &StatefulSet, pods: &[Pod], now_ms: i64, window_ms: Option<u64>) -> Result<(), String> {
    let spec = statefulset.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1);
    let status = statefulset.status.as_ref().ok_or("the StatefulSet has no status yet")?;
    let generation = statefulset.metadata.generation.unwrap_or_default();
    if status.observed_generation.unwrap_or_default() < generation {
        return Err(format!("the StatefulSet controller has not yet seen generation {generation}"));
    }
    if status.current_revision.is_none() || status.current_revision != status.update_revision {
        return Err(format!(
            "rolling out: currentRevision {:?}, updateRevision {:?}",
            status.current_revision, status.update_revision
        ));
    }
    let counts = [
        ("replicas", status.replicas),
        ("readyReplicas", status.ready_replicas.unwrap_or_default()),
        ("updatedReplicas", status.updated_replicas.unwrap_or_default()),
    ];
    if let Some((field, count)) = counts.iter().find(|(_, count)| *count != spec) {
        return Err(format!("status.{field} is {count}, spec.replicas {spec}"));
    }
    // Terminating pods are still listed, and count: they close the gate.
    if pods.len() != spec as usize {
        return Err(format!("{} pods for {spec} replicas", pods.len()));
    }
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(format!("pod {} is terminating", name(pod)));
        }
        if ip(pod).is_none() {
            return Err(format!("pod {} has no IP yet", name(pod)));
        }
        let ready = pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .and_then(|conditions| conditions.iter().find(|condition| condition.type_ == "Ready"));
        let Some(ready) = ready.filter(|ready| ready.status == "True") else {
            return Err(format!("pod {} is not Ready", name(pod)));
        };
        let Some(window_ms) = window_ms else { continue };
        let since = ready.last_transition_time.as_ref().map_or(now_ms, |time| time.0.as_millisecond());
        let ready_ms = now_ms - since;
        if ready_ms < window_ms as i64 {
            return Err(format!(
                "pod {} has been Ready for {}s, less than stabilizationWindowMs ({}s)",
                name(pod),
                ready_ms / 1000,
                window_ms / 1000
            ));
        }
    }
    Ok(())
}

/// Each bookie's state and disks, from its own HTTP API. One that does not
/// answer fails the whole observation: deciding without it could count a
/// dead bookie as writable (ZooKeeper keeps it registered until its session
/// expires).
pub async fn bookies(pods: &[Pod], port: u16) -> Result<Vec<Bookie>> {
    let mut bookies = Vec::new();
    for pod in pods {
        let http = http(pod, port)?;
        let state = http.state().await.with_context(|| format!("bookie {}", name(pod)))?;
        let info = http.info().await.with_context(|| format!("bookie {}", name(pod)))?;
        bookies.push(Bookie {
            pod: name(pod).to_string(),
            writable: state.writable(),
            free_space: info.free_space,
            total_space: info.total_space,
        });
    }
    Ok(bookies)
}

/// The cluster's replication as one bookie reports it.
pub async fn replication(pod: &Pod, port: u16) -> Replication {
    match http(pod, port) {
        Ok(http) => match http.cluster_info().await {
            Ok(info) => replication_of(&info),
            Err(error) => Replication::Unknown(format!("cluster_info from {}: {error:#}", name(pod))),
        },
        Err(error) => Replication::Unknown(format!("{error:#}")),
    }
}

/// Only an elected auditor with replication enabled vouches for "no
/// under-replicated ledgers": without an auditor nothing is ever marked, and
/// with replication disabled the auditor marks nothing either (seen on 4.17:
/// a killed bookie's ledgers stayed unmarked).
fn replication_of(info: &ClusterInfo) -> Replication {
    if !info.auditor_elected {
        Replication::Unknown("no auditor elected, so no ledger is ever marked under-replicated".into())
    } else if !info.ledger_replication_enabled {
        Replication::Unknown("ledger replication is disabled, so the auditor marks nothing".into())
    } else if info.cluster_under_replicated {
        Replication::UnderReplicated
    } else {
        Replication::Healthy
    }
}

pub fn http(pod: &Pod, port: u16) -> Result<BookieHttp> {
    let host = ip(pod).with_context(|| format!("pod {} has no IP", name(pod)))?;
    Ok(BookieHttp { host: host.to_string(), port })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetSpec, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};
    use k8s_openapi::jiff::Timestamp;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000_000;
    const WINDOW: Option<u64> = Some(300_000);

    fn statefulset(replicas: i32) -> StatefulSet {
        let mut statefulset = StatefulSet::default();
        statefulset.metadata.generation = Some(2);
        statefulset.spec = Some(StatefulSetSpec { replicas: Some(replicas), ..StatefulSetSpec::default() });
        statefulset.status = Some(StatefulSetStatus {
            observed_generation: Some(2),
            replicas,
            ready_replicas: Some(replicas),
            updated_replicas: Some(replicas),
            current_revision: Some("bookie-6d4f".into()),
            update_revision: Some("bookie-6d4f".into()),
            ..StatefulSetStatus::default()
        });
        statefulset
    }

    /// A pod Ready since `ready_ms_ago`.
    fn pod(ordinal: u32, ready_ms_ago: i64) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(format!("bookie-{ordinal}"));
        let since = Timestamp::from_millisecond(NOW - ready_ms_ago).unwrap();
        pod.status = Some(PodStatus {
            pod_ip: Some(format!("10.0.0.{ordinal}")),
            // Started long ago: only readiness may matter.
            start_time: Some(Time(Timestamp::from_millisecond(NOW - 86_400_000).unwrap())),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(since)),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        pod
    }

    fn settled_pods(n: u32) -> Vec<Pod> {
        (0..n).map(|i| pod(i, 600_000)).collect()
    }

    #[test]
    fn a_rolled_out_set_of_long_ready_pods_is_settled() {
        assert_eq!(settled(&statefulset(3), &settled_pods(3), NOW, WINDOW), Ok(()));
    }

    #[test]
    fn readiness_not_start_time_counts() {
        let mut pods = settled_pods(3);
        pods[1] = pod(1, 3_000);
        let why = settled(&statefulset(3), &pods, NOW, WINDOW).unwrap_err();
        assert_eq!(why, "pod bookie-1 has been Ready for 3s, less than stabilizationWindowMs (300s)");
    }

    #[test]
    fn defect_no_stabilization_lets_a_just_ready_pod_through() {
        let mut pods = settled_pods(3);
        pods[1] = pod(1, 3_000);
        assert_eq!(settled(&statefulset(3), &pods, NOW, None), Ok(()));
    }

    #[test]
    fn a_pod_not_ready_closes_the_gate() {
        let mut pods = settled_pods(3);
        pods[2].status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        assert_eq!(settled(&statefulset(3), &pods, NOW, None), Err("pod bookie-2 is not Ready".into()));
    }

    #[test]
    fn terminating_and_missing_pods_close_the_gate() {
        let mut pods = settled_pods(3);
        pods[2].metadata.deletion_timestamp = Some(Time(Timestamp::from_millisecond(NOW).unwrap()));
        assert_eq!(settled(&statefulset(3), &pods, NOW, WINDOW), Err("pod bookie-2 is terminating".into()));
        pods.push(pod(3, 600_000));
        assert_eq!(settled(&statefulset(3), &pods, NOW, WINDOW), Err("4 pods for 3 replicas".into()));
        assert_eq!(settled(&statefulset(3), &pods[..2], NOW, WINDOW), Err("2 pods for 3 replicas".into()));
    }

    #[test]
    fn a_statefulset_still_moving_closes_the_gate() {
        let mut rolling = statefulset(3);
        rolling.status.as_mut().unwrap().update_revision = Some("bookie-7a1c".into());
        assert!(settled(&rolling, &settled_pods(3), NOW, WINDOW).unwrap_err().starts_with("rolling out"));

        let mut unready = statefulset(3);
        unready.status.as_mut().unwrap().ready_replicas = Some(2);
        assert_eq!(
            settled(&unready, &settled_pods(3), NOW, WINDOW),
            Err("status.readyReplicas is 2, spec.replicas 3".into())
        );

        let mut scaled = statefulset(3);
        scaled.spec.as_mut().unwrap().replicas = Some(4);
        assert_eq!(
            settled(&scaled, &settled_pods(3), NOW, WINDOW),
            Err("status.replicas is 3, spec.replicas 4".into())
        );

        let mut unseen = statefulset(3);
        unseen.metadata.generation = Some(3);
        assert!(settled(&unseen, &settled_pods(3), NOW, WINDOW).unwrap_err().contains("generation 3"));
    }

    #[test]
    fn only_an_auditor_with_replication_on_vouches_for_the_data() {
        let info = |auditor_elected, cluster_under_replicated, ledger_replication_enabled| ClusterInfo {
            auditor_elected,
            cluster_under_replicated,
            ledger_replication_enabled,
        };
        assert_eq!(replication_of(&info(true, false, true)), Replication::Healthy);
        assert_eq!(replication_of(&info(true, true, true)), Replication::UnderReplicated);
        assert!(
            matches!(replication_of(&info(false, false, true)), Replication::Unknown(why) if why.contains("no auditor"))
        );
        assert!(
            matches!(replication_of(&info(true, false, false)), Replication::Unknown(why) if why.contains("disabled"))
        );
    }

    #[test]
    fn selectors_become_list_queries() {
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_string(), "bookie".to_string())])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["a".into(), "b".into()]),
                },
                LabelSelectorRequirement { key: "canary".into(), operator: "DoesNotExist".into(), values: None },
            ]),
        };
        assert_eq!(selector_text(&selector).unwrap(), "app=bookie,tier in (a,b),!canary");
        let odd = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..LabelSelector::default()
        };
        assert!(selector_text(&odd).is_err());
    }
}
