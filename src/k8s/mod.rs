//! Kubernetes operations through kube-rs: connecting, applying manifests,
//! conditions on objects, custom resource definitions, exec, port-forward,
//! eviction and namespaces.

pub mod apply;
pub mod client;
pub mod conditions;
pub mod crds;
pub mod evict;
pub mod exec;
pub mod namespace;
pub mod portforward;
pub mod proxy;
pub mod statefulset;

/// The field manager of every server-side apply stateproof makes.
pub const FIELD_MANAGER: &str = "stateproof";
/// Label on everything stateproof creates, so a later run can find leftovers.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "stateproof");
pub const RUN_LABEL: &str = "stateproof.io/run";
