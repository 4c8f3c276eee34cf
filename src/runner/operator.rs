//! An operator a fixture needs but the forge does not build (KAAP's): run on
//! this host against the cluster, as its users run a published release, from
//! the jar one setting names, with the definitions from the folder another
//! names. Without either the suite is skipped, saying which and why.

use crate::cluster::Cluster;
use crate::k8s::crds;
use crate::process::{self, Background};
use crate::suite::fixture::OperatorSpec;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

const STOP_WITHIN: Duration = Duration::from_secs(30);

/// Where the settings say the operator is.
#[derive(Debug, Clone)]
pub struct Located {
    spec: OperatorSpec,
    jar: PathBuf,
    crds: PathBuf,
}

/// The operator's parts, or why the suite cannot have them (its skip reason).
pub fn locate(spec: &OperatorSpec) -> Result<Located, String> {
    let found = named_path(&spec.jar_setting)
        .and_then(|jar| Ok(Located { spec: spec.clone(), jar, crds: named_path(&spec.crds_setting)? }));
    found.map_err(|why| format!("external operator {} cannot be had: {why} ({})", spec.name, spec.reason))
}

fn named_path(setting: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(std::env::var_os(setting).ok_or_else(|| format!("{setting} is not set"))?);
    if !path.exists() {
        return Err(format!("{setting} names {}, which does not exist", path.display()));
    }
    Ok(path)
}

pub struct HostOperator {
    process: Background,
    /// The definitions this run installed, removed after the operator stops.
    installed: Vec<String>,
}

impl HostOperator {
    /// Installs the definitions the cluster lacks, then starts the operator
    /// with `java` from JAVA_HOME (or PATH), its output in `log`.
    pub async fn start(located: &Located, cluster: &Cluster, namespace: &str, log: &Path) -> Result<Self> {
        let spec = &located.spec;
        let installed =
            crds::install(&cluster.client, &cluster.definitions, &located.crds).await.with_context(|| {
                format!("installing the definitions of operator {} from {}", spec.name, located.crds.display())
            })?;
        let java = std::env::var_os("JAVA_HOME")
            .map_or_else(|| PathBuf::from("java"), |home| Path::new(&home).join("bin/java"));
        let mut env: Vec<(String, String)> =
            spec.env.iter().map(|(key, value)| (key.clone(), value.replace("$(NAMESPACE)", namespace))).collect();
        if let Some(kubeconfig) = cluster.kubeconfig() {
            env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        }
        let process = process::background(&java, &["-jar".as_ref(), located.jar.as_os_str()], &env, log)
            .with_context(|| format!("starting operator {} from {}", spec.name, located.jar.display()))?;
        eprintln!("stateproof: operator {} runs on this host for {namespace} (log {})", spec.name, log.display());
        Ok(HostOperator { process, installed })
    }

    /// Stops the operator, then removes the definitions this run installed
    /// that no other operator of it relies on.
    pub async fn stop(self, cluster: &Cluster) -> Result<()> {
        self.process.stop(STOP_WITHIN).await.context("stopping the operator")?;
        crds::remove(&cluster.client, &cluster.definitions, &self.installed).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_whose_setting_is_unset_is_external_and_says_which_and_why() {
        let spec = OperatorSpec {
            name: "kaap".into(),
            jar_setting: "STATEPROOF_TEST_SETTING_NEVER_SET".into(),
            crds_setting: "STATEPROOF_TEST_SETTING_NEVER_SET_EITHER".into(),
            reason: "built by its project".into(),
            env: Default::default(),
        };
        let why = locate(&spec).unwrap_err();
        assert_eq!(
            why,
            "external operator kaap cannot be had: STATEPROOF_TEST_SETTING_NEVER_SET is not set (built by its project)"
        );
    }
}
