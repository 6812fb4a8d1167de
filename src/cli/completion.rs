//! `k3rs completion bash|zsh|fish|…`: shell completion scripts generated from the clap
//! definitions. May call: [`super::config::command`].

use clap::Args;
use clap_complete::Shell;

/// Arguments of `k3rs completion`.
#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// Shell to generate the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print the completion script to stdout (source it, e.g. `source <(k3rs completion bash)`).
///
/// # Errors
/// stdout cannot be written (a closed pipe, e.g. `| head`, is not an error).
pub fn run(args: &CompletionArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let mut cmd = super::config::command();
    // Generate into memory: clap_complete panics on a failed write to stdout.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "k3rs", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
