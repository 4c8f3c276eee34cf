//! The forge (`scripts/forge`) as the harness uses it: which images it
//! builds and in which stage, and building the stages a run needs before
//! the run starts, with the forge's own progress on the terminal.

use crate::process;
use crate::settings::Settings;
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// The stage that builds kind's node image.
pub const NODE_IMAGE_STAGE: &str = "node-image";
/// The stage that builds stateproof's node agent (cluster::node_agent).
pub const NODE_AGENT_STAGE: &str = "node-agent";

/// The images the forge builds, by the name fixtures give them, each with
/// its stage, and the local registry it publishes them to. Nodes pull them
/// from that registry alone.
#[derive(Debug, Clone, Default)]
pub struct Forged {
    stages: BTreeMap<String, String>,
    pub registry: Registry,
    /// Per forged image, the digest of what the registry holds under its
    /// tag: nodes pull by digest, because a node that pulled an earlier
    /// build under the same tag would otherwise keep running that.
    digests: Arc<Mutex<BTreeMap<String, String>>>,
}

/// The local registry: where the host pushes (`localhost:5001`), where
/// kind's nodes pull from (`http://stateproof-registry:5000`), and its
/// container, to join to a kind cluster's network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    pub push: String,
    pub pull: String,
    pub container: String,
}

impl Forged {
    /// Asks the forge (`--images`, `--registry`); it needs neither root nor Docker.
    pub async fn ask(settings: &Settings) -> Result<Forged> {
        let forge = settings.forge.display().to_string();
        let asking = || format!("asking {forge} what it builds");
        let images = process::output(&forge, &["--images"]).await.with_context(asking)?;
        let registry = process::output(&forge, &["--registry"]).await.with_context(asking)?;
        Forged::parse(&images, &registry)
    }

    fn parse(images: &str, registry: &str) -> Result<Forged> {
        let pairs = |listed: &str| -> Result<Vec<(String, String)>> {
            listed
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| match line.split_once(' ') {
                    Some((key, value)) => Ok((key.to_string(), value.trim().to_string())),
                    None => bail!("the forge listed {line:?}, not two words"),
                })
                .collect()
        };
        let stages = pairs(images)?.into_iter().map(|(stage, image)| (image, stage)).collect();
        let facts: BTreeMap<String, String> = pairs(registry)?.into_iter().collect();
        let fact = |name: &str| facts.get(name).cloned().with_context(|| format!("the forge names no registry {name}"));
        let registry = Registry { push: fact("push")?, pull: fact("pull")?, container: fact("container")? };
        Ok(Forged { stages, registry, digests: Default::default() })
    }

    /// The name nodes pull a forged image by: in the local registry.
    pub fn published(&self, image: &str) -> Option<String> {
        self.stage_of(image)?;
        let pinned = match self.digests.lock().unwrap().get(image) {
            Some(digest) => format!("@{digest}"),
            None => String::new(),
        };
        Some(format!("{}/{image}{pinned}", self.registry.push))
    }

    /// Records the digest the registry holds for a forged image.
    pub fn pin(&self, image: &str, digest: String) {
        self.digests.lock().unwrap().insert(image.to_string(), digest);
    }

    pub fn stage_of(&self, image: &str) -> Option<&str> {
        self.stages.get(image).map(String::as_str)
    }

    /// The name under which a cluster pulls a forged image from the user's
    /// registry (`STATEPROOF_IMAGE_REGISTRY`), where the forge pushed it.
    pub fn published_to(&self, registry: &str, image: &str) -> Option<String> {
        self.stage_of(image)?;
        Some(format!("{registry}/{image}"))
    }

    pub fn node_image(&self) -> Option<&str> {
        self.image_of(NODE_IMAGE_STAGE)
    }

    /// The one image a stage builds (the first, for a stage of several).
    pub fn image_of(&self, stage: &str) -> Option<&str> {
        self.stages.iter().find(|(_, of)| *of == stage).map(|(image, _)| image.as_str())
    }

    /// The stages that build these images (those the forge builds).
    pub fn stages_for<'a>(&self, images: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        images.into_iter().filter_map(|image| self.stage_of(image)).map(str::to_string).collect()
    }
}

/// Runs the forge for `stages` (and what they need, the host's packages and
/// Docker first): up-to-date stages take seconds, a cold machine much longer.
pub async fn build(settings: &Settings, stages: &BTreeSet<String>) -> Result<()> {
    let forge = settings.forge.display().to_string();
    let mut args = vec!["host"];
    args.extend(stages.iter().map(String::as_str));
    eprintln!("stateproof: running the forge for {} (up to date: seconds; cold: up to ~25 min)", args.join(" "));
    process::visible(&forge, &args).await.with_context(|| format!("the forge failed building {}", args.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forges_listing_maps_images_to_stages() {
        let forged = Forged::parse(
            "node-image stateproof/kind-node:v1.34.4\nzookeeper stateproof/zookeeper:3.8\n\
             pulsar stateproof/bookkeeper:4.17\npulsar stateproof/pulsar:4.0\n",
            "push localhost:5001\npull http://stateproof-registry:5000\ncontainer stateproof-registry\n",
        )
        .unwrap();
        assert_eq!(forged.published("stateproof/pulsar:4.0").as_deref(), Some("localhost:5001/stateproof/pulsar:4.0"));
        assert_eq!(forged.published("busybox:1"), None);
        forged.pin("stateproof/pulsar:4.0", "sha256:abc".into());
        let pinned = forged.published("stateproof/pulsar:4.0");
        assert_eq!(pinned.as_deref(), Some("localhost:5001/stateproof/pulsar:4.0@sha256:abc"));
        assert_eq!(forged.stage_of("stateproof/pulsar:4.0"), Some("pulsar"));
        assert_eq!(forged.stage_of("stateproof/pulsar:4.1"), None);
        assert_eq!(forged.node_image(), Some("stateproof/kind-node:v1.34.4"));
        let theirs = forged.published_to("registry.example/team", "stateproof/zookeeper:3.8");
        assert_eq!(theirs.as_deref(), Some("registry.example/team/stateproof/zookeeper:3.8"));
        assert_eq!(forged.published_to("registry.example/team", "busybox:1"), None);
        let stages = forged.stages_for(["stateproof/pulsar:4.0", "stateproof/bookkeeper:4.17", "busybox:1"]);
        assert_eq!(stages.into_iter().collect::<Vec<_>>(), ["pulsar"]);
        assert!(Forged::parse("garbage", "").is_err());
        assert!(Forged::parse("", "push localhost:5001").is_err(), "a registry without a pull address");
    }
}
