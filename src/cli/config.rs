//! Config file + `K3RS_*` env + flags, merged in one place.
//!
//! Owns: reading `/etc/k3rs/config.yaml` (or `--config`/`K3RS_CONFIG_FILE`) and turning
//! it into command-line arguments before clap parses. May call: the filesystem and clap.
//!
//! How (k3s does the same): every `key: value` of the file becomes a synthetic
//! `--key=value` inserted right after the subcommand, before the user's own arguments.
//! clap then sees one command line. Precedence is file < env < flags:
//! - clap itself ranks command line > env > default, so a file entry whose flag also has
//!   its env var set would wrongly beat the env var: such entries are dropped;
//! - a file entry whose flag the user also gave is dropped, so flags win and list flags
//!   given on the command line replace (not extend) the file's list, like k3s.
//!
//! Keys are long flag names (`node-label`, `tls-san`, `write-kubeconfig-mode`…). Lists
//! are YAML sequences. Drop-ins `<config>.d/*.yaml` are read after the file in name
//! order; a later key replaces an earlier one and `key+: [..]` appends (k3s syntax).
//! A key no command knows is an error naming the key and the file; a key another
//! command knows (e.g. `cluster-init` read by `k3rs agent`) is skipped, so server and
//! agent can share one file.

use super::args::Cli;
use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Hidden flag of `server`/`agent`: print the merged configuration and exit.
pub const PRINT_CONFIG: &str = "print-config";
/// Default config file.
pub const DEFAULT_CONFIG: &str = "/etc/k3rs/config.yaml";
/// Env var naming the config file.
pub const CONFIG_ENV: &str = "K3RS_CONFIG_FILE";

/// The command line after merging the config file in.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    /// argv with the file's synthetic flags inserted after the subcommand.
    pub argv: Vec<OsString>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Long names of flags whose value came from the file.
    pub from_file: BTreeSet<String>,
}

/// Parse the process's command line with the config file merged in. On `--help`,
/// `--version`, usage errors and `--print-config`, prints and exits like clap does.
///
/// # Errors
/// Unreadable or invalid config file, unknown config key.
pub fn load() -> anyhow::Result<Cli> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let expanded = expand(argv, |k| std::env::var_os(k))?;
    let matches = match command().try_get_matches_from(&expanded.argv) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    if let Some((name, sub)) = matches.subcommand()
        && sub.try_get_one::<bool>(PRINT_CONFIG).ok().flatten() == Some(&true)
    {
        print!("{}", render(name, sub, &expanded));
        std::process::exit(0);
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// The clap command with the hidden `--print-config` added to every subcommand that
/// reads a config file.
pub fn command() -> Command {
    let mut cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| reads_config(s))
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |s| {
            s.arg(
                Arg::new(PRINT_CONFIG)
                    .long(PRINT_CONFIG)
                    .action(ArgAction::SetTrue)
                    .hide(true)
                    .help("Print the merged configuration (file < env < flags) and exit"),
            )
        });
    }
    cmd
}

fn reads_config(sub: &Command) -> bool {
    sub.get_arguments().any(|a| a.get_long() == Some("config"))
}

