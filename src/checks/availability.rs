//! Availability as a measured claim: the longest time, over a window of
//! traffic, in which no write was acknowledged.

use crate::history::Millis;
use std::fmt;

/// The longest stretch without an acknowledgement, from `from` to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub from: Millis,
    pub to: Millis,
}

impl Gap {
    pub fn length(&self) -> Millis {
        self.to - self.from
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |at: Millis| {
            chrono::DateTime::from_timestamp_millis(at)
                .map_or_else(|| at.to_string(), |at| at.format("%H:%M:%S%.3f").to_string())
        };
        write!(f, "{:.1}s (from {} to {})", self.length() as f64 / 1000.0, time(self.from), time(self.to))
    }
}

/// Why writes were not available enough: the longest gap beyond `allowed`.
pub fn too_long(gap: Gap, allowed: std::time::Duration) -> Option<String> {
    (gap.length() > allowed.as_millis() as Millis).then(|| {
        format!(
            "writes stopped being acknowledged for {gap}, longer than the {} allowed",
            humantime::format_duration(allowed)
        )
    })
}

/// The longest gap between consecutive acknowledgements within the window
/// from `start` to `end`, the window's edges counting as bounds: traffic
/// that is never acknowledged is one gap as long as the window.
pub fn longest_gap(acks: &[Millis], start: Millis, end: Millis) -> Gap {
    let mut times: Vec<Millis> = acks.iter().copied().filter(|at| (start..=end).contains(at)).collect();
    times.sort_unstable();
    let bounds = std::iter::once(start).chain(times).chain(std::iter::once(end));
    let mut longest = Gap { from: start, to: start };
    let mut previous = None;
    for at in bounds {
        if let Some(before) = previous
            && at - before > longest.length()
        {
            longest = Gap { from: before, to: at };
        }
        previous = Some(at);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_longest_gap_between_acks_is_found_in_any_order() {
        let gap = longest_gap(&[1_500, 1_000, 9_000, 2_000], 0, 10_000);
        assert_eq!(gap, Gap { from: 2_000, to: 9_000 });
        assert_eq!(gap.length(), 7_000);
    }

    #[test]
    fn the_window_edges_bound_the_first_and_last_gaps() {
        assert_eq!(longest_gap(&[500, 600], 0, 10_000), Gap { from: 600, to: 10_000 });
        assert_eq!(longest_gap(&[9_500], 0, 10_000), Gap { from: 0, to: 9_500 });
    }

    #[test]
    fn no_ack_at_all_is_a_gap_as_long_as_the_window() {
        assert_eq!(longest_gap(&[], 100, 5_100).length(), 5_000);
        assert_eq!(longest_gap(&[20_000], 100, 5_100).length(), 5_000, "acks outside the window do not count");
    }

    #[test]
    fn a_gap_reads_with_its_length_and_times() {
        let gap = Gap { from: 1_764_000_000_000, to: 1_764_000_041_200 };
        assert!(gap.to_string().starts_with("41.2s (from "), "{gap}");
    }

    #[test]
    fn a_gap_beyond_the_bound_fails_naming_it_and_one_within_passes() {
        let gap = longest_gap(&[1_000, 2_000, 40_000], 0, 41_000);
        let why = too_long(gap, Duration::from_secs(30)).expect("a 38 s gap exceeds 30 s");
        assert!(why.starts_with("writes stopped being acknowledged for 38.0s"), "{why}");
        assert!(why.ends_with("longer than the 30s allowed"), "{why}");
        assert_eq!(too_long(gap, Duration::from_secs(38)), None);
    }
}
