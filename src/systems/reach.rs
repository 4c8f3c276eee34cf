//! How a client reaches one member: through a port-forward to the member's
//! pod (a cluster), or at a fixed address (a container in a component test).

use crate::k8s::portforward::{self, PortForward};
use crate::suite::Member;
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::net::SocketAddr;

#[derive(Clone)]
pub enum Reach {
    /// Pods `<statefulset>-<member>`, on `port`.
    PortForward { pods: Box<Api<Pod>>, statefulset: String, port: u16 },
    /// Member `n` listens at `addresses[n]`.
    Direct(Vec<SocketAddr>),
}

/// An address to dial, valid while this value lives.
pub struct Endpoint {
    pub address: SocketAddr,
    _forward: Option<PortForward>,
}

impl Reach {
    pub fn describe(&self, member: Member) -> String {
        match self {
            Reach::PortForward { statefulset, .. } => format!("{statefulset}-{member}"),
            Reach::Direct(addresses) => {
                addresses.get(member as usize).map_or_else(|| format!("member {member}"), ToString::to_string)
            }
        }
    }

    pub async fn endpoint(&self, member: Member) -> Result<Endpoint> {
        match self {
            Reach::PortForward { pods, statefulset, port } => {
                let forward =
                    portforward::forward(pods.as_ref().clone(), &format!("{statefulset}-{member}"), *port).await?;
                Ok(Endpoint { address: forward.local, _forward: Some(forward) })
            }
            Reach::Direct(addresses) => {
                let address =
                    *addresses.get(member as usize).with_context(|| format!("no address for member {member}"))?;
                Ok(Endpoint { address, _forward: None })
            }
        }
    }
}
