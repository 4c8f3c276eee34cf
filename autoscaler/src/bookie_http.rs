//! A bookie's HTTP admin API (BookKeeper 4.17's `HttpRouter`), the calls
//! the autoscaler makes, with the field names the 4.17 server sends (checked
//! on the wire: see the crate's README).

use crate::http;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// One bookie's HTTP server: its pod's IP and the configured port.
#[derive(Debug, Clone, PartialEq)]
pub struct BookieHttp {
    pub host: String,
    pub port: u16,
}

/// `GET /api/v1/bookie/state`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub running: bool,
    pub read_only: bool,
    pub shutting_down: bool,
}

impl State {
    /// KAAP's rule: only a running bookie that accepts writes counts.
    pub fn writable(&self) -> bool {
        self.running && !self.read_only && !self.shutting_down
    }
}

/// `GET /api/v1/bookie/info`: the ledger directories' file systems, summed
/// (the journal is not included).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub free_space: i64,
    pub total_space: i64,
}

/// `GET /api/v1/bookie/cluster_info`, the fields that say whether the
/// cluster's replication can be trusted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub auditor_elected: bool,
    pub cluster_under_replicated: bool,
    pub ledger_replication_enabled: bool,
}

impl BookieHttp {
    pub async fn state(&self) -> Result<State> {
        self.get_json("/api/v1/bookie/state").await
    }

    pub async fn info(&self) -> Result<Info> {
        self.get_json("/api/v1/bookie/info").await
    }

    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        self.get_json("/api/v1/bookie/cluster_info").await
    }

    /// The bookies registered read-only: bookie id -> host name.
    pub async fn read_only_bookies(&self) -> Result<BTreeMap<String, Option<String>>> {
        self.get_json("/api/v1/bookie/list_bookies?type=ro&print_hostnames=true").await
    }

    /// Turns the bookie read-only or writable. In memory only: a restarted
    /// bookie is writable again.
    pub async fn set_read_only(&self, read_only: bool) -> Result<()> {
        let path = "/api/v1/bookie/state/readonly";
        let body = format!("{{\"readOnly\":{read_only}}}");
        let response =
            http::put_json(&self.host, self.port, path, &body).await.with_context(|| self.what("PUT", path))?;
        if response.status != 200 {
            bail!("{} answered {}: {}", self.what("PUT", path), response.status, response.body.trim());
        }
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = http::get(&self.host, self.port, path).await.with_context(|| self.what("GET", path))?;
        if response.status != 200 {
            bail!("{} answered {}: {}", self.what("GET", path), response.status, response.body.trim());
        }
        serde_json::from_str(&response.body)
            .with_context(|| format!("{} answered {:?}", self.what("GET", path), response.body.trim()))
    }

    fn what(&self, method: &str, path: &str) -> String {
        format!("{method} http://{}:{}{path}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_of_a_4_17_bookie_parse() {
        let state: State = serde_json::from_str(
            r#"{"running" : true, "readOnly" : false, "shuttingDown" : false, "availableForHighPriorityWrites" : true}"#,
        )
        .unwrap();
        assert!(state.writable());
        let info: Info = serde_json::from_str(r#"{"freeSpace" : 61853892608, "totalSpace" : 270553174016}"#).unwrap();
        assert_eq!(info, Info { free_space: 61_853_892_608, total_space: 270_553_174_016 });
        let cluster: ClusterInfo = serde_json::from_str(
            r#"{"auditorElected" : true, "auditorId" : "bookie-3:3181", "clusterUnderReplicated" : false,
                "ledgerReplicationEnabled" : true, "totalBookiesCount" : 4, "writableBookiesCount" : 4,
                "readonlyBookiesCount" : 0, "unavailableBookiesCount" : 0}"#,
        )
        .unwrap();
        let expected =
            ClusterInfo { auditor_elected: true, cluster_under_replicated: false, ledger_replication_enabled: true };
        assert_eq!(cluster, expected);
        let listed: BTreeMap<String, Option<String>> =
            serde_json::from_str(r#"{"bookie-3:3181" : "bookie-3", "10.0.0.9:3181" : null}"#).unwrap();
        assert_eq!(listed["bookie-3:3181"].as_deref(), Some("bookie-3"));
    }

    /// Against a real bookie: `BOOKIE_HTTP=<ip>:8000 cargo test -- --ignored`.
    /// Turns it read-only and back.
    #[tokio::test]
    #[ignore = "needs a running bookie, named by BOOKIE_HTTP=<host>:<port>"]
    async fn a_real_bookie_answers_every_call() {
        let address = std::env::var("BOOKIE_HTTP").expect("BOOKIE_HTTP=<host>:<port>");
        let (host, port) = address.rsplit_once(':').expect("BOOKIE_HTTP=<host>:<port>");
        let bookie = BookieHttp { host: host.into(), port: port.parse().unwrap() };
        assert!(bookie.state().await.unwrap().writable());
        let info = bookie.info().await.unwrap();
        assert!(info.total_space > 0 && info.free_space <= info.total_space, "{info:?}");
        bookie.cluster_info().await.unwrap();
        bookie.set_read_only(true).await.unwrap();
        assert!(bookie.state().await.unwrap().read_only);
        assert_eq!(bookie.read_only_bookies().await.unwrap().len(), 1);
        bookie.set_read_only(false).await.unwrap();
        assert!(bookie.state().await.unwrap().writable());
    }

    #[test]
    fn only_a_running_bookie_that_takes_writes_is_writable() {
        let state = |running, read_only, shutting_down| State { running, read_only, shutting_down };
        assert!(state(true, false, false).writable());
        assert!(!state(true, true, false).writable());
        assert!(!state(true, false, true).writable());
        assert!(!state(false, false, false).writable());
    }
}
