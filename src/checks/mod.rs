//! Checkers: pure functions over what was observed, each able to fail and
//! saying why.

pub mod autoscaling;
pub mod availability;
pub mod delivery;
pub mod local_storage;
pub mod members;
pub mod placement;
pub mod quorum;
pub mod storage;
