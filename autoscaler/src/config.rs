//! The configuration file: KAAP's autoscaler settings under `autoscaler:`
//! (same names, same defaults), where the bookies are under `bookies:`, and
//! the self-check's deliberate defect. Everything is checked at start, so a
//! bad file stops the controller instead of failing every period.

use serde::Deserialize;
use std::fmt;

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub autoscaler: Autoscaler,
    pub bookies: Bookies,
    pub defect: Option<Defect>,
}

/// KAAP's `BookKeeperAutoscalerSpec`, with its defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Autoscaler {
    pub enabled: bool,
    pub period_ms: u64,
    pub disk_usage_tolerance_hwm: f64,
    pub disk_usage_tolerance_lwm: f64,
    pub min_writable_bookies: u32,
    pub scale_up_by: u32,
    pub scale_down_by: u32,
    pub scale_up_max_limit: u32,
    pub stabilization_window_ms: u64,
}

impl Default for Autoscaler {
    fn default() -> Self {
        Autoscaler {
            enabled: false,
            period_ms: 10_000,
            disk_usage_tolerance_hwm: 0.92,
            disk_usage_tolerance_lwm: 0.75,
            min_writable_bookies: 3,
            scale_up_by: 1,
            scale_down_by: 1,
            scale_up_max_limit: 30,
            stabilization_window_ms: 300_000,
        }
    }
}

/// Where the bookies are.
#[derive(Debug, Clone, PartialEq)]
pub struct Bookies {
    pub statefulset: String,
    pub container: String,
    pub http_port: u16,
    pub namespace: String,
}

/// A deliberate defect, for `stateproof self-check` to prove that the
/// autoscaler suites catch it. Never set in a real deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// Scale down by shrinking the StatefulSet alone: no read-only, no
    /// re-replication, no cookie removal.
    NoDecommission,
    /// No scale-up for too few writable bookies, and no floor for scale-down.
    IgnoreMinWritable,
    /// Pods count as settled as soon as they are Ready.
    NoStabilization,
    /// The victim is the last pod by name as a string (KAAP's choice):
    /// `bookie-9` rather than `bookie-10`.
    StringOrderVictim,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Defect::NoDecommission => "no-decommission",
            Defect::IgnoreMinWritable => "ignore-min-writable",
            Defect::NoStabilization => "no-stabilization",
            Defect::StringOrderVictim => "string-order-victim",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot parse the configuration: {0}")]
    Syntax(String),
    #[error("invalid configuration: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// The file as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    #[serde(default)]
    autoscaler: Autoscaler,
    bookies: BookiesFile,
    self_check_defect: Option<Defect>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BookiesFile {
    stateful_set: String,
    #[serde(default = "default_container")]
    container: String,
    #[serde(default = "default_http_port")]
    http_port: u16,
    namespace: Option<String>,
}

fn default_container() -> String {
    "bookie".into()
}

fn default_http_port() -> u16 {
    8000
}

