//! The reference bookie autoscaler (the `autoscaler/` crate), built beside
//! the harness so that `cargo test --test e2e` builds what its autoscaler
//! suites deploy.

fn main() -> std::process::ExitCode {
    bookie_autoscaler::main()
}
