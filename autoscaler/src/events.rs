//! What the autoscaler does, told twice: a timestamped line on stdout, and
//! a Kubernetes Event on the StatefulSet (`kubectl describe sts`). Events
//! are only ever created, never patched into series, so the Role needs
//! nothing but `create` on them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, Resource};

const CONTROLLER: &str = "stateproof.io/bookie-autoscaler";

/// A line on stdout, prefixed with the time.
pub fn say(line: &str) {
    println!("{} {line}", Timestamp::now());
}

pub struct Events {
    api: Api<Event>,
    regarding: ObjectReference,
    /// This controller's pod (events.k8s.io requires a reporting instance).
    instance: String,
}

impl Events {
    pub fn new(client: Client, statefulset: &StatefulSet) -> Self {
        let namespace = statefulset.metadata.namespace.clone().unwrap_or_default();
        let instance = std::env::var("HOSTNAME").unwrap_or_else(|_| "bookie-autoscaler".into());
        Events { api: Api::namespaced(client, &namespace), regarding: statefulset.object_ref(&()), instance }
    }

    /// Says the note and records it. Reasons ending in `Failed` are
    /// warnings. An event the API refuses is only logged: the step it
    /// describes has happened either way.
    pub async fn record(&self, reason: &str, note: String) {
        let warning = reason.ends_with("Failed");
        say(&format!("{}{reason}: {note}", if warning { "WARNING " } else { "" }));
        let now = Timestamp::now();
        let name = self.regarding.name.as_deref().unwrap_or("bookies");
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: self.regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some("Autoscale".into()),
            reason: Some(reason.into()),
            // The API server refuses notes over 1 kB.
            note: Some(note.chars().take(1000).collect()),
            regarding: Some(self.regarding.clone()),
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            ..Event::default()
        };
        if let Err(error) = self.api.create(&PostParams::default(), &event).await {
            say(&format!("cannot record the {reason} event: {error}"));
        }
    }
}
