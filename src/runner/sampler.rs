//! The bookies sampled every few seconds while a test runs (a suite's
//! `sampling`): replicas asked for, pods, each bookie's state and disk usage,
//! claims, cookies and which bookies each ledger names. `expect-autoscaling`
//! judges the series; the history keeps every sample.

use super::env::SuiteEnv;
use crate::checks::autoscaling::{BookieSample, PodSample, Sample};
use crate::history;
use crate::systems::Bookies;
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// Samples until `stop` turns true; a sample that cannot be taken whole is
/// skipped (and said), never half recorded.
pub async fn sample(
    env: &SuiteEnv,
    bookies: &dyn Bookies,
    every: Duration,
    store: &Mutex<Vec<Sample>>,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let previous = store.lock().unwrap().last().cloned();
        match take(env, bookies, previous.as_ref()).await {
            Ok(sample) => store.lock().unwrap().push(sample),
            Err(error) => eprintln!("stateproof: [{}] a sample could not be taken: {error:#}", env.suite.name),
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}

async fn take(env: &SuiteEnv, bookies: &dyn Bookies, previous: Option<&Sample>) -> Result<Sample> {
    let at = history::now();
    let set = env.sets.get(&env.suite.members.statefulset).await?;
    let replicas = set.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(0).max(0) as u32;
    let selector = crate::k8s::statefulset::selector_of(&set)?;
    let pods = env.members.pods.list(&ListParams::default().labels(&selector)).await.context("listing the pods")?;
    let pods: Vec<PodSample> = pods.items.iter().filter_map(|pod| pod_sample(env, pod)).collect();
    let ordinals: Vec<u32> = pods.iter().map(|pod| pod.ordinal).collect();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.cluster.client.clone(), &env.namespace);
    let all = ListParams::default();
    // At once, so that a sample is close to one moment: a decommission's
    // read-only phase lasts seconds, and a sample as long would miss it.
    let (claims, states, cookies, ledgers) =
        tokio::join!(claims.list(&all), bookies.bookies(&ordinals), bookies.cookies(), bookies.ledgers(&ordinals));
    let claims = claims?.items.iter().map(|claim| claim.name_any()).collect();
    let bookie_samples = states?
        .into_iter()
        .map(|bookie| BookieSample { ordinal: bookie.member, writable: bookie.writable, usage: bookie.usage() })
        .collect();
    // ZooKeeper or a bookie may not answer for a moment: keep what was known.
    // Never known, they are no sample: an empty default would let a check
    // that cookies and ledgers go pass without ever having seen one.
    let cookies = or_known(cookies, previous.map(|sample| &sample.cookies)).context("the bookies' cookies")?;
    let ledgers = or_known(ledgers, previous.map(|sample| &sample.ledgers)).context("the ledgers' bookies")?;
    Ok(Sample { at, replicas, pods, bookies: bookie_samples, claims, cookies, ledgers })
}

fn or_known<T: Clone>(answer: Result<T>, known: Option<&T>) -> Result<T> {
    match (answer, known) {
        (Ok(answer), _) => Ok(answer),
        (Err(_), Some(known)) => Ok(known.clone()),
        (Err(error), None) => Err(error),
    }
}

fn pod_sample(env: &SuiteEnv, pod: &Pod) -> Option<PodSample> {
    let name = pod.name_any();
    let ordinal = env.members.ordinal(&name)?;
    let ready = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|condition| condition.type_ == "Ready");
    let ready_since = ready
        .filter(|condition| condition.status == "True")
        .and_then(|condition| condition.last_transition_time.as_ref())
        .map(|time| time.0.as_millisecond());
    Some(PodSample { name, ordinal, ready_since, terminating: pod.metadata.deletion_timestamp.is_some() })
}

#[cfg(test)]
mod tests {
    use super::or_known;

    #[test]
    fn an_answer_never_had_is_an_error_not_an_empty_set() {
        let failed = || Err::<Vec<u32>, _>(anyhow::anyhow!("no ZooKeeper session"));
        assert!(or_known(failed(), None).is_err());
        assert_eq!(or_known(failed(), Some(&vec![9])).unwrap(), vec![9]);
        assert_eq!(or_known(Ok(vec![10]), Some(&vec![9])).unwrap(), vec![10]);
    }
}
