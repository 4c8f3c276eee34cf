//! `cargo run --release --bin kafka-bench -- [--messages N] [--rounds R]`:
//! the harness's Kafka client against the broker's own perf tools.

fn main() -> std::process::ExitCode {
    stateproof::runner::client_bench(&stateproof::runner::KafkaTools)
}
