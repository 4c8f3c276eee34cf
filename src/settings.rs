//! What the user chose for this run. libtest owns the command line, so the
//! harness's own choices come from environment variables, all read here.

use crate::suite::Capability;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    pub suites_dir: PathBuf,
    pub fixtures_dir: PathBuf,
    pub kind_configs_dir: PathBuf,
    pub report_dir: PathBuf,
    pub junit_path: PathBuf,
    /// The HTML report (default: `<report dir>/report.html`).
    pub html_path: PathBuf,
    pub cluster: ClusterChoice,
    /// Keep namespaces and a cluster this run created, for inspection.
    pub keep: bool,
    pub forge: PathBuf,
    /// Whether the run builds what it needs with the forge first
    /// (`STATEPROOF_FORGE=off`: it does not, and a missing forged image
    /// fails its suites, naming the stage that builds it).
    pub run_forge: bool,
    /// The kind CLI to run; by default kind from PATH, else the forge's.
    pub kind_binary: Option<String>,
    /// How many suites may be deployed side by side.
    pub parallel_suites: usize,
    /// How much memory (MiB) the pods of suites side by side may request.
    pub memory_budget_mib: u32,
    /// Where the run's figures go (default: `<report dir>/<run>/run.json`).
    pub run_stats: Option<PathBuf>,
}

/// Suites side by side by default: more would only share the same cores.
const PARALLEL_SUITES: usize = 3;

/// Three fifths of the machine's memory: the rest is for the nodes' own
/// Kubernetes, the harness and the host.
fn default_memory_budget_mib() -> u32 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().find_map(|line| line.strip_prefix("MemTotal:").map(str::to_string)))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(8 << 20);
    u32::try_from(total_kib / 1024 * 3 / 5).unwrap_or(u32::MAX)
}

/// The kind config of suites that name none.
pub const DEFAULT_KIND_CONFIG: &str = "default";

#[derive(Debug, Clone)]
pub enum ClusterChoice {
    /// A kind cluster: reused when one of this name exists, else created.
    Kind { name: String, node_image: Option<String> },
    /// Any cluster reachable through a kubeconfig. Its nodes pull the forged
    /// images from `image_registry` (`STATEPROOF_IMAGE_REGISTRY`, a prefix the
    /// forge pushes to), stateproof's node agent included: without one, they
    /// have none of them, and the agent's capabilities are not offered.
    Kubeconfig { path: Option<PathBuf>, context: Option<String>, image_registry: Option<String> },
}

impl ClusterChoice {
    /// Where the suites that name this kind config run: with kind, a cluster
    /// of its own per config (the default config's under the chosen name);
    /// with a kubeconfig, its one cluster whatever the config.
    pub fn for_kind_config(&self, config: &str) -> ClusterChoice {
        match self {
            ClusterChoice::Kind { name, node_image } if config != DEFAULT_KIND_CONFIG => {
                ClusterChoice::Kind { name: format!("{name}-{config}"), node_image: node_image.clone() }
            }
            other => other.clone(),
        }
    }

    /// Tells clusters apart: suites whose choices have the same identity
    /// share one cluster, and its gate.
    pub fn identity(&self) -> String {
        match self {
            ClusterChoice::Kind { name, .. } => format!("kind cluster {name}"),
            ClusterChoice::Kubeconfig { path, context, .. } => format!("kubeconfig {path:?}, context {context:?}"),
        }
    }

