//! The command line: `k3rs server`, `k3rs agent`, and the operator tools.
//!
//! Owns: argument parsing, config merging (config file, `K3RS_*` env, flags), logging setup,
//! and wiring components together for each command. May call every component; this is the
//! only place where `anyhow` is used.

mod agent;
mod args;
mod ca_store;
mod check_config;
mod cluster_reset;
mod completion;
pub mod config;
mod etcd_snapshot;
mod images;
mod join;
mod join_server;
mod kubectl;
mod kubelet_args;
pub mod sd_notify;
mod server;
mod snapshot_schedule;
mod token;

pub use args::{AgentArgs, Cli, Command, ServerArgs};

use std::process::ExitCode;

/// Entry point of the binary: parse, set up logging, run the command, map errors to an exit code.
pub fn main() -> ExitCode {
    if let Some(e) = kubectl::multicall() {
        eprintln!("kubectl: {e:#}");
        return ExitCode::FAILURE;
    }
    // containerd runs the log driver with the URI's query as `key value` pairs in any order.
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(args) = crate::agent::runtime::logger::from_args(&argv) {
        return match crate::agent::runtime::logger::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("k3rs container-logger: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = match config::load() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("k3rs: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The log driver runs once per container under the shim: keep it small (no runtime).
    if let Command::ContainerLogger { path } = &cli.command {
        let args = crate::agent::runtime::logger::LoggerArgs {
            path: path.clone(),
            max_size: 0,
            max_files: 5,
        };
        return match crate::agent::runtime::logger::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("k3rs container-logger: {e}");
                ExitCode::FAILURE
            }
        };
    }
    init_logging(cli.debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("k3rs")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("k3rs: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("k3rs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server::run(*args).await,
        Command::ContainerLogger { path } => {
            let args = crate::agent::runtime::logger::LoggerArgs {
                path,
                max_size: 0,
                max_files: 5,
            };
            Ok(crate::agent::runtime::logger::run(&args)?)
        }
        Command::Agent(args) => agent::run(args).await,
        Command::Kubectl(args) => kubectl::run(args),
        Command::CheckConfig => check_config::run(),
        Command::Completion(args) => completion::run(&args),
        Command::Token(args) => token::run(args),
        Command::EtcdSnapshot(args) => etcd_snapshot::run(args).await,
        Command::Images(args) => images::run(args).await,
    }
}

/// Quiet at info by default; `--debug` or `RUST_LOG` for more.
fn init_logging(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if debug {
        "debug,raft=info,sled=info,h2=info,hyper=info,tower=info"
    } else {
        "info,raft=warn,sled=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
