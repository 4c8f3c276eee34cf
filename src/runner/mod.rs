//! The runner: suites become libtest-mimic trials; each trial sets up its
//! suite's environment on first use, runs its steps and records a result;
//! at the end the run tears down what it created and writes the report.

mod bench;
mod benchmark;
mod env;
mod finish;
mod gate;
mod harness;
mod observer;
mod operator;
mod recheck;
mod sampler;
mod schedule;
mod steps;
mod verdict;

pub use bench::{KafkaTools, PulsarTools, client_bench};
pub use benchmark::bench;
pub use harness::{Mode, main, run};
pub use recheck::recheck;
