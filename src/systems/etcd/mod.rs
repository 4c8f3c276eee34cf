//! etcd through the `etcd-client` crate (the v3 gRPC API), one member at a
//! time over its own port-forward: writes and linearizable reads on the
//! member a step names, and health from every member's own `Status`.

mod health;

use super::reach::{Endpoint, Reach};
use super::{KeyValue, Members, Record, System, SystemKind, params};
use crate::suite::{Capability, Member};
use anyhow::{Context, Result, anyhow};
use async_trait::async_trait;
use etcd_client::{Client, ConnectOptions};
use health::{Answer, Listed, MemberStatus};
use serde::Deserialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Every request's deadline: a frozen member accepts connections and then
/// answers nothing, so without one a call would hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub static KIND: SystemKind = SystemKind {
    name: "etcd",
    offers: &[Capability::KeyValue],
    check_params: |value| params::<Params>("etcd", value).map(drop),
    build,
};

/// `params` of an etcd suite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Params {
    /// The members' client port (gRPC).
    client_port: u16,
}

fn build(members: &Members, value: &serde_json::Value) -> Result<Box<dyn System>> {
    let params: Params = params("etcd", value)?;
    Ok(Box::new(Etcd::new(members.reach(params.client_port))))
}

pub struct Etcd {
    reach: Reach,
}

/// Whether a client's requests wait for a leader or fail at once without one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leader {
    /// Reads and writes: `etcdserver: no leader` at once, the wait retries.
    Required,
    /// Status: a member without a leader still says so.
    NotRequired,
}

#[async_trait]
impl System for Etcd {
    /// Every member answers, without errors, as a voter following the one
    /// leader all agree on; the member list holds exactly these members.
    async fn health(&self, members: &[Member]) -> Result<Result<(), String>> {
        let answers = futures::future::join_all(members.iter().map(|&member| self.status(member))).await;
        let listed = match (members.first(), answers.first()) {
            (Some(&first), Some(Ok(_))) => self.member_list(first).await.map_err(|error| format!("{error:#}")),
            _ => Err("the first member did not answer".into()),
        };
        Ok(health::judge(&answers, &listed))
    }

    fn key_value(&self) -> Option<&dyn KeyValue> {
        Some(self)
    }

    /// Each member's status and the first member's member list, as text.
    async fn diagnostics(&self, members: &[Member]) -> Vec<(String, String)> {
        let mut text = String::new();
        for &member in members {
            let answer = match self.status(member).await {
                Ok(status) => format!(
                    "member {:x}, follows {:x}, term {}, learner {}, errors {:?}",
                    status.id, status.leader, status.term, status.learner, status.errors
                ),
                Err(why) => format!("no status: {why}"),
            };
            let _ = writeln!(text, "{}: {answer}", self.reach.describe(member));
        }
        match self.member_list(members.first().copied().unwrap_or_default()).await {
            Ok(listed) => {
                for member in listed {
                    let _ = writeln!(text, "listed: {:x} {:?} learner {}", member.id, member.name, member.learner);
                }
            }
            Err(error) => {
                let _ = writeln!(text, "member list: {error:#}");
            }
        }
        vec![("etcd-status.txt".into(), text)]
    }
}

#[async_trait]
impl KeyValue for Etcd {
    /// A put; its version is the revision it made, the key's mod revision.
    async fn write(&self, member: Member, key: &str, value: &str) -> Result<Record> {
        let (mut client, _endpoint) = self.client(member, Leader::Required).await?;
        let response = client.put(key, value, None).await.map_err(|error| self.failed(member, "put", &error))?;
        let header = response.header().with_context(|| format!("the put of {key} on member {member} has no header"))?;
        Ok(Record { value: value.to_string(), version: header.revision() })
    }

    /// A linearizable get (etcd's default): the member confirms with the
    /// leader that it has applied every write committed before the read.
    async fn read(&self, member: Member, key: &str) -> Result<Option<Record>> {
        let (mut client, _endpoint) = self.client(member, Leader::Required).await?;
        let response = client.get(key, None).await.map_err(|error| self.failed(member, "get", &error))?;
        Ok(response.kvs().first().map(|found| Record {
            value: String::from_utf8_lossy(found.value()).into_owned(),
            version: found.mod_revision(),
        }))
    }
}

impl Etcd {
    pub fn new(reach: Reach) -> Self {
        Etcd { reach }
    }

    /// A client of one member alone. Connecting is lazy: a member that is
    /// not there fails the first request.
    async fn client(&self, member: Member, leader: Leader) -> Result<(Client, Endpoint)> {
        let endpoint = self.reach.endpoint(member).await?;
        let options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_require_leader(leader == Leader::Required);
        let client = Client::connect([format!("http://{}", endpoint.address)], Some(options))
            .await
            .map_err(|error| self.failed(member, "connect", &error))?;
        Ok((client, endpoint))
    }

    async fn status(&self, member: Member) -> Answer {
        let asked = async {
            let (mut client, _endpoint) = self.client(member, Leader::NotRequired).await?;
            let status = client.status().await.map_err(|error| self.failed(member, "status", &error))?;
            let id = status.header().map(|header| header.member_id()).unwrap_or_default();
            Ok::<_, anyhow::Error>(MemberStatus {
                id,
                leader: status.leader(),
                term: status.raft_term(),
                learner: status.is_learner(),
                errors: status.errors().to_vec(),
            })
        };
        asked.await.map_err(|error| format!("{error:#}"))
    }

    async fn member_list(&self, member: Member) -> Result<Vec<Listed>> {
        let (mut client, _endpoint) = self.client(member, Leader::NotRequired).await?;
        let response = client.member_list().await.map_err(|error| self.failed(member, "member list", &error))?;
        Ok(response
            .members()
            .iter()
            .map(|listed| Listed { id: listed.id(), name: listed.name().to_string(), learner: listed.is_learner() })
            .collect())
    }

    /// A failed call, said plainly: the gRPC code and message, or that the
    /// member answered nothing in time.
    fn failed(&self, member: Member, call: &str, error: &etcd_client::Error) -> anyhow::Error {
        let on = self.reach.describe(member);
        match error {
            etcd_client::Error::GRpcStatus(status) if status.message() == "Timeout expired" => {
                anyhow!("{call} on {on}: no answer within {}s", REQUEST_TIMEOUT.as_secs())
            }
            etcd_client::Error::GRpcStatus(status) => {
                anyhow!("{call} on {on}: {:?}: {}", status.code(), status.message())
            }
            other => anyhow!("{call} on {on}: {other}"),
        }
    }
}
