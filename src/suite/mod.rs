//! Suites as data: the model, what steps need, fixtures and their variants,
//! loading, and the human description of steps.

mod describe;
pub mod fixture;
pub mod load;
pub mod model;
pub mod needs;
pub mod variant;

pub use load::{LoadError, LoadedSuite, discover, expected_step, load};
pub use model::{
    Acks, Defaults, Deploy, Disruption, DrainOutcome, Duplicates, Expectation, ExpectedFailure, Loss, Member,
    MemberRef, MembersSpec, OutputExpectation, ProcessSignal, Step, StepRef, Suite, TestSpec,
};
pub use needs::Capability;
pub use variant::Variant;
