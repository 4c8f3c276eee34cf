//! stateproof: an end-to-end conformance harness for stateful systems on
//! Kubernetes. The folders are the layers: cluster providers (`cluster`),
//! Kubernetes operations (`k8s`), system adapters (`systems`), faults
//! (`faults`), checkers (`checks`), suites as data (`suite`), reporting
//! (`report`) and the runner (`runner`), with one wait mechanism (`wait`)
//! and one way to run host programs (`process`).

pub mod checks;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod http;
pub mod k8s;
pub mod process;
pub mod report;
pub mod runner;
pub mod settings;
pub mod suite;
pub mod systems;
pub mod wait;
