//! A suite's fixture: the manifests of its fixture folders (a variant's
//! patches applied), and the objects of `apiVersion: stateproof.io/v1` that
//! stateproof reads itself rather than applies: the node setup for local
//! volumes (`LocalVolumes`), the images the forge does not build
//! (`ExternalImages`) and an operator it does not build either (`Operator`).

use super::variant::Variant;
use crate::k8s::apply::{self, Manifest};
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const API_VERSION: &str = "stateproof.io/v1";

#[derive(Debug, Clone)]
pub struct Fixture {
    /// What gets applied, in order.
    pub manifests: Vec<Manifest>,
    pub local_volumes: Option<LocalVolumesSpec>,
    /// Images the fixture declares external, with why: the only images a
    /// run may skip for lack of.
    pub external_images: BTreeMap<String, String>,
    pub operator: Option<OperatorSpec>,
}

/// `Operator`: what the fixture's objects need to come to life, built
/// elsewhere than by the forge and run on this host against the cluster,
/// as its users run a published release (`runner::operator`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperatorSpec {
    #[serde(skip)]
    pub name: String,
    /// The setting (environment variable) that names the operator's jar.
    pub jar_setting: String,
    /// The setting that names a folder of its CustomResourceDefinitions.
    pub crds_setting: String,
    /// Where it comes from: said when a suite is skipped for want of it.
    pub reason: String,
    /// Its environment; `$(NAMESPACE)` stands for the suite's namespace.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `ExternalImages`: images built elsewhere than by the forge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalImages {
    images: Vec<String>,
    reason: String,
}

/// Reads the named fixtures in order. A name `fixture@variant` applies that
/// variant's patches; `variant`, when given, patches the fixture it belongs
/// to after them.
pub fn read(settings: &Settings, names: &[String], variant: Option<&Variant>) -> Result<Fixture> {
    let mut manifests = Vec::new();
    for name in names {
        let (folder, flavor) = match name.split_once('@') {
            Some((folder, flavor)) => (folder, Some(flavor)),
            None => (name.as_str(), None),
        };
        let dir = settings.fixture_dir(folder);
        let mut found = apply::read_dir(&dir)?;
        if let Some(flavor) = flavor {
            Variant::named(&dir, folder, flavor)?.apply(&mut found)?;
        }
        if let Some(variant) = variant.filter(|variant| variant.fixture == folder) {
            variant.apply(&mut found)?;
        }
        manifests.extend(found);
    }
    let ours = take_ours(&mut manifests);
    let mut fixture = Fixture { manifests, local_volumes: None, external_images: BTreeMap::new(), operator: None };
    for manifest in ours {
        let spec = manifest.object.data.get("spec").cloned().unwrap_or_default();
        let kind = manifest.object.types.as_ref().map(|types| types.kind.as_str()).unwrap_or_default();
        let what = || {
            format!("{}: {kind} {}", manifest.file.display(), manifest.object.metadata.name.as_deref().unwrap_or("?"))
        };
        match kind {
            "LocalVolumes" => {
                if fixture.local_volumes.is_some() {
                    bail!("{}: a fixture holds one LocalVolumes object at most", what());
                }
                let spec = LocalVolumesSpec::from_spec(spec).with_context(what)?;
                check_claims_fit(&fixture.manifests, &spec).with_context(what)?;
                fixture.local_volumes = Some(spec);
            }
            "ExternalImages" => {
                let external: ExternalImages = serde_json::from_value(spec).with_context(what)?;
                for image in external.images {
                    fixture.external_images.insert(image, external.reason.clone());
                }
            }
            "Operator" => {
                if fixture.operator.is_some() {
                    bail!("{}: a fixture holds one Operator object at most", what());
                }
                let mut operator: OperatorSpec = serde_json::from_value(spec).with_context(what)?;
                operator.name = manifest.object.metadata.name.clone().unwrap_or_default();
                fixture.operator = Some(operator);
            }
            other => bail!("{}: unknown kind {other} of {API_VERSION}", what()),
        }
    }
    Ok(fixture)
}

/// Takes stateproof's own objects out of the manifests.
fn take_ours(manifests: &mut Vec<Manifest>) -> Vec<Manifest> {
    let is_ours =
        |manifest: &Manifest| manifest.object.types.as_ref().is_some_and(|types| types.api_version == API_VERSION);
    let (ours, theirs): (Vec<Manifest>, Vec<Manifest>) = std::mem::take(manifests).into_iter().partition(is_ours);
    *manifests = theirs;
    ours
}

