//! Variants of a fixture: a few edits to its manifests, kept in
//! `fixtures/<fixture>/variants/<name>.yaml` instead of whole copies that
//! drift. A suite may run a fixture as a variant (`fixture: kafka@as-shipped`,
//! the seed's own settings), and the self-check runs the suites of a fixture
//! against each variant that says which of their tests must fail, and why:
//!
//! ```yaml
//! description: Brokers keep their data in an emptyDir.
//! patches:
//!   - target: {kind: StatefulSet, name: kafka}
//!     json: [{op: remove, path: /spec/volumeClaimTemplates}]   # RFC 6902
//!   - target: {kind: PodDisruptionBudget, name: kafka-pdb}
//!     merge: {spec: {maxUnavailable: 2}}                       # RFC 7386
//! self-check:
//!   kafka:                        # suite
//!     durable-storage: "keep no data of their own"   # test: what its failure says
//! may-fail:                       # failures the defect may cause, by chance
//!   kafka: {scale: "Cookie"}
//! ```

use crate::k8s::apply::Manifest;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Variant {
    pub fixture: String,
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    patches: Vec<PatchSpec>,
    /// Per suite, per test: a pattern its failure's message must match.
    pub must_fail: BTreeMap<String, BTreeMap<String, String>>,
    /// Per suite, per test: a failure it may show, by the same defect,
    /// depending on chance (the scheduler's choice, say).
    pub may_fail: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct VariantFile {
    description: String,
    patches: Vec<PatchSpec>,
    #[serde(default)]
    self_check: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    may_fail: BTreeMap<String, BTreeMap<String, String>>,
}

/// A change to one object of a fixture: an RFC 6902 JSON patch or an RFC
/// 7386 merge patch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    pub target: Target,
    #[serde(default)]
    pub json: Option<json_patch::Patch>,
    #[serde(default)]
    pub merge: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub kind: String,
    pub name: String,
}

impl Variant {
    /// Reads `fixtures/<fixture>/variants/<name>.yaml` under `fixtures_dir`.
    pub fn named(fixture_dir: &Path, fixture: &str, name: &str) -> Result<Variant> {
        let file = fixture_dir.join("variants").join(format!("{name}.yaml"));
        if !file.is_file() {
            bail!("fixture {fixture} has no variant {name}: no file {}", file.display());
        }
        Self::read(&file, fixture)
    }

    pub fn read(file: &Path, fixture: &str) -> Result<Variant> {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let value: serde_json::Value =
            serde_saphyr::from_str(&text).with_context(|| format!("invalid variant {}", file.display()))?;
        let parsed: VariantFile =
            serde_json::from_value(value).with_context(|| format!("invalid variant {}", file.display()))?;
        for patch in &parsed.patches {
            if patch.json.is_some() == patch.merge.is_some() {
                bail!(
                    "{}: the patch of {} {} needs exactly one of `json` or `merge`",
                    file.display(),
                    patch.target.kind,
                    patch.target.name
                );
            }
        }
        let name = file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Variant {
            fixture: fixture.to_string(),
            name,
            file: file.to_path_buf(),
            description: parsed.description,
            patches: parsed.patches,
            must_fail: parsed.self_check,
            may_fail: parsed.may_fail,
        })
    }

    /// `<fixture>@<name>`, as suites and reports name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.fixture, self.name)
    }

    /// Whether the self-check runs this variant (it says what must fail).
    pub fn is_checked(&self) -> bool {
        !self.must_fail.is_empty()
    }

    /// What the variant says of a test: the failure it requires, and the one
    /// it allows.
    pub fn expects(&self, suite: &str, test: &str) -> (Option<&str>, Option<&str>) {
        (pattern_of(&self.must_fail, suite, test), pattern_of(&self.may_fail, suite, test))
    }

    /// Applies the patches to the fixture's manifests, each to exactly one
    /// object of its kind and name.
    pub fn apply(&self, manifests: &mut [Manifest]) -> Result<()> {
        for patch in &self.patches {
            let Target { kind, name } = &patch.target;
            let mut matching = manifests.iter_mut().filter(|manifest| {
                manifest.object.types.as_ref().is_some_and(|types| &types.kind == kind)
                    && manifest.object.metadata.name.as_deref() == Some(name)
            });
            let (Some(manifest), None) = (matching.next(), matching.next()) else {
                bail!("{}: the fixture has not exactly one {kind} {name} to patch", self.file.display());
            };
            let mut document = serde_json::to_value(&manifest.object)?;
            match (&patch.json, &patch.merge) {
                (Some(operations), _) => json_patch::patch(&mut document, operations)
                    .with_context(|| format!("{}: patching {kind} {name}", self.file.display()))?,
                (None, Some(merge)) => json_patch::merge(&mut document, merge),
                (None, None) => unreachable!("checked when read"),
            }
            manifest.object = serde_json::from_value(document)
                .with_context(|| format!("{}: {kind} {name} after the patch", self.file.display()))?;
            manifest.file = self.file.clone();
        }
        Ok(())
    }
}

