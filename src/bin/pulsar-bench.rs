//! `cargo run --release --bin pulsar-bench -- [--messages N] [--rounds R]`:
//! the harness's Pulsar client against the broker's own `pulsar-perf`.

fn main() -> std::process::ExitCode {
    stateproof::runner::client_bench(&stateproof::runner::PulsarTools)
}
