//! The bookies as autoscaling suites watch and drive them: state and disk
//! usage from each bookie's HTTP admin API, read-only mode set through it,
//! the ledger disk filled with a file of the test's own, the ledgers'
//! metadata (which bookies each names) and the cookies in ZooKeeper.

use super::Pulsar;
use crate::k8s::{exec, proxy};
use crate::suite::Member;
use crate::systems::reach::Reach;
use crate::systems::{Bookie, Bookies};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use zookeeper_client::Client;

/// Where BookKeeper keeps its metadata: a ZooKeeper StatefulSet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetadataStore {
    statefulset: String,
    port: u16,
    /// The ledgers root (`zk+hierarchical://…/ledgers`).
    #[serde(default = "default_root")]
    root: String,
}

impl Default for MetadataStore {
    fn default() -> Self {
        MetadataStore { statefulset: "zk".into(), port: 2181, root: default_root() }
    }
}

fn default_root() -> String {
    "/ledgers".into()
}

pub fn default_ledger_dir() -> String {
    "/pulsar/data/bookkeeper/ledgers".into()
}

/// The file a test fills a ledger disk with.
const FILLER: &str = "stateproof-filler";
/// A filler never grows beyond 8 GiB: a ledger directory that is not a
/// disk of its own (a mix-up of volumes) reports the node's disk, which
/// must not be filled.
const MOST_FILLER_BYTES: u64 = 8 << 30;
const ZOOKEEPER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    running: bool,
    read_only: bool,
    shutting_down: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    free_space: u64,
    total_space: u64,
}

/// `GET /api/v1/bookie/cluster_info`, the part that names the auditor.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterInfo {
    auditor_elected: bool,
    #[serde(default)]
    auditor_id: Option<String>,
}

impl ClusterInfo {
    fn auditor(self) -> Option<String> {
        let named = self.auditor_id.filter(|id| !id.is_empty());
        self.auditor_elected.then(|| named.unwrap_or_else(|| "an unnamed bookie".into()))
    }
}

#[async_trait]
impl Bookies for Pulsar {
    /// Every member asked at once: a sample of several bookies then takes
    /// one round trip, not one per question.
    async fn bookies(&self, members: &[Member]) -> Result<Vec<Bookie>> {
        let asked = members.iter().copied().map(|member| async move {
            let (state, info) =
                tokio::join!(self.ask(member, "/api/v1/bookie/state"), self.ask(member, "/api/v1/bookie/info"));
            let state: State = serde_json::from_str(&state?)?;
            let info: Info = serde_json::from_str(&info?)?;
            anyhow::Ok(Bookie {
                member,
                writable: state.running && !state.read_only && !state.shutting_down,
                used: info.total_space.saturating_sub(info.free_space),
                total: info.total_space,
            })
        });
        Ok(futures::future::join_all(asked).await.into_iter().flatten().collect())
    }

    async fn set_read_only(&self, member: Member, read_only: bool) -> Result<()> {
        let pod = self.members.pod(member);
        let body = serde_json::json!({ "readOnly": read_only });
        proxy::put_json(&self.members.pods, &pod, self.params.admin_port, "/api/v1/bookie/state/readonly", &body)
            .await
            .with_context(|| format!("setting {pod} read-only={read_only}"))?;
        Ok(())
    }

    async fn fill_disk(&self, member: Member, usage: Option<f64>) -> Result<()> {
        let pod = self.members.pod(member);
        let script = fill_script(&self.params.ledger_dir, usage);
        let command = ["sh", "-c", script.as_str()];
        exec::exec_ok(&self.members.pods, &pod, &self.members.container, &command)
            .await
            .with_context(|| format!("filling the ledger disk of {pod}"))?;
        Ok(())
    }

    async fn ledgers(&self, members: &[Member]) -> Result<BTreeMap<u64, BTreeSet<String>>> {
        ledger_pods(&self.ask_any(members, "/api/v1/ledger/list/?print_metadata=true").await?)
    }

    async fn cookies(&self) -> Result<BTreeSet<String>> {
        let store = &self.params.zookeeper;
        let reach = Reach::PortForward {
            pods: Box::new(self.members.pods.clone()),
            statefulset: store.statefulset.clone(),
            port: store.port,
        };
        let endpoint = reach.endpoint(0).await?;
        let client = tokio::time::timeout(ZOOKEEPER_TIMEOUT, Client::connector().connect(&endpoint.address.to_string()))
            .await
            .context("no ZooKeeper session within 10s")??;
        let path = format!("{}/cookies", store.root.trim_end_matches('/'));
        let ids = client.list_children(&path).await.with_context(|| format!("listing {path}"))?;
        Ok(ids.iter().map(|id| pod_of(id).to_string()).collect())
    }

    async fn auditor(&self, members: &[Member]) -> Result<Option<String>> {
        let info: ClusterInfo = serde_json::from_str(&self.ask_any(members, "/api/v1/bookie/cluster_info").await?)
            .context("reading a bookie's cluster_info")?;
        Ok(info.auditor())
    }
}

