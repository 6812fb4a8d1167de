//! `k3rs token create|list|delete|generate|rotate`: join tokens on this server's disk.
//!
//! Owns: `<data-dir>/server/token` (the server token, `K10<ca hash>::server:<secret>`)
//! and `<data-dir>/server/bootstrap-tokens.json` (bootstrap tokens, mode 0600). May call:
//! [`crate::pki::token`] and the filesystem.
//!
//! Not yet cluster-wide: k3s stores bootstrap tokens as Secrets in `kube-system` and
//! rotates the server token through the datastore. Until the API server does that, these
//! commands manage only the files of the server they run on, and the server must be
//! restarted to pick up a rotated token.

use crate::pki::token::{self as tok, Token};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `k3rs token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// Directory for all state.
    #[arg(
        short = 'd',
        long,
        env = "K3RS_DATA_DIR",
        default_value = "/var/lib/k3rs",
        global = true
    )]
    pub data_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// `k3rs token` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token (`<id>.<secret>`) and print it in the secure form.
    Create {
        /// Use this token (`[a-z0-9]{6}.[a-z0-9]{16}`) instead of a random one.
        token: Option<String>,
        /// Human-readable description.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime (e.g. `24h`, `90m`); `0` never expires.
        #[arg(long, default_value = "24h")]
        ttl: String,
    },
    /// List bootstrap tokens (secrets are not shown).
    List,
    /// Delete bootstrap tokens by id (or full token).
    Delete {
        /// Token ids or tokens.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print a random bootstrap token without storing it.
    Generate,
    /// Replace the server token in `<data-dir>/server/token`.
    Rotate {
        /// The current token; when given it must match the stored one.
        #[arg(short = 't', long, env = "K3RS_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The new token secret (default: random).
        #[arg(long, hide_env_values = true)]
        new_token: Option<String>,
    },
}

/// One stored bootstrap token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BootstrapToken {
    /// Public id.
    pub id: String,
    /// Secret part.
    pub secret: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Expiry time (RFC 3339), none for never.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Run a token command.
///
/// # Errors
/// Unreadable/unwritable files, malformed tokens, a `--token` that does not match.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let server_dir = args.data_dir.join("server");
    let ca = std::fs::read(server_dir.join("tls").join("server-ca.crt")).ok();
    match args.command {
        TokenCommand::Generate => {
            let (id, secret) = tok::generate_bootstrap();
            println!("{}", Token::bootstrap(ca.as_deref(), &id, &secret));
        }
        TokenCommand::Create {
            token,
            description,
            ttl,
        } => {
            let (id, secret) = match token {
                Some(t) => match tok::parse(&t)?.credential() {
                    tok::Credential::Bootstrap { id, secret } => (id.clone(), secret.clone()),
                    tok::Credential::Password { .. } => {
                        bail!("a bootstrap token has the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
                    }
                },
                None => tok::generate_bootstrap(),
            };
            let mut tokens = load(&server_dir)?;
            if tokens.iter().any(|t| t.id == id) {
                bail!("bootstrap token {id} already exists");
            }
            let now = jiff::Timestamp::now();
            let expires = if ttl == "0" {
                None
            } else {
                let d: jiff::SignedDuration = ttl
                    .parse()
                    .with_context(|| format!("invalid --ttl {ttl:?}"))?;
                Some(now.checked_add(d).context("--ttl too large")?.to_string())
            };
            tokens.push(BootstrapToken {
                id: id.clone(),
                secret: secret.clone(),
                description,
                created: now.to_string(),
                expires,
            });
            save(&server_dir, &tokens)?;
            println!("{}", Token::bootstrap(ca.as_deref(), &id, &secret));
            eprintln!(
                "note: stored in {} on this server only; cluster-wide bootstrap tokens \
                 (kube-system Secrets) are not implemented yet",
                tokens_path(&server_dir).display()
            );
        }
        TokenCommand::List => {
            println!(
                "{:<8} {:<26} {:<26} DESCRIPTION",
                "ID", "CREATED", "EXPIRES"
            );
            for t in load(&server_dir)? {
                println!(
                    "{:<8} {:<26} {:<26} {}",
                    t.id,
                    t.created,
                    t.expires.as_deref().unwrap_or("never"),
                    t.description
                );
            }
        }
        TokenCommand::Delete { ids } => {
            let mut tokens = load(&server_dir)?;
            for given in ids {
                let id = match tok::parse(&given).map(|t| t.credential().clone()) {
                    Ok(tok::Credential::Bootstrap { id, .. }) => id,
                    _ => given,
                };
                let before = tokens.len();
                tokens.retain(|t| t.id != id);
                if tokens.len() == before {
                    bail!("bootstrap token {id} not found");
                }
                println!("bootstrap token {id} deleted");
            }
            save(&server_dir, &tokens)?;
        }
        TokenCommand::Rotate { token, new_token } => {
            let path = server_dir.join("token");
            if let (Some(given), Ok(current)) = (&token, std::fs::read_to_string(&path)) {
                let current = tok::parse(&current).context("stored server token")?;
                let given = tok::parse(given).context("--token")?;
                if !tok::constant_time_eq(current.secret().as_bytes(), given.secret().as_bytes()) {
                    bail!("--token does not match the current server token");
                }
            }
            let secret = match new_token {
                Some(t) => tok::parse(&t).context("--new-token")?.secret().to_string(),
                None => tok::generate_secret(),
            };
            let new = match &ca {
                Some(ca) => Token::server(ca, &secret),
                None => tok::parse(&secret)?,
            };
            write_private(&path, format!("{new}\n").as_bytes())?;
            println!("{new}");
            eprintln!(
                "note: written to {}; restart this server and update K3RS_TOKEN on the others \
                 (cluster-side token rotation is not implemented yet)",
                path.display()
            );
        }
    }
    Ok(())
}

fn tokens_path(server_dir: &Path) -> PathBuf {
    server_dir.join("bootstrap-tokens.json")
}

fn load(server_dir: &Path) -> anyhow::Result<Vec<BootstrapToken>> {
    let path = tokens_path(server_dir);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("invalid {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(server_dir: &Path, tokens: &[BootstrapToken]) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(tokens).context("cannot encode tokens")?;
    write_private(&tokens_path(server_dir), &json)
}

/// Write atomically (temp file + rename) with mode 0600.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("path without parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