    /// What the provider can do to nodes and processes: kind through its
    /// node containers, any other cluster through the node agent, whose
    /// image its nodes pull from the user's registry.
    pub fn offers(&self) -> BTreeSet<Capability> {
        let on_nodes = BTreeSet::from([Capability::NodeStop, Capability::ProcessSignal, Capability::LocalVolumes]);
        match self {
            ClusterChoice::Kind { .. } | ClusterChoice::Kubeconfig { image_registry: Some(_), .. } => on_nodes,
            ClusterChoice::Kubeconfig { image_registry: None, .. } => BTreeSet::new(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ClusterChoice::Kind { .. } => "the kind provider".into(),
            ClusterChoice::Kubeconfig { image_registry: Some(registry), .. } => {
                format!("a cluster from a kubeconfig (STATEPROOF_CLUSTER=kubeconfig), images from {registry}")
            }
            ClusterChoice::Kubeconfig { image_registry: None, .. } => "a cluster from a kubeconfig without \
                 STATEPROOF_IMAGE_REGISTRY (the registry its nodes would pull stateproof's node agent from)"
                .into(),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, String> {
    var(name).map(|value| value.parse().map_err(|_| format!("{name}={value}: expected a whole number"))).transpose()
}

fn flag(name: &str) -> bool {
    var(name).is_some_and(|value| !matches!(value.as_str(), "0" | "false" | "no"))
}

/// Where the reports go. Read on their own and never refused, so that a
/// run refused for its other settings still writes its reports.
pub struct ReportPaths {
    pub dir: PathBuf,
    pub junit: PathBuf,
    pub html: PathBuf,
}

impl ReportPaths {
    pub fn from_env() -> Self {
        let dir = PathBuf::from(var("STATEPROOF_REPORT_DIR").unwrap_or_else(|| "target/stateproof".into()));
        let junit = var("STATEPROOF_JUNIT").map(PathBuf::from).unwrap_or_else(|| dir.join("junit.xml"));
        let html = var("STATEPROOF_HTML").map(PathBuf::from).unwrap_or_else(|| dir.join("report.html"));
        ReportPaths { dir, junit, html }
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let reports = ReportPaths::from_env();
        let cluster = match var("STATEPROOF_CLUSTER").as_deref() {
            Some("kubeconfig") => ClusterChoice::Kubeconfig {
                path: var("STATEPROOF_KUBECONFIG").map(PathBuf::from),
                context: var("STATEPROOF_CONTEXT"),
                image_registry: var("STATEPROOF_IMAGE_REGISTRY").map(|prefix| prefix.trim_end_matches('/').to_string()),
            },
            None | Some("kind") => ClusterChoice::Kind {
                name: var("STATEPROOF_KIND_CLUSTER").unwrap_or_else(|| "stateproof".into()),
                node_image: var("STATEPROOF_NODE_IMAGE"),
            },
            Some(other) => return Err(format!("STATEPROOF_CLUSTER={other}: expected 'kind' or 'kubeconfig'")),
        };
        Ok(Settings {
            suites_dir: var("STATEPROOF_SUITES").unwrap_or_else(|| "suites".into()).into(),
            fixtures_dir: var("STATEPROOF_FIXTURES").unwrap_or_else(|| "fixtures".into()).into(),
            kind_configs_dir: var("STATEPROOF_KIND_CONFIGS").unwrap_or_else(|| "kind-config".into()).into(),
            junit_path: reports.junit,
            html_path: reports.html,
            report_dir: reports.dir,
            cluster,
            keep: flag("STATEPROOF_KEEP"),
            forge: var("STATEPROOF_FORGE")
                .filter(|forge| forge != "off")
                .unwrap_or_else(|| "scripts/forge".into())
                .into(),
            run_forge: var("STATEPROOF_FORGE").is_none_or(|forge| forge != "off"),
            kind_binary: var("STATEPROOF_KIND_BINARY"),
            parallel_suites: number("STATEPROOF_PARALLEL_SUITES")?.unwrap_or(PARALLEL_SUITES),
            memory_budget_mib: number("STATEPROOF_MEMORY_BUDGET_MIB")?.unwrap_or_else(default_memory_budget_mib),
            run_stats: var("STATEPROOF_RUN_STATS").map(PathBuf::from),
        })
    }

    /// The folder of a fixture: `STATEPROOF_FIXTURE_<NAME>` when set (the
    /// user's own manifests), else `<fixtures dir>/<name>`.
    pub fn fixture_dir(&self, fixture: &str) -> PathBuf {
        let variable = format!("STATEPROOF_FIXTURE_{}", fixture.to_uppercase().replace(['-', '/'], "_"));
        var(&variable).map(PathBuf::from).unwrap_or_else(|| self.fixtures_dir.join(fixture))
    }

    pub fn kind_config(&self, name: &str) -> PathBuf {
        self.kind_configs_dir.join(format!("{name}.yaml"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_from_a_kubeconfig_offers_node_steps_only_with_a_registry_for_the_agent() {
        let reached = |image_registry: Option<&str>| ClusterChoice::Kubeconfig {
            path: None,
            context: None,
            image_registry: image_registry.map(str::to_string),
        };
        assert!(reached(None).offers().is_empty());
        assert!(reached(None).describe().contains("without STATEPROOF_IMAGE_REGISTRY"));
        let kind = ClusterChoice::Kind { name: "k".into(), node_image: None };
        assert_eq!(reached(Some("registry.example/team")).offers(), kind.offers());
        assert_eq!(kind.offers().len(), 3);
    }
}
