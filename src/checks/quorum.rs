//! ZooKeeper quorum from the `mntr` four-letter word. Pod readiness (`ruok`)
//! does not mean a member has joined the quorum; `mntr` says what it is.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    Leader {
        synced_followers: u32,
    },
    Follower,
    Standalone,
    /// The member answered but is not serving (no quorum, or starting).
    NotServing(String),
    Unreachable(String),
}

pub fn parse_mntr(answer: &str) -> MemberState {
    let field = |name: &str| {
        answer.lines().find_map(|line| {
            let (key, value) = line.split_once('\t')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    match field("zk_server_state").as_deref() {
        Some("leader") => MemberState::Leader {
            synced_followers: field("zk_synced_followers").and_then(|v| v.parse().ok()).unwrap_or(0),
        },
        Some("follower") => MemberState::Follower,
        Some("standalone") => MemberState::Standalone,
        Some(other) => MemberState::NotServing(format!("state {other}")),
        None => MemberState::NotServing(answer.trim().chars().take(120).collect()),
    }
}

/// Exactly one leader, every other member a follower, and the leader counts
/// all of them as synced. A single member must be standalone.
pub fn judge(states: &[MemberState]) -> Result<(), String> {
    let describe = || {
        states
            .iter()
            .enumerate()
            .map(|(member, state)| format!("member {member}: {state:?}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if states.is_empty() {
        return Err("the ensemble has no members".into());
    }
    if states.len() == 1 {
        return match states[0] {
            MemberState::Standalone => Ok(()),
            _ => Err(describe()),
        };
    }
    let leaders: Vec<u32> = states
        .iter()
        .filter_map(|state| match state {
            MemberState::Leader { synced_followers } => Some(*synced_followers),
            _ => None,
        })
        .collect();
    let followers = states.iter().filter(|state| **state == MemberState::Follower).count();
    let expected_followers = states.len() - 1;
    match leaders.as_slice() {
        [synced] if followers == expected_followers && *synced as usize == expected_followers => Ok(()),
        [_] | [] | [_, _, ..] => {
            Err(format!("{} leader(s), {followers}/{expected_followers} followers: {}", leaders.len(), describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = "zk_version\t3.8.0\nzk_server_state\tleader\nzk_synced_followers\t2\n";

    #[test]
    fn parses_a_leader_with_its_synced_followers() {
        assert_eq!(parse_mntr(LEADER), MemberState::Leader { synced_followers: 2 });
        assert_eq!(parse_mntr("zk_server_state\tfollower\n"), MemberState::Follower);
    }

    #[test]
    fn a_member_without_quorum_is_not_serving() {
        let state = parse_mntr("This ZooKeeper instance is not currently serving requests\n");
        assert!(matches!(state, MemberState::NotServing(text) if text.contains("not currently serving")));
    }

    #[test]
    fn a_whole_ensemble_passes() {
        let states = [MemberState::Follower, MemberState::Leader { synced_followers: 2 }, MemberState::Follower];
        assert_eq!(judge(&states), Ok(()));
    }

    #[test]
    fn a_leader_missing_a_synced_follower_fails() {
        let states = [MemberState::Follower, MemberState::Leader { synced_followers: 1 }, MemberState::Follower];
        assert!(judge(&states).is_err());
    }

    #[test]
    fn no_members_is_not_a_quorum() {
        assert!(judge(&[]).is_err());
    }

    #[test]
    fn two_leaders_fail() {
        let leader = MemberState::Leader { synced_followers: 2 };
        let error = judge(&[leader.clone(), leader, MemberState::Follower]).unwrap_err();
        assert!(error.starts_with("2 leader(s)"), "{error}");
    }

    #[test]
    fn an_unreachable_member_fails_and_is_named() {
        let states = [
            MemberState::Leader { synced_followers: 1 },
            MemberState::Follower,
            MemberState::Unreachable("connection refused".into()),
        ];
        assert!(judge(&states).unwrap_err().contains("member 2: Unreachable"));
    }
}