/// Insert the config file's entries into `argv` (see the module doc). `env` looks up
/// environment variables (injected so tests need not touch the process environment).
///
/// # Errors
/// Explicit config file missing, unreadable or invalid YAML, unknown key, bad value type.
pub fn expand(
    argv: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Expanded> {
    let unchanged = |argv| Expanded {
        argv,
        file: None,
        from_file: BTreeSet::new(),
    };
    let mut root = command();
    root.build();
    // The subcommand is the first argument that is not an option (globals are flags).
    let Some(pos) = argv
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|p| p + 1)
    else {
        return Ok(unchanged(argv));
    };
    let name = argv[pos].to_string_lossy().into_owned();
    let Some(sub) = root.find_subcommand(&name).filter(|s| reads_config(s)) else {
        return Ok(unchanged(argv));
    };
    let user_args = &argv[pos + 1..];
    let config_arg = sub
        .get_arguments()
        .find(|a| a.get_long() == Some("config"))
        .context("internal: subcommand without --config")?;
    let (path, explicit) = match given_value(config_arg, user_args) {
        Some(p) => (PathBuf::from(p), true),
        None => match env(CONFIG_ENV) {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(DEFAULT_CONFIG), false),
        },
    };
    let Some(entries) = read_all(&path, explicit)? else {
        return Ok(unchanged(argv));
    };
    let mut synthetic = Vec::new();
    let mut from_file = BTreeSet::new();
    for Entry { key, values, file } in entries {
        let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(&key)) else {
            if known_elsewhere(&root, &key) {
                tracing::debug!(%key, command = %name, "config key not used by this command");
                continue;
            }
            bail!(
                "unknown key {key:?} in config file {}: `k3rs {name}` has no flag --{key}",
                file.display()
            );
        };
        if matches!(key.as_str(), "config" | "help" | "version" | PRINT_CONFIG) {
            bail!(
                "key {key:?} is not allowed in config file {}",
                file.display()
            );
        }
        if given(arg, user_args) {
            continue; // flags win; a list flag replaces the file's list
        }
        if arg
            .get_env()
            .is_some_and(|e| env(&e.to_string_lossy()).is_some())
        {
            continue; // env beats the file
        }
        let emitted = to_args(arg, &key, values)
            .with_context(|| format!("config file {}: key {key:?}", file.display()))?;
        if !emitted.is_empty() {
            from_file.insert(key);
        }
        synthetic.extend(emitted);
    }
    let mut out: Vec<OsString> = argv[..=pos].to_vec();
    out.extend(synthetic.into_iter().map(OsString::from));
    out.extend_from_slice(user_args);
    Ok(Expanded {
        argv: out,
        file: Some(path),
        from_file,
    })
}

fn known_elsewhere(root: &Command, key: &str) -> bool {
    root.get_subcommands()
        .filter(|s| reads_config(s))
        .any(|s| s.get_arguments().any(|a| a.get_long() == Some(key)))
}

/// The file's values for one flag turned into `--key=value` arguments.
fn to_args(arg: &Arg, key: &str, values: Vec<String>) -> anyhow::Result<Vec<String>> {
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => {
            let [v] = values.as_slice() else {
                bail!("takes one boolean, got a list");
            };
            let on = match v.as_str() {
                "true" => true,
                "false" => false,
                other => bail!("must be true or false, got {other:?}"),
            };
            let wanted = matches!(arg.get_action(), ArgAction::SetTrue);
            Ok(if on == wanted {
                vec![format!("--{key}")]
            } else {
                Vec::new()
            })
        }
        ArgAction::Append => Ok(values.iter().map(|v| format!("--{key}={v}")).collect()),
        _ => {
            let [v] = values.as_slice() else {
                bail!("takes one value, got a list of {}", values.len());
            };
            Ok(vec![format!("--{key}={v}")])
        }
    }
}

/// Whether the user gave this flag on the command line (long, short or alias; before `--`).
fn given(arg: &Arg, user_args: &[OsString]) -> bool {
    occurrences(arg, user_args).next().is_some()
}

/// The last value the user gave for this (value-taking) flag.
fn given_value(arg: &Arg, user_args: &[OsString]) -> Option<OsString> {
    occurrences(arg, user_args).last().flatten()
}

