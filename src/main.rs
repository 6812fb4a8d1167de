//! The `k3rs` binary: everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    k3rs::cli::main()
}
