//! Steps that drive and watch bookies (autoscaling suites): disks filled,
//! bookies set read-only, the replicas an autoscaler asks for, ledgers kept
//! where they were, and the invariants over the test's samples.

use super::TestRun;
use crate::checks::autoscaling::{self, Invariants};
use crate::suite::{Member, Step};
use crate::systems::Bookies;
use crate::wait::{self, Probe};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

impl<'a> TestRun<'a> {
    fn bookie_cluster(&self) -> Result<&'a dyn Bookies> {
        let system = self.env.system.as_ref();
        system.bookies().with_context(|| format!("the {} adapter has no bookies to drive", self.env.suite.system))
    }

    pub(super) async fn fill_disk(&self, members: &[Member], to: f64) -> Result<()> {
        let bookies = self.bookie_cluster()?;
        for member in members {
            bookies.fill_disk(*member, (to > 0.0).then_some(to)).await?;
        }
        Ok(())
    }

    pub(super) async fn set_read_only(&self, member: Member, read_only: bool) -> Result<()> {
        let bookies = self.bookie_cluster()?;
        bookies.set_read_only(member, read_only).await?;
        self.expect_read_only(member, read_only, self.defaults().client_within).await
    }

    pub(super) async fn expect_read_only(&self, member: Member, read_only: bool, within: Duration) -> Result<()> {
        let bookies = self.bookie_cluster()?;
        let what = format!("member {member}'s bookie to be {}", if read_only { "read-only" } else { "writable" });
        wait::until(&what, within, || async {
            let found = bookies.bookies(&[member]).await?;
            Ok(match found.first() {
                Some(bookie) if bookie.writable != read_only => Probe::Done(()),
                Some(bookie) => Probe::Pending(format!("writable: {}", bookie.writable)),
                None => Probe::Pending("it does not answer".into()),
            })
        })
        .await?;
        Ok(())
    }

    pub(super) async fn expect_auditor(&self, elected: bool, within: Duration) -> Result<()> {
        let bookies = self.bookie_cluster()?;
        let members = self.env.ordinals().await?;
        let what = if elected { "an auditor elected" } else { "no auditor elected" };
        wait::until(what, within, || async {
            Ok(match bookies.auditor(&members).await? {
                Some(_) if elected => Probe::Done(()),
                None if !elected => Probe::Done(()),
                Some(auditor) => Probe::Pending(format!("{auditor} is the auditor")),
                None => Probe::Pending("none is elected".into()),
            })
        })
        .await?;
        Ok(())
    }

    pub(super) async fn expect_replicas(&self, count: u32, within: Duration) -> Result<()> {
        let env = self.env;
        wait::until_changed(&format!("{count} replicas asked for"), within, env.observer.changes(), || async {
            let asked = env.ordinals().await?.len() as u32;
            Ok(if asked == count { Probe::Done(()) } else { Probe::Pending(format!("{asked} replicas")) })
        })
        .await?;
        Ok(())
    }

    pub(super) async fn expect_replicas_stay(&self, count: u32, duration: Duration) -> Result<()> {
        let started = Instant::now();
        let mut changes = self.env.observer.changes();
        while started.elapsed() < duration {
            let asked = self.env.ordinals().await?.len() as u32;
            if asked != count {
                bail!("the replicas became {asked} after {:.0}s, not staying {count}", started.elapsed().as_secs_f64());
            }
            let left = duration.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left.min(Duration::from_secs(5)), changes.changed()).await;
        }
        Ok(())
    }

    pub(super) async fn remember_ledgers(&mut self) -> Result<()> {
        let ledgers = self.bookie_cluster()?.ledgers(&self.env.ordinals().await?).await?;
        eprintln!("[{}] {} ledgers remembered", self.label, ledgers.len());
        self.state.ledgers = Some(ledgers);
        Ok(())
    }

    pub(super) async fn expect_ledgers_kept(&self) -> Result<()> {
        let before = self.state.ledgers.as_ref().context("no ledgers remembered")?;
        let now = self.bookie_cluster()?.ledgers(&self.env.ordinals().await?).await?;
        let mut changed = Vec::new();
        for (ledger, pods) in before {
            match now.get(ledger) {
                None => changed.push(format!("ledger {ledger} is gone")),
                Some(found) if found != pods => {
                    changed.push(format!("ledger {ledger} moved from {pods:?} to {found:?}"))
                }
                Some(_) => {}
            }
        }
        if !changed.is_empty() {
            bail!("{}", changed.join("; "));
        }
        Ok(())
    }

    pub(super) async fn expect_new_ledgers_on(&self, member: Member, within: Duration) -> Result<()> {
        let before = self.state.ledgers.as_ref().context("no ledgers remembered")?;
        let bookies = self.bookie_cluster()?;
        let pod = self.env.members.pod(member);
        wait::until(&format!("a new ledger on {pod}"), within, || async {
            let now = bookies.ledgers(&self.env.ordinals().await?).await?;
            let new: Vec<&u64> = now.keys().filter(|ledger| !before.contains_key(ledger)).collect();
            Ok(match now.iter().find(|(ledger, pods)| !before.contains_key(ledger) && pods.contains(&pod)) {
                Some(_) => Probe::Done(()),
                None => Probe::Pending(format!("{} new ledgers, none on {pod}", new.len())),
            })
        })
        .await?;
        Ok(())
    }

    /// When a step fails before a later `expect-autoscaling` could judge:
    /// what the samples taken so far already show against its invariants.
    pub(super) fn judged_so_far(&self, later: &[Step]) -> Option<String> {
        let invariants = later.iter().find_map(|step| match step {
            Step::ExpectAutoscaling(invariants) => Some(invariants),
            _ => None,
        })?;
        let samples = self.samples.lock().unwrap();
        let broken = autoscaling::check_so_far(&samples, invariants);
        (!broken.is_empty()).then(|| broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
    }

    /// Fails on any broken invariant; a known defect the test names is a finding.
    pub(super) fn expect_autoscaling(&mut self, invariants: &Invariants) -> Result<()> {
        let broken = {
            let samples = self.samples.lock().unwrap();
            if samples.len() < 2 {
                bail!("only {} samples taken: nothing to judge", samples.len());
            }
            eprintln!("[{}] {} samples judged", self.label, samples.len());
            autoscaling::check(&samples, invariants)
        };
        let (known, broken): (Vec<_>, Vec<_>) = broken.into_iter().partition(|broken| broken.known_defect.is_some());
        self.findings.extend(known.iter().map(ToString::to_string));
        if !broken.is_empty() {
            bail!("{}", broken.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
        }
        Ok(())
    }
}