/// A claim asking more than the largest local volume would stay Pending forever.
fn check_claims_fit(manifests: &[Manifest], spec: &LocalVolumesSpec) -> Result<()> {
    let claims = apply::claim_requests(manifests, &spec.storage_class);
    let refused = spec.unsatisfiable(&claims)?;
    if !refused.is_empty() {
        bail!(
            "claim template(s) {} of StorageClass {} ask more than the largest local volume: they would stay Pending",
            refused.join(", "),
            spec.storage_class
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalVolumesSpec {
    pub storage_class: String,
    /// The label that marks eligible nodes, e.g. `has-local-fast-storage: "yes"`.
    pub node_label: BTreeMap<String, String>,
    /// How many nodes must be eligible.
    pub nodes: usize,
    /// Where on each node the volumes' directories are made.
    #[serde(default = "default_host_path")]
    pub host_path: String,
    /// The volumes each eligible node gets, `perNode` of each.
    pub volumes: Vec<VolumeSpec>,
    /// How many of each volume every eligible node gets (members on one
    /// node need one each).
    #[serde(default = "one")]
    pub per_node: usize,
    /// Pin each volume to its node. The API refuses a `local` volume without
    /// node affinity, so `false` makes plain hostPath volumes: what a manifest
    /// that drops the node affinity ends up with.
    #[serde(default = "pinned")]
    pub node_affinity: bool,
    /// What becomes of a volume whose claim is deleted.
    #[serde(default)]
    pub reclaim: Reclaim,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reclaim {
    /// It stays Released, its data kept, bound to nothing again (a
    /// `Retain` volume).
    #[default]
    Retain,
    /// It is wiped and offered again, as the local static provisioner does:
    /// what an autoscaler that deletes a removed bookie's claims relies on.
    Recycle,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    pub name: String,
    pub capacity: String,
    /// A filesystem of its own, as large as the capacity (tmpfs, in
    /// memory): the volume then reports its own usage, where directories
    /// on one disk would all report the disk's.
    #[serde(default)]
    pub tmpfs: bool,
}

fn default_host_path() -> String {
    "/mnt/local-pv".into()
}

fn pinned() -> bool {
    true
}

fn one() -> usize {
    1
}

impl LocalVolumesSpec {
    /// Reads the spec of a `LocalVolumes` object.
    pub fn from_spec(spec: serde_json::Value) -> Result<Self> {
        let spec: Self = serde_json::from_value(spec).context("invalid LocalVolumes spec")?;
        if spec.node_label.len() != 1 {
            bail!("LocalVolumes nodeLabel must hold exactly one label, not {}", spec.node_label.len());
        }
        if spec.volumes.is_empty() || spec.nodes == 0 || spec.per_node == 0 {
            bail!("LocalVolumes needs at least one node and one volume");
        }
        for volume in &spec.volumes {
            bytes(&volume.capacity).with_context(|| format!("volume {}", volume.name))?;
        }
        Ok(spec)
    }

    /// Every volume an eligible node gets, by its name there: the volume's
    /// name, numbered when a node gets more than one of each.
    pub fn volumes_per_node(&self) -> Vec<(String, &VolumeSpec)> {
        let named = |volume: &VolumeSpec, index: usize| match self.per_node {
            1 => volume.name.clone(),
            _ => format!("{}-{index}", volume.name),
        };
        (0..self.per_node)
            .flat_map(|index| self.volumes.iter().map(move |volume| (named(volume, index), volume)))
            .collect()
    }

    pub fn label(&self) -> (&str, &str) {
        let (key, value) = self.node_label.iter().next().expect("one label, checked when read");
        (key, value)
    }

    /// Claims (name, requested size) this spec's volumes cannot satisfy: a
    /// claim asking more than the largest volume would stay Pending forever.
    pub fn unsatisfiable<'a>(&self, claims: &'a [(String, String)]) -> Result<Vec<&'a str>> {
        let largest = self.volumes.iter().map(|volume| bytes(&volume.capacity)).collect::<Result<Vec<_>>>()?;
        let largest = largest.into_iter().max().unwrap_or(0);
        let mut refused = Vec::new();
        for (name, request) in claims {
            if bytes(request).with_context(|| format!("claim template {name}"))? > largest {
                refused.push(name.as_str());
            }
        }
        Ok(refused)
    }
}

/// A Kubernetes quantity (`10Gi`, `500M`, `1024`) in bytes.
pub fn bytes(quantity: &str) -> Result<u128> {
    let split = quantity.find(|c: char| !c.is_ascii_digit()).unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: u128 = number.parse().with_context(|| format!("{quantity:?} is not a size"))?;
    let scale: u128 = match suffix {
        "" => 1,
        "k" => 1000,
        "M" => 1000u128.pow(2),
        "G" => 1000u128.pow(3),
        "T" => 1000u128.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => bail!("{quantity:?}: unknown unit {suffix:?}"),
    };
    Ok(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::apply::parse;
    use serde_json::json;

    fn spec(affinity: bool) -> LocalVolumesSpec {
        LocalVolumesSpec::from_spec(json!({
            "storageClass": "local-storage",
            "nodeLabel": { "has-local-fast-storage": "yes" },
            "nodes": 2,
            "volumes": [{ "name": "journal", "capacity": "2Gi" }, { "name": "ledgers", "capacity": "10Gi" }],
            "nodeAffinity": affinity,
        }))
        .unwrap()
    }

    #[test]
    fn sizes_parse_in_both_unit_systems() {
        assert_eq!(bytes("10Gi").unwrap(), 10 << 30);
        assert_eq!(bytes("12G").unwrap(), 12_000_000_000);
        assert_eq!(bytes("512").unwrap(), 512);
        assert!(bytes("10 Gi").is_err());
        assert!(bytes("Gi").is_err());
    }

    #[test]
    fn a_claim_larger_than_every_volume_is_named() {
        let claims = vec![("journal".to_string(), "1Gi".to_string()), ("ledgers".to_string(), "12Gi".to_string())];
        assert_eq!(spec(true).unsatisfiable(&claims).unwrap(), vec!["ledgers"]);
        let fitting = vec![("ledgers".to_string(), "10Gi".to_string())];
        assert!(spec(true).unsatisfiable(&fitting).unwrap().is_empty());
    }

    #[test]
    fn several_volumes_per_node_are_numbered() {
        let mut spec = spec(true);
        let names =
            |spec: &LocalVolumesSpec| spec.volumes_per_node().into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        assert_eq!(names(&spec), ["journal", "ledgers"]);
        spec.per_node = 2;
        assert_eq!(names(&spec), ["journal-0", "ledgers-0", "journal-1", "ledgers-1"]);
    }

    #[test]
    fn a_spec_with_two_labels_is_refused() {
        let two = json!({ "storageClass": "s", "nodeLabel": { "a": "1", "b": "2" }, "nodes": 1,
            "volumes": [{ "name": "v", "capacity": "1Gi" }] });
        assert!(LocalVolumesSpec::from_spec(two).is_err());
    }

    fn settings(fixtures: &std::path::Path) -> Settings {
        let mut settings = Settings::from_env().unwrap();
        settings.fixtures_dir = fixtures.to_path_buf();
        settings
    }

    fn write(dir: &std::path::Path, file: &str, text: &str) {
        std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
        std::fs::write(dir.join(file), text).unwrap();
    }

    const BOOKIES: &str = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: bookie}\nspec:\n  replicas: 2\n  \
        volumeClaimTemplates:\n    - metadata: {name: journal-disk}\n      spec: {storageClassName: fast-local, \
        resources: {requests: {storage: JOURNAL}}}\n---\napiVersion: stateproof.io/v1\nkind: LocalVolumes\n\
        metadata: {name: disks}\nspec: {storageClass: fast-local, nodeLabel: {fast: 'yes'}, nodes: 2, \
        volumes: [{name: journal, capacity: 12Gi}]}\n---\napiVersion: stateproof.io/v1\nkind: ExternalImages\n\
        metadata: {name: x}\nspec: {images: ['other/bookie:1'], reason: built by its project}\n---\n\
        apiVersion: stateproof.io/v1\nkind: Operator\nmetadata: {name: op}\nspec: {jarSetting: OP_JAR, \
        crdsSetting: OP_CRDS, reason: built by its project, env: {NS: $(NAMESPACE)}}\n";

    #[test]
    fn stateproofs_own_objects_are_read_not_applied() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bk/bookies.yaml", &BOOKIES.replace("JOURNAL", "12Gi"));
        let fixture = read(&settings(dir.path()), &["bk".into()], None).unwrap();
        assert_eq!(fixture.manifests.len(), 1);
        assert_eq!(fixture.local_volumes.unwrap().storage_class, "fast-local");
        assert_eq!(fixture.external_images["other/bookie:1"], "built by its project");
        let operator = fixture.operator.unwrap();
        assert_eq!((operator.name.as_str(), operator.jar_setting.as_str()), ("op", "OP_JAR"));
        assert_eq!(operator.env["NS"], "$(NAMESPACE)");
    }

    #[test]
    fn a_claim_larger_than_the_volumes_is_refused_by_file_and_name() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bk/bookies.yaml", &BOOKIES.replace("JOURNAL", "13Gi"));
        let error = read(&settings(dir.path()), &["bk".into()], None).unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("bookies.yaml: LocalVolumes disks") && text.contains("journal-disk (13Gi)"), "{text}");
    }

    #[test]
    fn a_named_variant_patches_its_fixture() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bk/bookies.yaml", &BOOKIES.replace("JOURNAL", "1Gi"));
        write(
            dir.path(),
            "bk/variants/three.yaml",
            "description: three\npatches:\n- target: {kind: StatefulSet, name: bookie}\n  merge: {spec: {replicas: 3}}\n",
        );
        let fixture = read(&settings(dir.path()), &["bk@three".into()], None).unwrap();
        assert_eq!(fixture.manifests[0].object.data["spec"]["replicas"], 3);
        let error = read(&settings(dir.path()), &["bk@four".into()], None).unwrap_err();
        assert!(format!("{error:#}").contains("fixture bk has no variant four"), "{error:#}");
        let _ = parse("a: 1");
    }
}