/// The pod a bookie id names: `bookie-9.bookie.<ns>.svc.cluster.local:3181`.
fn pod_of(id: &str) -> &str {
    id.split(['.', ':']).next().unwrap_or(id)
}

/// A shell script for the bookie's container: grow or shrink the filler
/// (without a usage: remove it) so that the ledger disk is that full; print
/// the disk's size and use. The filler changes size in one step, never
/// through empty: an autoscaler that looked in between would see a disk
/// that was never meant to be empty.
fn fill_script(directory: &str, usage: Option<f64>) -> String {
    let filler = format!("{directory}/{FILLER}");
    let report = format!("df -B1 --output=size,used {directory} | tail -n 1");
    let Some(usage) = usage else {
        return format!("set -e; rm -f {filler}; {report}");
    };
    format!(
        "set -e; touch {filler}; have=$(stat -c %s {filler}); set -- $({report}); \
         bytes=$(awk -v size=\"$1\" -v used=\"$2\" -v have=\"$have\" \
           'BEGIN {{ n = int(size * {usage} - (used - have)); printf \"%.0f\\n\", (n > 0 ? n : 0) }}'); \
         if [ \"$bytes\" -gt {MOST_FILLER_BYTES} ]; then \
           echo \"the filler would be $bytes bytes, more than {MOST_FILLER_BYTES}: is {directory} a disk of its own?\" >&2; \
           exit 1; fi; \
         if [ \"$bytes\" -gt \"$have\" ]; then fallocate -l \"$bytes\" {filler}; else truncate -s \"$bytes\" {filler}; fi; \
         {report}"
    )
}

/// `/api/v1/ledger/list/?print_metadata=true`: each ledger id with its
/// metadata, serialized; the bookie ids in it are plain text.
fn ledger_pods(body: &str) -> Result<BTreeMap<u64, BTreeSet<String>>> {
    let listed: BTreeMap<String, String> =
        serde_json::from_str(body).with_context(|| format!("the ledger list is not a map: {}", abbreviated(body)))?;
    let id = regex::Regex::new(r"([a-z0-9][a-z0-9-]*)\.[a-z0-9.-]+:[0-9]+").expect("a valid pattern");
    let mut ledgers = BTreeMap::new();
    for (ledger, metadata) in listed {
        let Ok(ledger) = ledger.parse::<u64>() else { bail!("ledger id {ledger:?} is not a number") };
        let pods = id.captures_iter(&metadata).map(|found| found[1].to_string()).collect();
        ledgers.insert(ledger, pods);
    }
    Ok(ledgers)
}

fn abbreviated(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_metadata_names_its_bookies_by_pod() {
        let body = r#"{
          "0" : "BookieMetadataFormatVersion\t3\n\u0002\nXbookie-0.bookie.sp-x.svc.cluster.local:3181\nXbookie-1.bookie.sp-x.svc.cluster.local:3181\u0010",
          "12" : "BookieMetadataFormatVersion\t3\nXbookie-10.bookie.sp-x.svc.cluster.local:3181 pulsar/managed-ledger"
        }"#;
        let ledgers = ledger_pods(body).unwrap();
        assert_eq!(ledgers[&0], BTreeSet::from(["bookie-0".to_string(), "bookie-1".to_string()]));
        assert_eq!(ledgers[&12], BTreeSet::from(["bookie-10".to_string()]));
        assert!(ledger_pods("{}").unwrap().is_empty());
        assert!(ledger_pods("<html>").is_err());
    }

    #[test]
    fn only_an_elected_auditor_is_named() {
        let info = |body: &str| serde_json::from_str::<ClusterInfo>(body).unwrap().auditor();
        let elected = r#"{"auditorElected" : true, "auditorId" : "bookie-9.bookie.sp-x.svc.cluster.local:3181",
            "clusterUnderReplicated" : false, "ledgerReplicationEnabled" : true, "totalBookiesCount" : 2}"#;
        assert_eq!(info(elected).as_deref(), Some("bookie-9.bookie.sp-x.svc.cluster.local:3181"));
        assert_eq!(info(r#"{"auditorElected" : false, "auditorId" : ""}"#), None);
        assert_eq!(info(r#"{"auditorElected" : true, "auditorId" : ""}"#).as_deref(), Some("an unnamed bookie"));
    }

    #[test]
    fn a_bookie_id_names_its_pod() {
        assert_eq!(pod_of("bookie-9.bookie.sp-x.svc.cluster.local:3181"), "bookie-9");
    }

    #[test]
    fn the_fill_script_resizes_the_filler_in_one_step() {
        let script = fill_script("/data/ledgers", Some(0.85));
        assert!(!script.contains("rm -f"), "{script}");
        assert!(script.contains("int(size * 0.85 - (used - have))"), "{script}");
        assert!(script.contains("fallocate -l") && script.contains("truncate -s"), "{script}");
        assert!(script.contains("-gt 8589934592 ]"), "{script}");
        assert!(fill_script("/data/ledgers", None).starts_with("set -e; rm -f /data/ledgers/stateproof-filler; "));
    }
}
