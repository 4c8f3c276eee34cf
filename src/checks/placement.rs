//! Where members run: every member on a node of its own.

use std::collections::BTreeMap;

/// `members` maps each member's pod to its node (None: not scheduled).
pub fn spread_across_nodes(members: &BTreeMap<String, Option<String>>) -> Result<(), String> {
    let mut by_node: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (pod, node) in members {
        let Some(node) = node else {
            return Err(format!("{pod} is not scheduled on any node"));
        };
        by_node.entry(node).or_default().push(pod);
    }
    let shared: Vec<String> = by_node
        .iter()
        .filter(|(_, pods)| pods.len() > 1)
        .map(|(node, pods)| format!("{} share node {node}", pods.join(" and ")))
        .collect();
    if shared.is_empty() { Ok(()) } else { Err(shared.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placement(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs.iter().map(|(pod, node)| (pod.to_string(), node.map(str::to_string))).collect()
    }

    #[test]
    fn distinct_nodes_pass() {
        assert!(spread_across_nodes(&placement(&[("zk-0", Some("w1")), ("zk-1", Some("w2"))])).is_ok());
    }

    #[test]
    fn shared_nodes_are_named() {
        let error =
            spread_across_nodes(&placement(&[("zk-0", Some("w1")), ("zk-1", Some("w1")), ("zk-2", Some("w2"))]))
                .unwrap_err();
        assert_eq!(error, "zk-0 and zk-1 share node w1");
    }

    #[test]
    fn an_unscheduled_member_fails() {
        assert!(spread_across_nodes(&placement(&[("zk-0", None)])).unwrap_err().contains("not scheduled"));
    }
}

/// The StatefulSet's pods repel each other per node: a required pod
/// anti-affinity term on `kubernetes.io/hostname` whose selector matches the
/// pod template's own labels (a selector that matches nothing spreads nothing).
pub fn requires_anti_affinity(set: &k8s_openapi::api::apps::v1::StatefulSet) -> Result<(), String> {
    let template = set.spec.as_ref().map(|spec| &spec.template);
    let labels = template.and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let terms = template
        .and_then(|t| t.spec.as_ref())
        .and_then(|spec| spec.affinity.as_ref())
        .and_then(|affinity| affinity.pod_anti_affinity.as_ref())
        .and_then(|anti| anti.required_during_scheduling_ignored_during_execution.clone())
        .unwrap_or_default();
    if terms.is_empty() {
        return Err("no required pod anti-affinity: members may share a node".into());
    }
    let spreads = terms.iter().any(|term| {
        term.topology_key == "kubernetes.io/hostname"
            && term.label_selector.as_ref().is_some_and(|selector| selector_matches(selector, &labels))
    });
    if spreads {
        Ok(())
    } else {
        Err(format!("no required anti-affinity term on kubernetes.io/hostname selects the pods' own labels {labels:?}"))
    }
}

fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let labels_match = selector
        .match_labels
        .as_ref()
        .is_none_or(|wanted| wanted.iter().all(|(key, value)| labels.get(key) == Some(value)));
    let expressions_match = selector.match_expressions.as_ref().is_none_or(|expressions| {
        expressions.iter().all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.clone().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|value| values.contains(value)),
                "NotIn" => value.is_none_or(|value| !values.contains(value)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
    });
    let selects_something = selector.match_labels.as_ref().is_some_and(|m| !m.is_empty())
        || selector.match_expressions.as_ref().is_some_and(|e| !e.is_empty());
    selects_something && labels_match && expressions_match
}

#[cfg(test)]
mod anti_affinity_tests {
    use super::*;

    fn statefulset(affinity: serde_json::Value) -> k8s_openapi::api::apps::v1::StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "zk"},
            "spec": {"serviceName": "zk-hs", "selector": {"matchLabels": {"app": "zk"}},
                     "template": {"metadata": {"labels": {"app": "zk"}},
                                  "spec": {"containers": [], "affinity": affinity}}}
        }))
        .unwrap()
    }

    #[test]
    fn a_hostname_term_selecting_the_pods_passes() {
        let set =
            statefulset(serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname",
             "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["zk"]}]}}]}}));
        assert_eq!(requires_anti_affinity(&set), Ok(()));
    }

    #[test]
    fn a_selector_matching_other_labels_fails() {
        let set = statefulset(
            serde_json::json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "zk"}}}]}}),
        );
        assert!(requires_anti_affinity(&set).unwrap_err().contains("selects the pods' own labels"));
    }

    #[test]
    fn no_affinity_fails() {
        assert!(requires_anti_affinity(&statefulset(serde_json::json!({}))).unwrap_err().contains("no required"));
    }
}
