//! The `k3rs` binary: everything lives in the library; this only hands over to the CLI.

/// The store's apply thread and the gRPC/HTTP layers allocate and free many small, short-lived
/// buffers; glibc's malloc spent 13–20 % of the server's CPU on them under write load (perf,
/// BENCHMARKS.md), mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    k3rs::cli::main()
}