/// Each occurrence of `arg` in `user_args`, with its value when the value can be seen.
fn occurrences<'a>(
    arg: &'a Arg,
    user_args: &'a [OsString],
) -> impl Iterator<Item = Option<OsString>> + 'a {
    let longs: Vec<String> = arg
        .get_long_and_visible_aliases()
        .into_iter()
        .flatten()
        .map(str::to_string)
        .chain(
            arg.get_all_aliases()
                .into_iter()
                .flatten()
                .map(str::to_string),
        )
        .collect();
    let short = arg.get_short();
    let end = user_args
        .iter()
        .position(|a| a == "--")
        .unwrap_or(user_args.len());
    let args = &user_args[..end];
    args.iter().enumerate().filter_map(move |(i, a)| {
        let a = a.to_string_lossy();
        let next = || args.get(i + 1).cloned();
        if let Some(rest) = a.strip_prefix("--") {
            for l in &longs {
                if rest == l {
                    return Some(next());
                }
                if let Some(v) = rest
                    .strip_prefix(l.as_str())
                    .and_then(|r| r.strip_prefix('='))
                {
                    return Some(Some(v.into()));
                }
            }
            None
        } else if let (Some(s), Some(rest)) = (short, a.strip_prefix('-')) {
            let mut chars = rest.chars();
            if chars.next() != Some(s) {
                return None;
            }
            let tail = chars.as_str();
            let tail = tail.strip_prefix('=').unwrap_or(tail);
            Some(if tail.is_empty() {
                next()
            } else {
                Some(tail.into())
            })
        } else {
            None
        }
    })
}

/// One merged config entry and the file that set it last.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    values: Vec<String>,
    file: PathBuf,
}

/// The main file, then `<file>.d/*.yaml` drop-ins in name order (k3s's layout); later
/// files replace keys, `key+` appends. `None` when there is no file at all.
fn read_all(path: &Path, explicit: bool) -> anyhow::Result<Option<Vec<Entry>>> {
    let mut entries = Vec::new();
    let mut found = false;
    match read_text(path)? {
        Some(text) => {
            found = true;
            merge(&mut entries, parse_raw(&text), path)?;
        }
        None if explicit => bail!("config file {} does not exist", path.display()),
        None => {}
    }
    let mut dropins_dir = path.as_os_str().to_owned();
    dropins_dir.push(".d");
    let mut dropins: Vec<PathBuf> = match std::fs::read_dir(&dropins_dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    dropins.sort();
    for p in dropins {
        if let Some(text) = read_text(&p)? {
            found = true;
            merge(&mut entries, parse_raw(&text), &p)?;
        }
    }
    Ok(found.then_some(entries))
}

fn read_text(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read config file {}", path.display())),
    }
}

