//! Suites as data: the model, loading and the human description of steps.

mod describe;
pub mod load;
pub mod model;

pub use load::{LoadError, LoadedSuite, discover, load};
pub use model::{
    Acks, Deploy, Disruption, DrainOutcome, Duplicates, Expectation, Front, Loss, Member, MemberRef, ProcessSignal,
    Step, Suite, SystemKind, TestSpec,
};
