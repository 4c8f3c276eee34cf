//! Checkers: pure functions over what was observed, each able to fail and
//! saying why.

pub mod delivery;
pub mod local_storage;
pub mod placement;
pub mod quorum;
pub mod storage;
