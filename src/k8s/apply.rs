//! Manifests: reading multi-document YAML from a fixture folder and applying
//! it server-side, kind by kind, through API discovery.

use super::FIELD_MANAGER;
use anyhow::{Context, Result, anyhow, bail};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Client, ResourceExt};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One object of a manifest, with the file it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub file: PathBuf,
    pub object: DynamicObject,
}

/// Reads every `*.yaml`/`*.yml` file of `dir` in name order.
pub fn read_dir(dir: &Path) -> Result<Vec<Manifest>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read fixture folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml" || ext == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("fixture folder {} holds no .yaml files", dir.display());
    }
    let mut manifests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        for object in parse(&text).with_context(|| format!("invalid manifest {}", file.display()))? {
            manifests.push(Manifest { file: file.clone(), object });
        }
    }
    Ok(manifests)
}

/// Parses multi-document YAML the way kubectl reads it: `0644` is octal.
/// Going through JSON values avoids serde's flatten limits on DynamicObject.
pub fn parse(text: &str) -> Result<Vec<DynamicObject>> {
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    let values: Vec<Value> = serde_saphyr::from_str_multiple_with_options(text, options).map_err(|e| anyhow!("{e}"))?;
    values
        .into_iter()
        .enumerate()
        .filter(|(_, value)| !value.is_null())
        .map(|(index, value)| {
            let object: DynamicObject = serde_json::from_value(value)
                .with_context(|| format!("document {} is not a Kubernetes object", index + 1))?;
            if object.types.is_none() || object.metadata.name.is_none() {
                bail!("document {} lacks apiVersion, kind or metadata.name", index + 1);
            }
            Ok(object)
        })
        .collect()
}

/// Every container image the manifests name, for loading into the cluster:
/// in containers, and anywhere in an operator's resource (KAAP's
/// `spec.global.image`), which the operator turns into containers.
pub fn images(manifests: &[Manifest]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for manifest in manifests {
        let mut note = |image: &str| {
            found.insert(image.to_string());
            None
        };
        visit_images(&mut manifest.object.data.clone(), is_operator_resource(&manifest.object), false, &mut note);
    }
    found
}

/// Replaces each image (as `images` finds them) that `rename` maps to another name.
pub fn rewrite_images(manifests: &mut [Manifest], rename: impl Fn(&str) -> Option<String>) {
    for manifest in manifests {
        let anywhere = is_operator_resource(&manifest.object);
        visit_images(&mut manifest.object.data, anywhere, false, &mut |image: &str| rename(image));
    }
}

fn visit_images(value: &mut Value, anywhere: bool, in_containers: bool, visit: &mut dyn FnMut(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            let image = map.get("image").and_then(Value::as_str).map(str::to_string);
            if let Some(renamed) = image.filter(|_| anywhere || in_containers).and_then(|image| visit(&image)) {
                map.insert("image".into(), Value::String(renamed));
            }
            for (key, child) in map.iter_mut() {
                visit_images(child, anywhere, key == "containers" || key == "initContainers", visit);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| visit_images(item, anywhere, in_containers, visit)),
        _ => {}
    }
}

/// An object of an API group that is not Kubernetes' own: a custom resource.
fn is_operator_resource(object: &DynamicObject) -> bool {
    let api_version = object.types.as_ref().map_or("", |types| types.api_version.as_str());
    api_version.split_once('/').is_some_and(|(group, _)| group.contains('.') && !group.ends_with(".k8s.io"))
}

/// The volumeClaimTemplates of the StatefulSets among the manifests that
/// use `storage_class`: (claim name, requested storage).
pub fn claim_requests(manifests: &[Manifest], storage_class: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for manifest in manifests.iter().filter(|manifest| kind_of(&manifest.object) == "StatefulSet") {
        let templates = manifest.object.data["spec"]["volumeClaimTemplates"].as_array().cloned().unwrap_or_default();
        for template in templates {
            if template["spec"]["storageClassName"].as_str() != Some(storage_class) {
                continue;
            }
            let name = template["metadata"]["name"].as_str().unwrap_or("?").to_string();
            if let Some(request) = template["spec"]["resources"]["requests"]["storage"].as_str() {
                found.push((format!("{name} ({request})"), request.to_string()));
            }
        }
    }
    found
}

/// Points what claims volumes of class `from` at class `to`.
pub fn rename_storage_class(manifests: &mut [Manifest], from: &str, to: &str) {
    for manifest in manifests.iter_mut() {
        rename_class_in(&mut manifest.object.data, from, to);
    }
}

