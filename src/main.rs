//! The `k3rs` binary: everything lives in the library; this only picks the allocator and
//! hands over to the CLI.

use std::ffi::{c_int, c_long};

/// The store's apply thread and the gRPC/HTTP layers allocate and free many short-lived
/// buffers; glibc's malloc spent 13–20 % of the server's CPU on them under write load, and
/// mimalloc made 256-client etcd-API puts ≈ 17 % faster (BENCHMARKS.md, session 12).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's runtime option setter (linked in with the allocator above).
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in v2 and v3).
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Whether the subcommand (the first argument that is not a flag) is `agent`.
fn runs_agent_only() -> bool {
    std::env::args_os()
        .skip(1)
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .is_some_and(|a| a == "agent")
}

fn main() -> std::process::ExitCode {
    if runs_agent_only() {
        // A node agent's budget is memory (< 30 MB), not allocation speed: return freed pages
        // to the OS at once instead of after mimalloc's default delay (measured: 30.8 → 27.6
        // MiB after 30 pods came and went; the server keeps the delay, its write throughput
        // depends on reusing them).
        // SAFETY: plain setter of a process-wide option; valid option index, any value.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    k3rs::cli::main()
}
