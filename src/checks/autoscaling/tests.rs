use super::*;
use std::time::Duration;

/// A settled cluster of `replicas` bookies (ordinals from 9), every pod
/// Ready since 0, every bookie writable, its claims and cookies in place.
fn settled(at: Millis, replicas: u32) -> Sample {
    let ordinals = 9..9 + replicas;
    let name = |ordinal: u32| format!("bookie-{ordinal}");
    Sample {
        at,
        replicas,
        pods: ordinals
            .clone()
            .map(|ordinal| PodSample { name: name(ordinal), ordinal, ready_since: Some(0), terminating: false })
            .collect(),
        bookies: ordinals.clone().map(|ordinal| BookieSample { ordinal, writable: true, usage: 0.1 }).collect(),
        claims: ordinals.clone().map(|ordinal| format!("ledgers-disk-{}", name(ordinal))).collect(),
        cookies: ordinals.clone().map(name).collect(),
        ledgers: BTreeMap::from([(1, BTreeSet::from([name(9), name(10)]))]),
    }
}

fn read_only(mut sample: Sample, ordinal: u32) -> Sample {
    sample.bookies.iter_mut().filter(|bookie| bookie.ordinal == ordinal).for_each(|bookie| bookie.writable = false);
    sample
}

fn asking(mut sample: Sample, replicas: u32) -> Sample {
    sample.replicas = replicas;
    sample
}

fn without_pod(mut sample: Sample, ordinal: u32) -> Sample {
    sample.pods.retain(|pod| pod.ordinal != ordinal);
    sample.bookies.retain(|bookie| bookie.ordinal != ordinal);
    sample
}

fn safe() -> Invariants {
    Invariants { safe_decommission: true, ..Invariants::default() }
}

/// A safe scale-down of bookie-11: read-only, shrink, gone, claims and cookie after.
fn safe_scale_down() -> Vec<Sample> {
    let mut gone = without_pod(asking(settled(40_000, 3), 2), 11);
    gone.claims.remove("ledgers-disk-bookie-11");
    gone.cookies.remove("bookie-11");
    vec![
        settled(30_000, 3),
        read_only(settled(32_000, 3), 11),
        asking(read_only(settled(34_000, 3), 11), 2),
        without_pod(asking(settled(36_000, 3), 2), 11),
        gone,
    ]
}

#[test]
fn a_decommission_by_the_book_breaks_nothing() {
    let all = Invariants {
        replicas_at_most: Some(4),
        writable_at_least: Some(1),
        step_at_most: Some(1),
        settled_for: Some(Duration::from_secs(20)),
        unsettled_is_known: None,
        safe_decommission: true,
    };
    assert_eq!(check(&safe_scale_down(), &all), []);
}

#[test]
fn shrinking_without_a_decommission_names_the_writable_victim() {
    let samples = vec![settled(30_000, 3), asking(settled(32_000, 3), 2)];
    let broken = check(&samples, &safe());
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].sample, 1);
    assert_eq!(
        broken[0].why,
        "the StatefulSet shrank while its victim bookie-11 (the highest ordinal) was still writable"
    );
}

#[test]
fn decommissioning_the_victim_in_string_order_names_the_bookie_taken_instead() {
    // bookie-9, bookie-10, bookie-11: "bookie-9" sorts last as a string.
    let samples =
        vec![settled(30_000, 3), read_only(settled(32_000, 3), 9), asking(read_only(settled(34_000, 3), 9), 2)];
    let broken = check(&samples, &safe());
    assert!(broken[0].why.ends_with("was still writable; read-only instead: bookie-9"), "{broken:?}");
}

#[test]
fn a_ledger_naming_the_victim_after_its_pod_went_breaks_the_decommission() {
    let mut samples = safe_scale_down();
    samples[3].ledgers.insert(7, BTreeSet::from(["bookie-11".to_string()]));
    let broken = check(&samples, &safe());
    assert_eq!(broken[0].why, "bookie-11 was gone while ledgers 7 still named it");
    assert_eq!(broken[0].sample, 3);
}