fn pattern_of<'a>(
    patterns: &'a BTreeMap<String, BTreeMap<String, String>>,
    suite: &str,
    test: &str,
) -> Option<&'a str> {
    patterns.get(suite).and_then(|tests| tests.get(test)).map(String::as_str)
}

/// Every variant of every fixture under `fixtures_dir`, by fixture and name.
pub fn discover(fixtures_dir: &Path) -> Result<Vec<Variant>> {
    let mut variants = Vec::new();
    let entries = std::fs::read_dir(fixtures_dir).with_context(|| format!("cannot read {}", fixtures_dir.display()))?;
    let mut fixtures: Vec<PathBuf> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
    fixtures.sort();
    for fixture in fixtures {
        let Ok(files) = std::fs::read_dir(fixture.join("variants")) else { continue };
        let name = fixture.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: Vec<PathBuf> = files
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        for file in files {
            variants.push(Variant::read(&file, &name)?);
        }
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::apply::parse;

    fn manifests() -> Vec<Manifest> {
        let text = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: kafka}\n\
                    spec: {replicas: 3, template: {spec: {containers: [{name: kafka, env: [{name: A, value: '1'}]}]}}}\n\
                    ---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: kafka-pdb}\n\
                    spec: {maxUnavailable: 1}\n";
        parse(text).unwrap().into_iter().map(|object| Manifest { file: "f/kafka.yaml".into(), object }).collect()
    }

    fn variant(text: &str) -> Result<Variant> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broken.yaml");
        std::fs::write(&file, text).unwrap();
        Variant::read(&file, "kafka")
    }

    #[test]
    fn json_and_merge_patches_edit_their_targets_only() {
        let variant = variant(
            "description: d\npatches:\n\
             - target: {kind: StatefulSet, name: kafka}\n  json:\n\
             \x20   - {op: test, path: /spec/template/spec/containers/0/env/0/name, value: A}\n\
             \x20   - {op: replace, path: /spec/template/spec/containers/0/env/0/value, value: '2'}\n\
             - target: {kind: PodDisruptionBudget, name: kafka-pdb}\n  merge: {spec: {maxUnavailable: 2}}\n\
             self-check: {kafka: {node-failure: refused}}\n",
        )
        .unwrap();
        let mut found = manifests();
        variant.apply(&mut found).unwrap();
        assert_eq!(found[0].object.data["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "2");
        assert_eq!(found[1].object.data["spec"]["maxUnavailable"], 2);
        assert_eq!(found[0].object.data["spec"]["replicas"], 3);
        assert!(variant.is_checked());
        assert_eq!(variant.label(), "kafka@broken");
    }

    #[test]
    fn a_patch_whose_guard_fails_names_the_variant_file() {
        let variant = variant(
            "description: d\npatches:\n- target: {kind: StatefulSet, name: kafka}\n  json:\n\
             \x20   - {op: test, path: /spec/replicas, value: 5}\n",
        )
        .unwrap();
        let error = variant.apply(&mut manifests()).unwrap_err();
        assert!(format!("{error:#}").contains("broken.yaml: patching StatefulSet kafka"), "{error:#}");
    }

    #[test]
    fn a_patch_of_a_missing_object_is_refused() {
        let variant =
            variant("description: d\npatches:\n- target: {kind: Service, name: nope}\n  merge: {a: 1}\n").unwrap();
        let error = variant.apply(&mut manifests()).unwrap_err();
        assert!(format!("{error:#}").contains("not exactly one Service nope"), "{error:#}");
    }

    #[test]
    fn a_patch_with_both_or_neither_kind_is_refused() {
        let error = variant("description: d\npatches:\n- target: {kind: Service, name: x}\n").unwrap_err();
        assert!(format!("{error:#}").contains("exactly one of `json` or `merge`"), "{error:#}");
    }
}
