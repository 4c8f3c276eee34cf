//! `stateproof`: the same harness as `cargo test --test e2e`, as a binary
//! (standard libtest flags: a name filter, --exact, --list, --ignored,
//! --test-threads).

fn main() {
    stateproof::runner::main()
}