fn merge(
    out: &mut Vec<Entry>,
    raw: anyhow::Result<Vec<(String, Vec<String>)>>,
    file: &Path,
) -> anyhow::Result<()> {
    let raw = raw.with_context(|| format!("invalid config file {}", file.display()))?;
    for (k, values) in raw {
        if let Some(base) = k.strip_suffix('+') {
            match out.iter_mut().find(|e| e.key == base) {
                Some(existing) => {
                    existing.values.extend(values);
                    existing.file = file.to_path_buf();
                }
                None => out.push(Entry {
                    key: base.to_string(),
                    values,
                    file: file.to_path_buf(),
                }),
            }
        } else {
            out.retain(|e| e.key != k);
            out.push(Entry {
                key: k,
                values,
                file: file.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Parse the YAML text of one config file into `(key, values)` in file order, `key+`
/// appends merged into their key.
///
/// # Errors
/// Not a mapping, non-string key, nested mapping, null value.
pub fn parse_entries(text: &str) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    merge(&mut out, parse_raw(text), Path::new("-"))?;
    Ok(out.into_iter().map(|e| (e.key, e.values)).collect())
}

/// `(key as written, values)` pairs of one file.
fn parse_raw(text: &str) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).context("not valid YAML")?;
    let map = match doc {
        serde_yaml::Value::Null => return Ok(Vec::new()),
        serde_yaml::Value::Mapping(m) => m,
        _ => bail!("the top level must be a mapping of flag names to values"),
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let Some(k) = k.as_str() else {
            bail!("keys must be strings (flag names), got {k:?}");
        };
        let values = match v {
            serde_yaml::Value::Sequence(items) => items
                .into_iter()
                .map(|i| scalar(&i).with_context(|| format!("key {k:?}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
            other => vec![scalar(&other).with_context(|| format!("key {k:?}"))?],
        };
        out.push((k.to_string(), values));
    }
    Ok(out)
}

fn scalar(v: &serde_yaml::Value) -> anyhow::Result<String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => bail!("value is empty"),
        _ => bail!("value must be a string, number, boolean or a list of those"),
    })
}

/// Read one key of the config file the server would read (for `k3rs kubectl`).
/// Missing file or key → `None`.
pub fn server_file_value(key: &str) -> Option<String> {
    let path = std::env::var_os(CONFIG_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let entries = read_all(&path, false).ok()??;
    entries
        .into_iter()
        .find(|e| e.key == key)
        .and_then(|e| e.values.into_iter().last())
}

/// The merged configuration of one subcommand as YAML, each line marked with its source.
fn render(name: &str, sub: &ArgMatches, expanded: &Expanded) -> String {
    let mut root = command();
    root.build();
    let mut out = format!(
        "# merged configuration of `k3rs {name}` (config file: {})\n",
        expanded
            .file
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.display().to_string())
    );
    let Some(cmd) = root.find_subcommand(name) else {
        return out;
    };
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version" | PRINT_CONFIG) {
            continue;
        }
        let Ok(Some(raw)) = sub.try_get_raw(id) else {
            continue;
        };
        let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
        let source = match sub.value_source(id) {
            Some(ValueSource::CommandLine) if expanded.from_file.contains(long) => "file",
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unknown",
        };
        let value = match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let on = sub.get_flag(id);
                serde_json::Value::Bool(on)
            }
            ArgAction::Append => {
                serde_json::Value::Array(values.into_iter().map(Into::into).collect())
            }
            _ => values
                .into_iter()
                .last()
                .map_or(serde_json::Value::Null, Into::into),
        };
        // Secrets never reach stdout.
        let value = if arg.is_hide_env_values_set() && !value.is_null() {
            serde_json::Value::String("********".into())
        } else {
            value
        };
        out.push_str(&format!("{long}: {value} # {source}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn with_file(yaml: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yaml");
        std::fs::write(&p, yaml).unwrap();
        let s = p.to_str().unwrap().to_string();
        (dir, s)
    }

    fn expand_with(argv: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Expanded> {
        let env: HashMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        expand(os(argv), |k| env.get(k).cloned())
    }

    #[test]
    fn file_entries_are_inserted_after_the_subcommand_before_user_args() {
        let (_d, p) = with_file("node-label: [a=1, b=2]\ncluster-init: true\nnode-name: n1\n");
        let e = expand_with(&["k3rs", "server", "--config", &p, "--disable-agent"], &[]).unwrap();
        let args: Vec<String> = e.argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            args,
            vec![
                "k3rs",
                "server",
                "--node-label=a=1",
                "--node-label=b=2",
                "--cluster-init",
                "--node-name=n1",
                "--config",
                &p,
                "--disable-agent"
            ]
        );
    }

    #[test]
    fn list_flag_on_the_command_line_replaces_the_file_list() {
        let (_d, p) = with_file("node-label: [a=1, b=2]\n");
        let e = expand_with(&["k3rs", "server", "-c", &p, "--node-label", "c=3"], &[]).unwrap();
        assert!(!e.argv.iter().any(|a| a.to_string_lossy().contains("a=1")));
        assert!(e.from_file.is_empty());
    }

    #[test]
    fn env_var_beats_the_file() {
        let (_d, p) = with_file("node-name: from-file\n");
        let e = expand_with(
            &["k3rs", "server"],
            &[(CONFIG_ENV, &p), ("K3RS_NODE_NAME", "from-env")],
        )
        .unwrap();
        assert!(
            !e.argv
                .iter()
                .any(|a| a.to_string_lossy().contains("from-file"))
        );
        assert_eq!(e.file.as_deref(), Some(Path::new(&p)));
    }

    #[test]
    fn unknown_key_is_an_error_naming_key_and_file() {
        let (_d, p) = with_file("no-such-flag: 1\n");
        let err = expand_with(&["k3rs", "server", "--config", &p], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-flag"), "{err}");
        assert!(err.contains(&p), "{err}");
    }

    #[test]
    fn server_only_key_is_skipped_by_the_agent() {
        let (_d, p) = with_file("cluster-init: true\nnode-name: n1\n");
        let e = expand_with(&["k3rs", "agent", "--config", &p], &[]).unwrap();
        let joined: Vec<String> = e.argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert!(!joined.iter().any(|a| a == "--cluster-init"));
        assert!(joined.iter().any(|a| a == "--node-name=n1"));
    }

    #[test]
    fn missing_default_file_is_fine_but_missing_explicit_file_is_an_error() {
        // Default path: whether or not it exists on this machine, an explicit missing
        // file must fail and name the path.
        let err = expand_with(&["k3rs", "server", "--config=/nonexistent/k3rs.yaml"], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/k3rs.yaml"), "{err}");
        let e = expand_with(&["k3rs", "--version"], &[]).unwrap();
        assert_eq!(e.argv, os(&["k3rs", "--version"]));
    }

    #[test]
    fn append_syntax_extends_an_earlier_list_and_false_booleans_emit_nothing() {
        let entries =
            parse_entries("tls-san: [a]\ntls-san+: [b]\ncluster-init: false\nport: 1\n").unwrap();
        assert_eq!(
            entries,
            vec![
                (
                    "tls-san".to_string(),
                    vec!["a".to_string(), "b".to_string()]
                ),
                ("cluster-init".to_string(), vec!["false".to_string()]),
                ("port".to_string(), vec!["1".to_string()]),
            ]
        );
        let (_d, p) = with_file("cluster-init: false\n");
        let e = expand_with(&["k3rs", "server", "-c", &p], &[]).unwrap();
        assert_eq!(e.argv.len(), 4);
    }

    #[test]
    fn drop_in_files_replace_keys_and_append_with_plus_in_name_order() {
        let (d, p) = with_file("node-name: main\nnode-label: [a=1]\n");
        let dropins = d.path().join("config.yaml.d");
        std::fs::create_dir(&dropins).unwrap();
        std::fs::write(dropins.join("20-b.yaml"), "node-name: twenty\n").unwrap();
        std::fs::write(
            dropins.join("10-a.yaml"),
            "node-name: ten\nnode-label+: [b=2]\n",
        )
        .unwrap();
        std::fs::write(dropins.join("30-bad.yaml"), "bogus-key: 1\n").unwrap();
        std::fs::write(dropins.join("README"), "not yaml: [").unwrap();
        let err = expand_with(&["k3rs", "server", "-c", &p], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("30-bad.yaml") && err.contains("bogus-key"),
            "{err}"
        );
        std::fs::remove_file(dropins.join("30-bad.yaml")).unwrap();
        let e = expand_with(&["k3rs", "server", "-c", &p], &[]).unwrap();
        let args: Vec<String> = e.argv.iter().map(|a| a.to_string_lossy().into()).collect();
        assert!(args.contains(&"--node-name=twenty".to_string()), "{args:?}");
        assert!(args.contains(&"--node-label=a=1".to_string()), "{args:?}");
        assert!(args.contains(&"--node-label=b=2".to_string()), "{args:?}");
        assert!(
            !args
                .iter()
                .any(|a| a.contains("=main") || a.contains("=ten"))
        );
    }

    #[test]
    fn list_for_a_scalar_flag_and_bad_yaml_are_errors() {
        let (_d, p) = with_file("node-name: [a, b]\n");
        let err = format!(
            "{:#}",
            expand_with(&["k3rs", "server", "-c", &p], &[]).unwrap_err()
        );
        assert!(
            err.contains("node-name") && err.contains("one value"),
            "{err}"
        );
        assert!(parse_entries("- a\n- b\n").is_err());
        assert!(parse_entries("a: {b: c}\n").is_err());
        assert!(parse_entries("").unwrap().is_empty());
    }
}