/// Wherever a claim template names the class: a StatefulSet's
/// `storageClassName`, or an operator's resource (KAAP's
/// `existingStorageClassName`).
fn rename_class_in(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                let names_class = key == "storageClassName" || key == "existingStorageClassName";
                if names_class && field.as_str() == Some(from) {
                    *field = to.into();
                } else {
                    rename_class_in(field, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rename_class_in(item, from, to)),
        _ => {}
    }
}

/// Sets the replicas of the StatefulSet `name` among the manifests.
pub fn set_replicas(manifests: &mut [Manifest], name: &str, replicas: u32) -> Result<()> {
    let found = manifests.iter_mut().find(|manifest| {
        kind_of(&manifest.object) == "StatefulSet" && manifest.object.metadata.name.as_deref() == Some(name)
    });
    let manifest =
        found.with_context(|| format!("the fixture has no StatefulSet {name} to deploy with {replicas} replicas"))?;
    manifest.object.data["spec"]["replicas"] = replicas.into();
    Ok(())
}

/// Resolves kinds through discovery once per kind.
pub struct Applier {
    client: Client,
    namespace: String,
    kinds: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

impl Applier {
    pub fn new(client: Client, namespace: &str) -> Self {
        Applier { client, namespace: namespace.to_string(), kinds: HashMap::new() }
    }

    async fn api_for(&mut self, object: &DynamicObject) -> Result<(Api<DynamicObject>, Scope)> {
        let types = object.types.as_ref().ok_or_else(|| anyhow!("object without apiVersion/kind"))?;
        let gvk = GroupVersionKind::try_from(types)?;
        if !self.kinds.contains_key(&gvk) {
            let resolved = pinned_kind(&self.client, &gvk)
                .await
                .with_context(|| format!("the cluster does not serve {}/{}", types.api_version, types.kind))?;
            self.kinds.insert(gvk.clone(), resolved);
        }
        let (resource, capabilities) = &self.kinds[&gvk];
        let api = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(self.client.clone(), &self.namespace, resource),
            Scope::Cluster => Api::all_with(self.client.clone(), resource),
        };
        Ok((api, capabilities.scope.clone()))
    }

    /// Patches the live object a manifest among `manifests` names: with
    /// JSON patch operations, or else a merge patch.
    pub async fn patch_live(
        &mut self,
        manifests: &[Manifest],
        (kind, name): (&str, &str),
        json: Option<&json_patch::Patch>,
        merge: Option<&Value>,
    ) -> Result<()> {
        let manifest = manifests
            .iter()
            .find(|manifest| {
                kind_of(&manifest.object) == kind && manifest.object.metadata.name.as_deref() == Some(name)
            })
            .with_context(|| format!("the fixture has no {kind} {name} to patch"))?;
        let (api, _) = self.api_for(&manifest.object).await?;
        let params = PatchParams::default();
        let patched = match (json, merge) {
            (Some(operations), _) => api.patch(name, &params, &Patch::<()>::Json(operations.clone())).await,
            (None, Some(merge)) => api.patch(name, &params, &Patch::Merge(merge)).await,
            (None, None) => bail!("the patch of {kind} {name} has neither `json` nor `merge`"),
        };
        patched.with_context(|| format!("patching {kind} {name}"))?;
        Ok(())
    }

    /// Server-side applies every manifest into the namespace, in order.
    pub async fn apply(&mut self, manifests: &[Manifest]) -> Result<()> {
        for manifest in manifests {
            let mut object = manifest.object.clone();
            let (api, scope) = self.api_for(&object).await?;
            if matches!(scope, Scope::Namespaced) {
                object.metadata.namespace = Some(self.namespace.clone());
            }
            let name = object.name_any();
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&object))
                .await
                .with_context(|| format!("applying {} {name} from {}", kind_of(&object), manifest.file.display()))?;
        }
        Ok(())
    }

    /// Deletes the cluster-scoped objects among the manifests (namespaced ones
    /// go with their namespace).
    pub async fn delete_cluster_scoped(&mut self, manifests: &[Manifest]) -> Result<()> {
        for manifest in manifests {
            let (api, scope) = self.api_for(&manifest.object).await?;
            if matches!(scope, Scope::Cluster) {
                let name = manifest.object.name_any();
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => {
                        return Err(error).with_context(|| format!("deleting {} {name}", kind_of(&manifest.object)));
                    }
                }
            }
        }
        Ok(())
    }
}

fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map_or("object", |types| types.kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATEFULSET: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: zk-hs}
spec: {clusterIP: None, ports: [{port: 2888}]}
---
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: zk}
spec:
  template:
    spec:
      initContainers: [{name: init, image: busybox:1}]
      containers:
        - name: zookeeper
          image: stateproof/zookeeper:3.8
          volumeMounts: [{name: conf, mountPath: /conf}]
      volumes: [{name: conf, configMap: {name: zk, defaultMode: 0644}}]
"#;

    #[test]
    fn parses_multiple_documents_and_skips_empty_ones() {
        let objects = parse(STATEFULSET).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].types.as_ref().unwrap().kind, "StatefulSet");
    }

    #[test]
    fn reads_octal_modes_as_kubectl_does() {
        let objects = parse(STATEFULSET).unwrap();
        let mode = &objects[1].data["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"];
        assert_eq!(mode.as_i64(), Some(0o644));
    }

    #[test]
    fn collects_container_and_init_container_images() {
        let manifests: Vec<Manifest> =
            parse(STATEFULSET).unwrap().into_iter().map(|object| Manifest { file: "x.yaml".into(), object }).collect();
        let found: Vec<String> = images(&manifests).into_iter().collect();
        assert_eq!(found, ["busybox:1", "stateproof/zookeeper:3.8"]);
    }

    #[test]
    fn images_are_renamed_where_containers_name_them() {
        let mut manifests: Vec<Manifest> =
            parse(STATEFULSET).unwrap().into_iter().map(|object| Manifest { file: "x.yaml".into(), object }).collect();
        rewrite_images(&mut manifests, |image| {
            image.starts_with("stateproof/").then(|| format!("localhost:5001/{image}"))
        });
        let found: Vec<String> = images(&manifests).into_iter().collect();
        assert_eq!(found, ["busybox:1", "localhost:5001/stateproof/zookeeper:3.8"]);
    }

    #[test]
    fn an_operator_resource_names_images_anywhere_and_its_class_is_renamed() {
        let text = "apiVersion: kaap.oss.datastax.com/v1beta1\nkind: PulsarCluster\nmetadata: {name: p}\nspec:\n  \
                    global: {image: stateproof/pulsar-layout:4.0}\n  bookkeeper:\n    volumes:\n      \
                    ledgers: {existingStorageClassName: disks}\n---\napiVersion: v1\nkind: ConfigMap\n\
                    metadata: {name: c}\ndata: {image: not-an-image}\n";
        let mut manifests: Vec<Manifest> =
            parse(text).unwrap().into_iter().map(|object| Manifest { file: "x.yaml".into(), object }).collect();
        assert_eq!(images(&manifests).into_iter().collect::<Vec<_>>(), ["stateproof/pulsar-layout:4.0"]);
        rewrite_images(&mut manifests, |image| Some(format!("localhost:5001/{image}")));
        assert_eq!(manifests[0].object.data["spec"]["global"]["image"], "localhost:5001/stateproof/pulsar-layout:4.0");
        assert_eq!(manifests[1].object.data["data"]["image"], "not-an-image");
        rename_storage_class(&mut manifests, "disks", "disks-ns");
        assert_eq!(
            manifests[0].object.data["spec"]["bookkeeper"]["volumes"]["ledgers"]["existingStorageClassName"],
            "disks-ns"
        );
    }

    #[test]
    fn claim_requests_of_one_storage_class_are_listed() {
        let text = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: bookie}
spec:
  volumeClaimTemplates:
    - metadata: {name: journal-disk}
      spec: {storageClassName: local-storage, resources: {requests: {storage: 1Gi}}}
    - metadata: {name: other}
      spec: {storageClassName: standard, resources: {requests: {storage: 5Gi}}}
"#;
        let manifests: Vec<Manifest> =
            parse(text).unwrap().into_iter().map(|object| Manifest { file: "x.yaml".into(), object }).collect();
        let found = claim_requests(&manifests, "local-storage");
        assert_eq!(found, vec![("journal-disk (1Gi)".to_string(), "1Gi".to_string())]);
        let mut manifests = manifests;
        rename_storage_class(&mut manifests, "local-storage", "local-storage-ns");
        assert_eq!(claim_requests(&manifests, "local-storage-ns").len(), 1);
        assert_eq!(claim_requests(&manifests, "standard").len(), 1);
        assert!(claim_requests(&manifests, "local-storage").is_empty());
    }

    #[test]
    fn a_document_without_a_kind_is_rejected() {
        let error = parse("metadata: {name: x}\n").unwrap_err();
        assert!(format!("{error:#}").contains("document 1"), "{error:#}");
    }
}
