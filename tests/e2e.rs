//! `cargo test --test e2e [-- FILTER]`: every test of every suite in
//! `suites/`, run against a real cluster, reported in JUnit.

fn main() {
    stateproof::runner::main()
}
