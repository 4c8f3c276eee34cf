//! Safe decommission of one bookie, before its StatefulSet shrinks:
//! read-only (verified), its ledgers re-replicated (verified: no ledger
//! names it any more), its cookie deleted. Any failure sets it writable
//! again, so that a failed attempt leaves the cluster as it was and the next
//! period decides afresh. The commands and their outputs were checked on
//! BookKeeper 4.17.2 (see the crate's README).

use crate::bookie_http::BookieHttp;
use crate::events::Events;
use crate::shell::{self, ShellRun};
use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the victim has to show up as read-only.
const READ_ONLY_WITHIN: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(500);
/// Recoveries before giving up on ledgers that still name the victim (one
/// created just before it turned read-only can appear after a recovery).
const RECOVERIES: usize = 3;
/// Re-replication copies data: allow it time, but not for ever.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const SHELL_TIMEOUT: Duration = Duration::from_secs(120);

/// The bookie to decommission: its pod and the pod's IP, which is how the
/// registry may name it when bookies use IPs as their ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Victim {
    pub pod: String,
    pub ip: String,
}

/// What the protocol needs from the cluster. [`Live`] is the real one;
/// the tests script it.
pub trait Admin {
    /// `PUT /api/v1/bookie/state/readonly` on the victim.
    async fn set_read_only(&self, read_only: bool) -> Result<()>;
    /// `GET /api/v1/bookie/state` on the victim: its `readOnly`.
    async fn is_read_only(&self) -> Result<bool>;
    /// The read-only bookies the registry lists: id -> host name.
    async fn read_only_bookies(&self) -> Result<BTreeMap<String, Option<String>>>;
    /// `bookkeeper-shell ARGS` on a bookie other than the victim.
    async fn shell(&self, args: &[&str], timeout: Duration) -> Result<ShellRun>;
    /// Tells a step (log line and event).
    async fn step(&self, reason: &str, note: String);
}

/// Decommissions the victim; its bookie id on success. On failure the
/// victim is writable again and the error says why.
pub async fn run(admin: &impl Admin, victim: &Victim) -> Result<String, String> {
    admin
        .step("DecommissionStarted", format!("decommissioning {}: read-only, re-replication, cookie", victim.pod))
        .await;
    match steps(admin, victim).await {
        Ok(id) => Ok(id),
        Err(error) => {
            let why = format!("{error:#}");
            let after = match admin.set_read_only(false).await {
                Ok(()) => "it is writable again".to_string(),
                Err(error) => format!("setting it writable again failed too: {error:#}"),
            };
            admin.step("DecommissionFailed", format!("decommission of {} failed: {why}; {after}", victim.pod)).await;
            Err(why)
        }
    }
}

async fn steps(admin: &impl Admin, victim: &Victim) -> Result<String> {
    admin.set_read_only(true).await?;
    let id = read_only_id(admin, victim).await?;
    admin.step("BookieReadOnly", format!("{} is read-only; its bookie id is {id}", victim.pod)).await;
    recover(admin, &id).await?;
    admin.step("LedgersRecovered", format!("re-replicated: no ledger names {id} any more")).await;
    delete_cookie(admin, &id).await?;
    admin.step("CookieDeleted", format!("deleted the cookie of {id}")).await;
    Ok(id)
}