#[test]
fn claims_deleted_before_the_pod_went_break_the_decommission() {
    let mut samples = safe_scale_down();
    samples[2].claims.remove("ledgers-disk-bookie-11");
    let broken = check(&samples, &safe());
    assert_eq!(broken[0].why, "the claims of bookie-11 were deleted while its pod still existed");
}

#[test]
fn a_cookie_left_behind_breaks_the_decommission() {
    let mut samples = safe_scale_down();
    samples[4].cookies.insert("bookie-11".into());
    assert_eq!(check(&samples, &safe())[0].why, "the cookie of bookie-11 was still there at the end");
}

#[test]
fn too_many_replicas_or_too_few_writable_bookies_name_the_first_sample() {
    let samples = vec![settled(0, 2), asking(settled(2_000, 2), 5), read_only(read_only(settled(4_000, 2), 9), 10)];
    let limits = Invariants { replicas_at_most: Some(4), writable_at_least: Some(1), ..Invariants::default() };
    let broken = check(&samples, &limits);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert_eq!((broken[0].sample, broken[0].why.as_str()), (1, "5 replicas asked for, more than the 4 allowed"));
    assert_eq!((broken[1].sample, broken[1].why.as_str()), (2, "0 writable bookies, fewer than the 1 required"));
    assert!(broken[0].to_string().starts_with("sample 2 at "), "{}", broken[0]);
}

#[test]
fn a_change_while_a_pod_is_young_or_a_change_back_within_the_window_is_unsettled() {
    let window = Invariants { settled_for: Some(Duration::from_secs(20)), ..Invariants::default() };
    let mut young = settled(30_000, 2);
    young.pods[1].ready_since = Some(25_000);
    let broken = check(&[young.clone(), asking(young, 3)], &window);
    assert!(broken[0].why.contains("while bookie-10 was Ready for 5.0s, within the 20s window"), "{broken:?}");
    let flapping = [settled(30_000, 2), settled(32_000, 3), settled(40_000, 3), settled(44_000, 2)];
    let broken = check(&flapping, &window);
    assert!(
        broken.iter().any(|b| b.why.starts_with("replicas changed by -1 12.0s after a change by +1")),
        "{broken:?}"
    );
}

#[test]
fn an_unsettled_change_the_test_knows_is_named_as_that_defect_and_flapping_is_not() {
    let defect = "counts the window from each pod's start".to_string();
    let window = Invariants {
        settled_for: Some(Duration::from_secs(20)),
        unsettled_is_known: Some(defect.clone()),
        ..Invariants::default()
    };
    let mut young = settled(30_000, 2);
    young.pods[1].ready_since = Some(25_000);
    let broken = check(&[young.clone(), asking(young, 3)], &window);
    assert_eq!(broken[0].known_defect.as_ref(), Some(&defect));
    assert!(broken[0].to_string().ends_with("(the known defect: counts the window from each pod's start)"));
    let flapping = [settled(30_000, 2), settled(32_000, 3), settled(40_000, 3), settled(44_000, 2)];
    assert!(check(&flapping, &window).iter().any(|b| b.known_defect.is_none()), "flapping is no known defect");
}

#[test]
fn more_than_one_step_at_once_is_counted() {
    let broken =
        check(&[settled(0, 2), settled(2_000, 4)], &Invariants { step_at_most: Some(1), ..Invariants::default() });
    assert_eq!(broken[0].why, "replicas went from 2 to 4 at once");
}

#[test]
fn claims_left_behind_break_the_decommission() {
    let mut samples = safe_scale_down();
    samples[4].claims.insert("ledgers-disk-bookie-11".into());
    assert_eq!(check(&samples, &safe())[0].why, "the claims of bookie-11 were still there at the end, its pod gone");
}

#[test]
fn a_series_cut_short_shows_an_unsafe_shrink_but_not_what_only_its_end_can_tell() {
    let mut samples = safe_scale_down();
    samples[4].claims.insert("ledgers-disk-bookie-11".into());
    assert_eq!(check_so_far(&samples, &safe()), []);
    let unsafe_shrink = vec![settled(30_000, 3), asking(settled(32_000, 3), 2)];
    let broken = check_so_far(&unsafe_shrink, &safe());
    assert!(broken[0].why.starts_with("the StatefulSet shrank while its victim bookie-11"), "{broken:?}");
}