/// Parses and checks a configuration file. `pod_namespace` is the
/// controller's own namespace (`POD_NAMESPACE`, from the downward API), used
/// when the file names none.
pub fn parse(text: &str, pod_namespace: Option<String>) -> Result<Config, ConfigError> {
    let file: File = serde_saphyr::from_str(text).map_err(|error| ConfigError::Syntax(error.to_string()))?;
    let mut problems = check(&file.autoscaler);
    let namespace = file.bookies.namespace.or(pod_namespace).filter(|namespace| !namespace.is_empty());
    if namespace.is_none() {
        problems.push("bookies.namespace is not set and neither is POD_NAMESPACE".into());
    }
    if file.bookies.stateful_set.is_empty() {
        problems.push("bookies.statefulSet is empty".into());
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    Ok(Config {
        autoscaler: file.autoscaler,
        bookies: Bookies {
            statefulset: file.bookies.stateful_set,
            container: file.bookies.container,
            http_port: file.bookies.http_port,
            namespace: namespace.unwrap_or_default(),
        },
        defect: file.self_check_defect,
    })
}

/// KAAP's CRD validation, plus the cross-field rules KAAP only finds at run
/// time (`scaleUpMaxLimit < minWritableBookies` throws on every period there).
fn check(a: &Autoscaler) -> Vec<String> {
    let mut problems = Vec::new();
    let (hwm, lwm) = (a.disk_usage_tolerance_hwm, a.disk_usage_tolerance_lwm);
    for (name, value) in [("diskUsageToleranceHwm", hwm), ("diskUsageToleranceLwm", lwm)] {
        // Written so that NaN fails too.
        if !(0.0..=1.0).contains(&value) {
            problems.push(format!("autoscaler.{name} ({value}) must be within 0..1"));
        }
    }
    if lwm >= hwm {
        problems.push(format!("autoscaler.diskUsageToleranceLwm ({lwm}) must be below diskUsageToleranceHwm ({hwm})"));
    }
    if a.min_writable_bookies < 1 {
        problems.push("autoscaler.minWritableBookies must be at least 1".into());
    }
    if a.scale_up_max_limit < a.min_writable_bookies {
        problems.push(format!(
            "autoscaler.scaleUpMaxLimit ({}) must be at least minWritableBookies ({})",
            a.scale_up_max_limit, a.min_writable_bookies
        ));
    }
    if a.period_ms < 1000 {
        problems.push(format!("autoscaler.periodMs ({}) must be at least 1000", a.period_ms));
    }
    for (name, value) in [("scaleUpBy", a.scale_up_by), ("scaleDownBy", a.scale_down_by)] {
        if value < 1 {
            problems.push(format!("autoscaler.{name} must be at least 1"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Config {
        parse(text, Some("pods-ns".into())).unwrap_or_else(|error| panic!("{error}"))
    }

    fn problems(text: &str) -> String {
        match parse(text, Some("pods-ns".into())) {
            Err(error) => error.to_string(),
            Ok(config) => panic!("accepted: {config:?}"),
        }
    }

    #[test]
    fn defaults_are_kaaps() {
        let config = parse_ok("bookies: {statefulSet: bookie}");
        assert_eq!(
            config.autoscaler,
            Autoscaler {
                enabled: false,
                period_ms: 10_000,
                disk_usage_tolerance_hwm: 0.92,
                disk_usage_tolerance_lwm: 0.75,
                min_writable_bookies: 3,
                scale_up_by: 1,
                scale_down_by: 1,
                scale_up_max_limit: 30,
                stabilization_window_ms: 300_000,
            }
        );
        let bookies = Bookies {
            statefulset: "bookie".into(),
            container: "bookie".into(),
            http_port: 8000,
            namespace: "pods-ns".into(),
        };
        assert_eq!(config.bookies, bookies);
        assert_eq!(config.defect, None);
    }

    #[test]
    fn every_field_is_read_by_its_kaap_name() {
        let config = parse_ok(
            "autoscaler:
  enabled: true
  periodMs: 5000
  diskUsageToleranceHwm: 0.9999
  diskUsageToleranceLwm: 0.999
  minWritableBookies: 2
  scaleUpBy: 2
  scaleDownBy: 3
  scaleUpMaxLimit: 10
  stabilizationWindowMs: 10000
bookies:
  statefulSet: bk
  container: server
  httpPort: 8080
  namespace: elsewhere
selfCheckDefect: string-order-victim
",
        );
        let a = &config.autoscaler;
        assert!(a.enabled);
        assert_eq!((a.period_ms, a.stabilization_window_ms), (5000, 10_000));
        assert_eq!((a.disk_usage_tolerance_hwm, a.disk_usage_tolerance_lwm), (0.9999, 0.999));
        assert_eq!((a.min_writable_bookies, a.scale_up_by, a.scale_down_by, a.scale_up_max_limit), (2, 2, 3, 10));
        let b = &config.bookies;
        assert_eq!((b.statefulset.as_str(), b.container.as_str(), b.http_port), ("bk", "server", 8080));
        assert_eq!(b.namespace, "elsewhere", "the file's namespace wins over POD_NAMESPACE");
        assert_eq!(config.defect, Some(Defect::StringOrderVictim));
    }

    #[test]
    fn every_defect_has_its_name() {
        for defect in
            [Defect::NoDecommission, Defect::IgnoreMinWritable, Defect::NoStabilization, Defect::StringOrderVictim]
        {
            let config = parse_ok(&format!("bookies: {{statefulSet: b}}\nselfCheckDefect: {defect}"));
            assert_eq!(config.defect, Some(defect));
        }
        assert!(problems("bookies: {statefulSet: b}\nselfCheckDefect: everything").contains("cannot parse"));
    }

    #[test]
    fn invalid_values_are_all_named() {
        let text = "autoscaler:
  diskUsageToleranceHwm: 1.5
  diskUsageToleranceLwm: -0.1
  minWritableBookies: 0
  periodMs: 999
  scaleDownBy: 0
bookies: {statefulSet: b}";
        let message = problems(text);
        for expected in [
            "diskUsageToleranceHwm (1.5) must be within 0..1",
            "diskUsageToleranceLwm (-0.1) must be within 0..1",
            "minWritableBookies must be at least 1",
            "periodMs (999) must be at least 1000",
            "scaleDownBy must be at least 1",
        ] {
            assert!(message.contains(expected), "{expected:?} missing from {message:?}");
        }
        assert!(!message.contains("scaleUpBy"), "{message}");
    }

    #[test]
    fn thresholds_must_be_ordered() {
        let message = problems(
            "autoscaler: {diskUsageToleranceHwm: 0.75, diskUsageToleranceLwm: 0.92}\nbookies: {statefulSet: b}",
        );
        assert!(
            message.contains("diskUsageToleranceLwm (0.92) must be below diskUsageToleranceHwm (0.75)"),
            "{message}"
        );
        let equal =
            problems("autoscaler: {diskUsageToleranceHwm: 0.8, diskUsageToleranceLwm: 0.8}\nbookies: {statefulSet: b}");
        assert!(equal.contains("must be below"), "{equal}");
    }

    #[test]
    fn the_upper_limit_cannot_be_below_the_minimum() {
        let message = problems("autoscaler: {minWritableBookies: 5, scaleUpMaxLimit: 4}\nbookies: {statefulSet: b}");
        assert!(message.contains("scaleUpMaxLimit (4) must be at least minWritableBookies (5)"), "{message}");
        parse_ok("autoscaler: {minWritableBookies: 5, scaleUpMaxLimit: 5}\nbookies: {statefulSet: b}");
    }

    #[test]
    fn the_namespace_comes_from_the_pod_when_the_file_has_none() {
        let text = "bookies: {statefulSet: b}";
        assert_eq!(parse(text, Some("mine".into())).unwrap().bookies.namespace, "mine");
        let message = parse(text, None).unwrap_err().to_string();
        assert!(message.contains("bookies.namespace is not set and neither is POD_NAMESPACE"), "{message}");
    }

    #[test]
    fn typos_and_missing_sections_are_refused() {
        assert!(problems("autoscaler: {minWritableBookie: 3}\nbookies: {statefulSet: b}").contains("cannot parse"));
        assert!(problems("autoscaler: {enabled: true}").contains("cannot parse"));
        assert!(problems("bookies: {statefulSet: b, httpPort: 70000}").contains("cannot parse"));
        assert!(problems("autoscaler: {minWritableBookies: -1}\nbookies: {statefulSet: b}").contains("cannot parse"));
    }
}
