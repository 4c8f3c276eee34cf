//! `stateproof`: the same harness as `cargo test --test e2e` (standard
//! libtest flags: a name filter, --exact, --list, --test-threads), and its
//! tools:
//!   stateproof self-check [FILTER]   every suite against the fixture variants that must fail it
//!   stateproof recheck HISTORY...    judge stored histories again, without a cluster
//!   stateproof defaults              the defaults every suite's steps use
//!   stateproof bench [--runs N] [FILTER]   the run N times: wall, waits, floor, CPU, memory

use stateproof::runner::{self, Mode};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("self-check") => {
            let rest = std::iter::once(args[0].clone()).chain(args[2..].iter().cloned());
            runner::run(Mode::SelfCheck, libtest_mimic::Arguments::from_iter(rest))
        }
        Some("recheck") => runner::recheck(&args[2..]),
        Some("bench") => runner::bench(&args[2..]),
        Some("defaults") => {
            print!("{}", stateproof::suite::Defaults::described());
            ExitCode::SUCCESS
        }
        _ => runner::main(),
    }
}
