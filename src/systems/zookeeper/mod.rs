//! ZooKeeper through the `zookeeper-client` crate, one member at a time over
//! a port-forward, and the four-letter words for quorum state.

use super::reach::{Endpoint, Reach};
use super::{KeyValue, Members, Record, System, SystemKind, params};
use crate::checks::quorum::{self, MemberState};
use crate::suite::{Capability, Member};
use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

const SESSION_TIMEOUT: Duration = Duration::from_secs(10);
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(5);

pub static KIND: SystemKind = SystemKind {
    name: "zookeeper",
    offers: &[Capability::KeyValue],
    check_params: |value| params::<Params>("zookeeper", value).map(drop),
    build,
};

/// `params` of a ZooKeeper-protocol suite (ZooKeeper, RaftKeeper).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Params {
    /// The client port of the members.
    client_port: u16,
}

fn build(members: &Members, value: &serde_json::Value) -> Result<Box<dyn System>> {
    let params: Params = params("zookeeper", value)?;
    Ok(Box::new(ZooKeeper::new(members.reach(params.client_port))))
}

pub struct ZooKeeper {
    reach: Reach,
}

#[async_trait]
impl System for ZooKeeper {
    /// One leader, every other member a synced follower (`mntr`).
    async fn health(&self, members: &[Member]) -> Result<Result<(), String>> {
        self.quorum(members).await
    }

    fn key_value(&self) -> Option<&dyn KeyValue> {
        Some(self)
    }

    /// `dataDir` and `dataLogDir` from the server's `conf`.
    async fn data_directories(&self, member: Member) -> Result<Option<Vec<String>>> {
        let conf = self.four_letter_word(member, "conf").await?;
        let directories = settings_of(&conf, &["dataDir", "dataLogDir"]);
        if directories.is_empty() {
            bail!("{}'s answer to 'conf' names no dataDir: {conf:?}", self.reach.describe(member));
        }
        Ok(Some(directories))
    }
}

#[async_trait]
impl KeyValue for ZooKeeper {
    async fn write(&self, member: Member, key: &str, value: &str) -> Result<Record> {
        let (client, _endpoint) = self.session(member).await?;
        create_parents(&client, key).await?;
        let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
        let stat = match client.create(key, value.as_bytes(), &options).await {
            Ok((stat, _)) => stat,
            Err(ZkError::NodeExists) => client.set_data(key, value.as_bytes(), None).await?,
            Err(error) => {
                return Err(error).with_context(|| format!("creating {key} on member {member}"));
            }
        };
        // A create's Stat is invalid on servers before 3.8.2 (ZOOKEEPER-4026):
        // read the version back through the same session.
        let (_, stat) = if stat.is_invalid() { client.get_data(key).await? } else { (Vec::new(), stat) };
        Ok(Record { value: value.to_string(), version: stat.mzxid })
    }

    async fn read(&self, member: Member, key: &str) -> Result<Option<Record>> {
        let (client, _endpoint) = self.session(member).await?;
        // A follower may lag the leader; sync makes this read see every
        // write committed before it (what the upstream tests do).
        match client.sync(key).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(error) => {
                return Err(error).with_context(|| format!("sync {key} on member {member}"));
            }
        }
        match client.get_data(key).await {
            Ok((data, stat)) => {
                Ok(Some(Record { value: String::from_utf8_lossy(&data).into_owned(), version: stat.mzxid }))
            }
            Err(ZkError::NoNode) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("reading {key} on member {member}")),
        }
    }
}

impl ZooKeeper {
    pub fn new(reach: Reach) -> Self {
        ZooKeeper { reach }
    }

    async fn session(&self, member: Member) -> Result<(Client, Endpoint)> {
        let endpoint = self.reach.endpoint(member).await?;
        let client = Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(SESSION_TIMEOUT)
            .connect(&endpoint.address.to_string())
            .await
            .with_context(|| format!("connecting to ZooKeeper on {}", self.reach.describe(member)))?;
        Ok((client, endpoint))
    }

    /// Asks every member `mntr` and judges the answers.
    pub async fn quorum(&self, members: &[Member]) -> Result<Result<(), String>> {
        let mut states = Vec::new();
        for member in members.iter().copied() {
            let state = match self.four_letter_word(member, "mntr").await {
                Ok(answer) => quorum::parse_mntr(&answer),
                Err(error) => MemberState::Unreachable(format!("{error:#}")),
            };
            states.push(state);
        }
        Ok(quorum::judge(&states))
    }

    async fn four_letter_word(&self, member: Member, word: &str) -> Result<String> {
        let endpoint = self.reach.endpoint(member).await?;
        let exchange = async {
            let mut stream = TcpStream::connect(endpoint.address).await?;
            stream.write_all(word.as_bytes()).await?;
            read_until_closed(&mut stream).await
        };
        tokio::time::timeout(FOUR_LETTER_TIMEOUT, exchange).await.with_context(|| {
            format!("{} did not answer '{word}' within {}s", self.reach.describe(member), FOUR_LETTER_TIMEOUT.as_secs())
        })?
    }
}

/// Reads a four-letter-word answer: the server writes it and closes, and a
/// close may arrive as a reset once the answer is in.
async fn read_until_closed(stream: &mut TcpStream) -> Result<String> {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(error) => return Err(error.into()),
        }
    }
    if answer.is_empty() {
        anyhow::bail!("the connection closed without an answer");
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

async fn create_parents(client: &Client, key: &str) -> Result<()> {
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mut path = String::new();
    let parts: Vec<&str> = key.trim_start_matches('/').split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        path.push('/');
        path.push_str(part);
        match client.create(&path, b"", &options).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(error) => return Err(error).with_context(|| format!("creating parent {path}")),
        }
    }
    Ok(())
}

/// The values of `keys` in a `conf` answer (`key=value` lines), in order,
/// each once.
fn settings_of(conf: &str, keys: &[&str]) -> Vec<String> {
    let mut values: Vec<String> = Vec::new();
    for key in keys {
        let value = conf.lines().find_map(|line| line.trim().strip_prefix(key)?.strip_prefix('='));
        if let Some(value) = value.map(str::trim)
            && !values.iter().any(|seen| seen == value)
        {
            values.push(value.to_string());
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directories_are_read_from_conf() {
        let conf = "clientPort=2181\ndataDir=/var/lib/zookeeper/data/version-2\ndataDirSize=457\n\
                    dataLogDir=/var/lib/zookeeper/data/version-2\ntickTime=2000\n";
        assert_eq!(settings_of(conf, &["dataDir", "dataLogDir"]), ["/var/lib/zookeeper/data/version-2"]);
    }
}