/// Waits until the victim says it is read-only and the registry lists it
/// so; the id is the registry's. Taken from there rather than computed, so
/// that `listledgers` is asked about an id that exists: for an unknown id
/// it prints nothing and succeeds.
async fn read_only_id(admin: &impl Admin, victim: &Victim) -> Result<String> {
    let deadline = tokio::time::Instant::now() + READ_ONLY_WITHIN;
    loop {
        let seen = match admin.is_read_only().await {
            Ok(true) => admin.read_only_bookies().await.map(|listed| {
                listed.into_iter().filter(|(id, host)| names(victim, id, host)).map(|(id, _)| id).collect::<Vec<_>>()
            }),
            Ok(false) => Ok(Vec::new()),
            Err(error) => Err(error),
        };
        let why = match seen.as_deref() {
            Ok([id]) => return Ok(id.clone()),
            Ok([]) => "its state and the read-only list do not say so".to_string(),
            Ok(ids) => bail!("several read-only bookie ids name {}: {}", victim.pod, ids.join(", ")),
            Err(error) => format!("{error:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("{} did not become read-only within {READ_ONLY_WITHIN:?}: {why}", victim.pod);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a registry entry is the victim: its id's host (or the host name
/// listed with it) is the pod's IP, or a DNS name whose first label is the
/// pod's name (`bookie-2.bookie.ns.svc.cluster.local:3181`, or `bookie-2:3181`).
fn names(victim: &Victim, id: &str, host: &Option<String>) -> bool {
    let id_host = id.rsplit_once(':').map_or(id, |(host, _)| host);
    [Some(id_host), host.as_deref()]
        .into_iter()
        .flatten()
        .any(|host| host == victim.ip || host.split('.').next() == Some(victim.pod.as_str()))
}

async fn recover(admin: &impl Admin, id: &str) -> Result<()> {
    let mut attempt = 1;
    loop {
        let recovered = admin.shell(&["recover", "-f", id], RECOVER_TIMEOUT).await?;
        if !recovered.ok {
            bail!("bookkeeper-shell recover -f {id} failed: {}", recovered.tail());
        }
        let ledgers = ledgers_naming(admin, id).await?;
        if ledgers.is_empty() {
            return Ok(());
        }
        if attempt == RECOVERIES {
            bail!("after {RECOVERIES} recoveries, ledgers still name {id}: {}", ledgers.join(", "));
        }
        attempt += 1;
    }
}

/// The ledgers whose metadata names the bookie. `listledgers` prints one
/// `ledgerID: N` line per ledger on stdout; its errors are log lines and a
/// non-zero exit, both taken as failure (never as "no ledgers").
async fn ledgers_naming(admin: &impl Admin, id: &str) -> Result<Vec<String>> {
    let listed = admin.shell(&["listledgers", "-bookieid", id], SHELL_TIMEOUT).await?;
    let errors = ["Unable to read the ledger", "Received error return value", "Received Exception while processing"];
    if !listed.ok || errors.iter().any(|error| listed.output.contains(error)) {
        bail!("bookkeeper-shell listledgers -bookieid {id} failed: {}", listed.tail());
    }
    Ok(listed
        .output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ledgerID:"))
        .map(|ledger| ledger.trim().to_string())
        .collect())
}

/// `cookie_delete` exits 0 silently, or fails with `Cookie not found for
/// bookie '<id>'` when there is none: that one is done already (a retried
/// decommission), anything else is a failure.
async fn delete_cookie(admin: &impl Admin, id: &str) -> Result<()> {
    let deleted = admin.shell(&["cookie_delete", id], SHELL_TIMEOUT).await?;
    if deleted.ok || deleted.output.contains("Cookie not found for bookie") {
        return Ok(());
    }
    bail!("bookkeeper-shell cookie_delete {id} failed: {}", deleted.tail())
}

/// The real cluster: the victim's HTTP API, the shell in another bookie's
/// pod, events on the StatefulSet.
pub struct Live<'a> {
    pub victim: BookieHttp,
    pub pods: &'a Api<Pod>,
    /// The pod the shell runs in: a bookie that stays.
    pub helper: String,
    pub container: &'a str,
    pub events: &'a Events,
}

impl Admin for Live<'_> {
    async fn set_read_only(&self, read_only: bool) -> Result<()> {
        self.victim.set_read_only(read_only).await
    }

    async fn is_read_only(&self) -> Result<bool> {
        Ok(self.victim.state().await?.read_only)
    }

    async fn read_only_bookies(&self) -> Result<BTreeMap<String, Option<String>>> {
        self.victim.read_only_bookies().await
    }

    async fn shell(&self, args: &[&str], timeout: Duration) -> Result<ShellRun> {
        shell::run(self.pods, &self.helper, self.container, args, timeout).await
    }

    async fn step(&self, reason: &str, note: String) {
        self.events.record(reason, note).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::anyhow;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A scripted cluster: the victim becomes read-only when told, shell
    /// commands answer from a script in order, and everything is logged.
    #[derive(Default)]
    struct Script {
        read_only: RefCell<bool>,
        /// The victim's entry in the read-only list (its id, host name).
        listed_as: (String, Option<String>),
        /// Whether the victim ignores the PUT (stays writable).
        ignores_put: bool,
        answers: RefCell<VecDeque<ShellRun>>,
        log: RefCell<Vec<String>>,
    }

    impl Script {
        fn new(answers: Vec<ShellRun>) -> Self {
            Script {
                listed_as: (
                    "bookie-3.bookie.ns.svc.cluster.local:3181".into(),
                    Some("bookie-3.bookie.ns.svc.cluster.local".into()),
                ),
                answers: RefCell::new(answers.into()),
                ..Script::default()
            }
        }

        fn log(&self) -> Vec<String> {
            self.log.borrow().clone()
        }
    }

    impl Admin for Script {
        async fn set_read_only(&self, read_only: bool) -> Result<()> {
            self.log.borrow_mut().push(format!("readOnly={read_only}"));
            if !self.ignores_put {
                *self.read_only.borrow_mut() = read_only;
            }
            Ok(())
        }

        async fn is_read_only(&self) -> Result<bool> {
            Ok(*self.read_only.borrow())
        }

        async fn read_only_bookies(&self) -> Result<BTreeMap<String, Option<String>>> {
            let mut listed = BTreeMap::from([("bookie-30:3181".to_string(), Some("bookie-30".to_string()))]);
            if *self.read_only.borrow() {
                listed.insert(self.listed_as.0.clone(), self.listed_as.1.clone());
            }
            Ok(listed)
        }

        async fn shell(&self, args: &[&str], _timeout: Duration) -> Result<ShellRun> {
            self.log.borrow_mut().push(args.join(" "));
            self.answers.borrow_mut().pop_front().ok_or_else(|| anyhow!("unscripted shell command {args:?}"))
        }

        async fn step(&self, reason: &str, _note: String) {
            self.log.borrow_mut().push(reason.to_string());
        }
    }

    fn answer(ok: bool, output: &str) -> ShellRun {
        ShellRun { ok, output: output.into() }
    }

    // As BookKeeper 4.17.2 answered (crate README).
    fn recovered() -> ShellRun {
        answer(true, "Constructing admin\nConstruct admin : org.apache.bookkeeper.client.BookKeeperAdmin@5af97169\n")
    }
    fn no_ledgers() -> ShellRun {
        answer(true, "")
    }
    fn cookie_deleted() -> ShellRun {
        answer(true, "")
    }

    fn victim() -> Victim {
        Victim { pod: "bookie-3".into(), ip: "10.244.1.7".into() }
    }

    const ID: &str = "bookie-3.bookie.ns.svc.cluster.local:3181";

    #[tokio::test(start_paused = true)]
    async fn the_steps_run_in_order_and_name_the_registry_id() {
        let script = Script::new(vec![recovered(), no_ledgers(), cookie_deleted()]);
        assert_eq!(run(&script, &victim()).await, Ok(ID.to_string()));
        assert_eq!(
            script.log(),
            [
                "DecommissionStarted",
                "readOnly=true",
                "BookieReadOnly",
                &format!("recover -f {ID}"),
                &format!("listledgers -bookieid {ID}"),
                "LedgersRecovered",
                &format!("cookie_delete {ID}"),
                "CookieDeleted",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_recovery_makes_the_victim_writable_again() {
        let failed = answer(
            false,
            "Failed to recover ledger 6 : LedgerRecoveryException: Error while recovering ledger\n\
             Caused by: org.apache.bookkeeper.client.BKException$BKLedgerRecoveryException: Error while recovering ledger\n",
        );
        let script = Script::new(vec![failed]);
        let why = run(&script, &victim()).await.unwrap_err();
        assert!(why.contains("recover -f bookie-3.bookie.ns.svc.cluster.local:3181 failed"), "{why}");
        let log = script.log();
        assert_eq!(log[log.len() - 2..], ["readOnly=false", "DecommissionFailed"], "{log:?}");
        assert!(!log.iter().any(|entry| entry.starts_with("cookie_delete")), "{log:?}");
        assert!(!*script.read_only.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn ledgers_that_keep_naming_the_victim_fail_it() {
        let still = answer(true, "ledgerID: 5\nledgerID: 12\n");
        let script = Script::new(vec![recovered(), still.clone(), recovered(), still.clone(), recovered(), still]);
        let why = run(&script, &victim()).await.unwrap_err();
        assert!(why.contains("after 3 recoveries, ledgers still name") && why.ends_with("5, 12"), "{why}");
        assert!(!*script.read_only.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_ledger_left_by_one_recovery_is_taken_by_the_next() {
        let script =
            Script::new(vec![recovered(), answer(true, "ledgerID: 40\n"), recovered(), no_ledgers(), cookie_deleted()]);
        assert_eq!(run(&script, &victim()).await, Ok(ID.to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_listledgers_error_is_never_an_empty_list() {
        let logged = answer(true, "Unable to read the ledger: 7 information\n");
        let script = Script::new(vec![recovered(), logged]);
        assert!(run(&script, &victim()).await.unwrap_err().contains("listledgers"));
        let exited = Script::new(vec![recovered(), answer(false, "")]);
        assert!(run(&exited, &victim()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_cookie_is_a_deleted_cookie_but_other_errors_fail() {
        let missing = answer(false, "Cookie not found for bookie 'bookie-3.bookie.ns.svc.cluster.local:3181'\n");
        let script = Script::new(vec![recovered(), no_ledgers(), missing]);
        assert!(run(&script, &victim()).await.is_ok());
        let broken =
            answer(false, "Failed to process cookie command 'delete'\nKeeperException$ConnectionLossException\n");
        let script = Script::new(vec![recovered(), no_ledgers(), broken]);
        assert!(run(&script, &victim()).await.unwrap_err().contains("cookie_delete"));
        assert!(!*script.read_only.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn a_bookie_that_stays_writable_is_never_recovered() {
        let script = Script { ignores_put: true, ..Script::new(vec![]) };
        let why = run(&script, &victim()).await.unwrap_err();
        assert!(why.contains("did not become read-only within 15s"), "{why}");
        assert!(!script.log().iter().any(|entry| entry.starts_with("recover")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_victim_is_found_by_ip_or_by_pod_name() {
        let by_ip = Script {
            listed_as: ("10.244.1.7:3181".into(), None),
            ..Script::new(vec![recovered(), no_ledgers(), cookie_deleted()])
        };
        assert_eq!(run(&by_ip, &victim()).await, Ok("10.244.1.7:3181".to_string()));
        let read_only = RefCell::new(true);
        let short =
            Script { listed_as: ("bookie-3:3181".into(), Some("bookie-3".into())), read_only, ..Script::new(vec![]) };
        assert_eq!(read_only_id(&short, &victim()).await.unwrap(), "bookie-3:3181");
        // bookie-30 is listed read-only too, and must not be taken for bookie-3.
        let other = Victim { pod: "bookie-30".into(), ip: "10.244.9.9".into() };
        let read_only = RefCell::new(true);
        let listed = Script { listed_as: ("bookie-3:3181".into(), None), read_only, ..Script::new(vec![]) };
        assert_eq!(read_only_id(&listed, &other).await.unwrap(), "bookie-30:3181");
    }
}
