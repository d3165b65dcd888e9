//! Binary entry point: `cargo shard …` (as a cargo subcommand) or `cargo-shard …`.

fn main() -> std::process::ExitCode {
    cargo_shard::cli::main()
}
