//! Local storage: members only on eligible nodes, each with its own volumes
//! on the node it runs on.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolume;

/// The pod template requires nodes labelled `key=value`: a nodeSelector, or
/// a required node affinity whose every term asks for it (terms are ORed, so
/// one term without it lets pods anywhere).
pub fn requires_node_label(set: &StatefulSet, key: &str, value: &str) -> Result<(), String> {
    let spec = set.spec.as_ref().and_then(|spec| spec.template.spec.as_ref());
    if spec.and_then(|spec| spec.node_selector.as_ref()).and_then(|selector| selector.get(key)).map(String::as_str)
        == Some(value)
    {
        return Ok(());
    }
    let terms = spec
        .and_then(|spec| spec.affinity.as_ref())
        .and_then(|affinity| affinity.node_affinity.as_ref())
        .and_then(|node| node.required_during_scheduling_ignored_during_execution.as_ref())
        .map(|required| required.node_selector_terms.clone())
        .unwrap_or_default();
    let asks = |term: &k8s_openapi::api::core::v1::NodeSelectorTerm| {
        term.match_expressions.iter().flatten().any(|expression| {
            expression.key == key
                && expression.operator == "In"
                && expression.values.as_ref().is_some_and(|values| values == &[value.to_string()])
        })
    };
    if !terms.is_empty() && terms.iter().all(asks) {
        Ok(())
    } else {
        Err(format!("the StatefulSet does not require nodes labelled {key}={value}: its members may run anywhere"))
    }
}

/// The node a volume's required node affinity pins it to, if exactly one.
pub fn pinned_node(volume: &PersistentVolume) -> Option<String> {
    let terms = volume.spec.as_ref()?.node_affinity.as_ref()?.required.as_ref()?.node_selector_terms.clone();
    let [term] = terms.as_slice() else { return None };
    let expression = term.match_expressions.iter().flatten().find(|e| e.key == "kubernetes.io/hostname")?;
    match (expression.operator.as_str(), expression.values.as_deref()) {
        ("In", Some([node])) => Some(node.clone()),
        _ => None,
    }
}

/// A member's claims, each with the volume it is bound to.
pub struct MemberClaims<'a> {
    pub pod: &'a str,
    pub node: &'a str,
    pub claims: Vec<(String, Option<PersistentVolume>)>,
}

/// The member has `expected` claims, each bound to a volume pinned to its node.
pub fn volumes_on_its_node(member: &MemberClaims<'_>, expected: usize) -> Result<(), String> {
    let MemberClaims { pod, node, claims } = member;
    if claims.len() != expected {
        let names: Vec<&str> = claims.iter().map(|(name, _)| name.as_str()).collect();
        return Err(format!(
            "{pod} has {} local volume(s) ({}), expected {expected}: what should be apart shares a volume",
            claims.len(),
            names.join(", ")
        ));
    }
    for (claim, volume) in claims {
        let Some(volume) = volume else {
            return Err(format!("{pod}'s claim {claim} is not bound to a volume"));
        };
        let name = volume.metadata.name.as_deref().unwrap_or("?");
        match pinned_node(volume) {
            Some(pinned) if pinned == *node => {}
            Some(pinned) => {
                return Err(format!("{pod} runs on {node}, but its claim {claim} is bound to {name} on {pinned}"));
            }
            None => {
                return Err(format!(
                    "{pod}'s claim {claim} is bound to {name}, which no node affinity pins to a node: its data is wherever the pod lands"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn statefulset(pod_spec: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({"metadata": {"name": "bookie"}, "spec": {"serviceName": "b",
            "selector": {"matchLabels": {"app": "b"}}, "template": {"spec": pod_spec}}}))
        .unwrap()
    }

    fn volume(name: &str, node: Option<&str>) -> PersistentVolume {
        let mut pv = json!({"metadata": {"name": name}, "spec": {}});
        if let Some(node) = node {
            pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
        }
        serde_json::from_value(pv).unwrap()
    }

    #[test]
    fn a_node_selector_or_a_required_affinity_on_every_term_is_a_requirement() {
        let selector = statefulset(json!({"containers": [], "nodeSelector": {"fast": "yes"}}));
        assert_eq!(requires_node_label(&selector, "fast", "yes"), Ok(()));
        let term = json!({"matchExpressions": [{"key": "fast", "operator": "In", "values": ["yes"]}]});
        let affinity = |terms| {
            json!({"containers": [], "affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}})
        };
        assert_eq!(requires_node_label(&statefulset(affinity(json!([term]))), "fast", "yes"), Ok(()));
        let loophole = affinity(json!([term, {"matchExpressions": [{"key": "x", "operator": "Exists"}]}]));
        assert!(requires_node_label(&statefulset(loophole), "fast", "yes").is_err());
        let none = requires_node_label(&statefulset(json!({"containers": []})), "fast", "yes").unwrap_err();
        assert!(none.contains("does not require nodes labelled fast=yes"), "{none}");
    }

    #[test]
    fn claims_must_be_as_many_as_expected_and_on_the_members_node() {
        let member = |claims| MemberClaims { pod: "bookie-0", node: "w1", claims };
        let good = member(vec![
            ("j".into(), Some(volume("pv-j", Some("w1")))),
            ("l".into(), Some(volume("pv-l", Some("w1")))),
        ]);
        assert_eq!(volumes_on_its_node(&good, 2), Ok(()));
        let one = member(vec![("data".into(), Some(volume("pv", Some("w1"))))]);
        assert!(volumes_on_its_node(&one, 2).unwrap_err().contains("has 1 local volume(s) (data), expected 2"));
        let elsewhere = member(vec![("j".into(), Some(volume("pv-j", Some("w2"))))]);
        assert!(volumes_on_its_node(&elsewhere, 1).unwrap_err().contains("bound to pv-j on w2"));
        let loose = member(vec![("j".into(), Some(volume("pv-j", None)))]);
        assert!(volumes_on_its_node(&loose, 1).unwrap_err().contains("no node affinity pins"));
        let unbound = member(vec![("j".into(), None)]);
        assert!(volumes_on_its_node(&unbound, 1).unwrap_err().contains("not bound"));
    }
}
