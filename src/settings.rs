//! What the user chose for this run. libtest owns the command line, so the
//! harness's own choices come from environment variables, all read here.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    pub suites_dir: PathBuf,
    pub fixtures_dir: PathBuf,
    pub kind_configs_dir: PathBuf,
    pub report_dir: PathBuf,
    pub junit_path: PathBuf,
    pub cluster: ClusterChoice,
    /// Keep namespaces and a cluster this run created, for inspection.
    pub keep: bool,
    pub forge: PathBuf,
    /// The kind CLI to run; by default kind from PATH, else the forge's.
    pub kind_binary: Option<String>,
}

#[derive(Debug, Clone)]
pub enum ClusterChoice {
    /// A kind cluster: reused when one of this name exists, else created.
    Kind { name: String, node_image: Option<String> },
    /// Any cluster reachable through a kubeconfig.
    Kubeconfig { path: Option<PathBuf>, context: Option<String> },
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn flag(name: &str) -> bool {
    var(name).is_some_and(|value| !matches!(value.as_str(), "0" | "false" | "no"))
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let report_dir = PathBuf::from(var("STATEPROOF_REPORT_DIR").unwrap_or_else(|| "target/stateproof".into()));
        let cluster = match var("STATEPROOF_CLUSTER").as_deref() {
            Some("kubeconfig") => ClusterChoice::Kubeconfig {
                path: var("STATEPROOF_KUBECONFIG").map(PathBuf::from),
                context: var("STATEPROOF_CONTEXT"),
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
            junit_path: var("STATEPROOF_JUNIT").map(PathBuf::from).unwrap_or_else(|| report_dir.join("junit.xml")),
            report_dir,
            cluster,
            keep: flag("STATEPROOF_KEEP"),
            forge: var("STATEPROOF_FORGE").unwrap_or_else(|| "scripts/forge".into()).into(),
            kind_binary: var("STATEPROOF_KIND_BINARY"),
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
