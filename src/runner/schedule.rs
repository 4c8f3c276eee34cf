//! Who may run at the same time. Tests of one suite share its fixture, so
//! they run one at a time; a test that stops or drains nodes runs alone.

use crate::suite::Disruption;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
pub struct ClusterGate {
    lock: RwLock<()>,
}

/// Held for as long as the test runs; dropping it lets others in.
pub struct Pass<'a> {
    _shared: Option<RwLockReadGuard<'a, ()>>,
    _exclusive: Option<RwLockWriteGuard<'a, ()>>,
}

impl ClusterGate {
    pub async fn enter(&self, disruption: Disruption) -> Pass<'_> {
        match disruption {
            Disruption::Suite => Pass { _shared: Some(self.lock.read().await), _exclusive: None },
            Disruption::Nodes => Pass { _shared: None, _exclusive: Some(self.lock.write().await) },
        }
    }
}
