//! Whether an etcd cluster serves as a whole, from what each member says of
//! itself (the Maintenance `Status` call, asked of every member through its
//! own connection) and the cluster's member list: a pure function, so that
//! every way a cluster can be unwell is a unit test.
//!
//! The member list alone says little: a frozen, crashed or wiped member stays
//! listed, started, with its name and URLs. Only asking each member finds it.

/// What a member answered about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its own member id (the response header's).
    pub id: u64,
    /// The leader it follows; 0 for none.
    pub leader: u64,
    pub term: u64,
    pub learner: bool,
    /// What it reports wrong, e.g. `etcdserver: no leader`.
    pub errors: Vec<String>,
}

/// One member's answer, or why there was none (a frozen member: the
/// client's timeout).
pub type Answer = Result<MemberStatus, String>;

/// A member as the cluster's member list has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: u64,
    /// Empty while the member was added but never started.
    pub name: String,
    pub learner: bool,
}

/// Healthy when every member (`answers[n]` is member `n`'s) answered without
/// errors, none is a learner, all follow one and the same leader, and the
/// member list holds exactly these members, all started voters.
pub fn judge(answers: &[Answer], listed: &Result<Vec<Listed>, String>) -> Result<(), String> {
    if answers.is_empty() {
        return Err("the cluster has no members".into());
    }
    let mut statuses = Vec::new();
    let mut wrong = Vec::new();
    for (member, answer) in answers.iter().enumerate() {
        match answer {
            Err(why) => wrong.push(format!("member {member}: no status: {why}")),
            Ok(status) if !status.errors.is_empty() => {
                wrong.push(format!("member {member}: reports {}", status.errors.join("; ")))
            }
            Ok(status) if status.learner => wrong.push(format!("member {member}: a learner, not a voter")),
            Ok(status) if status.leader == 0 => wrong.push(format!("member {member}: no leader (term {})", status.term)),
            Ok(status) => statuses.push((member, status)),
        }
    }
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    let leader = statuses[0].1.leader;
    if statuses.iter().any(|(_, status)| status.leader != leader) {
        return Err(format!("the members follow different leaders: {}", described(&statuses)));
    }
    let mut ids: Vec<u64> = statuses.iter().map(|(_, status)| status.id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != statuses.len() {
        return Err(format!("two members answer with the same member id: {}", described(&statuses)));
    }
    let listed = listed.as_ref().map_err(|why| format!("no member list: {why}"))?;
    if let Some(member) = listed.iter().find(|member| member.name.is_empty()) {
        return Err(format!("member {:x} is listed but was never started", member.id));
    }
    if let Some(member) = listed.iter().find(|member| member.learner) {
        return Err(format!("member {} ({:x}) is listed as a learner", member.name, member.id));
    }
    let mut listed_ids: Vec<u64> = listed.iter().map(|member| member.id).collect();
    listed_ids.sort_unstable();
    if listed_ids != ids {
        let names: Vec<String> = listed.iter().map(|member| format!("{} ({:x})", member.name, member.id)).collect();
        return Err(format!(
            "the member list holds {} member(s), {}, not the {} that answered: {}",
            listed.len(),
            names.join(", "),
            statuses.len(),
            described(&statuses)
        ));
    }
    if !ids.contains(&leader) {
        return Err(format!("the leader {leader:x} is none of the members"));
    }
    Ok(())
}

fn described(statuses: &[(usize, &MemberStatus)]) -> String {
    statuses
        .iter()
        .map(|(member, status)| {
            format!("member {member} is {:x}, follows {:x} in term {}", status.id, status.leader, status.term)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [u64; 3] = [0xa1, 0xb2, 0xc3];

    fn status(member: usize, leader: u64) -> Answer {
        Ok(MemberStatus { id: IDS[member], leader, term: 2, learner: false, errors: Vec::new() })
    }

    fn cluster() -> Vec<Answer> {
        (0..3).map(|member| status(member, IDS[1])).collect()
    }

    fn listed() -> Result<Vec<Listed>, String> {
        Ok((0..3).map(|n| Listed { id: IDS[n], name: format!("etcd-{n}"), learner: false }).collect())
    }

    #[test]
    fn three_voters_following_one_leader_are_healthy() {
        assert_eq!(judge(&cluster(), &listed()), Ok(()));
    }

    #[test]
    fn a_member_that_does_not_answer_is_named_with_why() {
        let mut answers = cluster();
        answers[2] = Err("no answer within 5s".into());
        let error = judge(&answers, &listed()).unwrap_err();
        assert_eq!(error, "member 2: no status: no answer within 5s");
    }

    #[test]
    fn members_without_a_quorum_have_no_leader_and_say_so() {
        let mut answers = cluster();
        answers[0] = Err("no answer within 5s".into());
        answers[1] = Err("no answer within 5s".into());
        answers[2] = Ok(MemberStatus {
            id: IDS[2],
            leader: 0,
            term: 3,
            learner: false,
            errors: vec!["etcdserver: no leader".into()],
        });
        let error = judge(&answers, &listed()).unwrap_err();
        assert!(error.contains("member 2: reports etcdserver: no leader"), "{error}");
        answers[2] = Ok(MemberStatus { id: IDS[2], leader: 0, term: 3, learner: false, errors: Vec::new() });
        assert!(judge(&answers, &listed()).unwrap_err().contains("member 2: no leader (term 3)"));
    }

    #[test]
    fn members_that_disagree_on_the_leader_fail() {
        let mut answers = cluster();
        answers[0] = status(0, IDS[0]);
        let error = judge(&answers, &listed()).unwrap_err();
        assert!(error.starts_with("the members follow different leaders"), "{error}");
        assert!(error.contains("member 0 is a1, follows a1"), "{error}");
    }

    #[test]
    fn a_learner_is_no_voter() {
        let mut answers = cluster();
        answers[1] = Ok(MemberStatus { id: IDS[1], leader: IDS[1], term: 2, learner: true, errors: Vec::new() });
        assert_eq!(judge(&answers, &listed()).unwrap_err(), "member 1: a learner, not a voter");
        let mut list = listed().unwrap();
        list[2].learner = true;
        assert!(judge(&cluster(), &Ok(list)).unwrap_err().contains("etcd-2 (c3) is listed as a learner"));
    }

    #[test]
    fn the_member_list_must_hold_exactly_the_members_that_answered() {
        let mut list = listed().unwrap();
        list.push(Listed { id: 0xd4, name: "etcd-3".into(), learner: false });
        let error = judge(&cluster(), &Ok(list)).unwrap_err();
        assert!(error.starts_with("the member list holds 4 member(s)"), "{error}");
        let mut list = listed().unwrap();
        list[0].name.clear();
        assert_eq!(judge(&cluster(), &Ok(list)).unwrap_err(), "member a1 is listed but was never started");
        let error = judge(&cluster(), &Err("timed out".into())).unwrap_err();
        assert_eq!(error, "no member list: timed out");
    }

    #[test]
    fn a_leader_outside_the_members_fails() {
        let answers: Vec<Answer> = (0..3).map(|member| status(member, 0xee)).collect();
        assert_eq!(judge(&answers, &listed()).unwrap_err(), "the leader ee is none of the members");
    }

    #[test]
    fn two_members_with_one_id_fail() {
        let mut answers = cluster();
        answers[2] = Ok(MemberStatus { id: IDS[0], leader: IDS[1], term: 2, learner: false, errors: Vec::new() });
        assert!(judge(&answers, &listed()).unwrap_err().starts_with("two members answer with the same member id"));
    }

    #[test]
    fn no_members_is_no_cluster() {
        assert!(judge(&[], &listed()).is_err());
    }
}
