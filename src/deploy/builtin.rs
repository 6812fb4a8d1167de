//! Manifests compiled into the binary (from `embedded/`) and written to the manifests
//! directory at every start, like k3s's packaged components.
//!
//! Owns: the list of built-ins and `--disable` parsing. May call: the filesystem.
//!
//! Only what works offline with what k3rs has is shipped: no add-on that pulls images.

use super::DeployError;
use std::path::Path;

/// Built-in manifests: (name, YAML). File `<name>.yaml`; `--disable <name>` removes it.
pub const BUILTIN: &[(&str, &str)] = &[(
    "rolebindings",
    include_str!("../../embedded/rolebindings.yaml"),
)];

/// The `--disable` values split on commas, trimmed, extension dropped, de-duplicated.
pub fn disabled_names(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values.iter().flat_map(|v| v.split(',')) {
        let v = v.trim();
        let v = [".yaml", ".yml", ".json"]
            .iter()
            .find_map(|ext| v.strip_suffix(ext))
            .unwrap_or(v);
        if !v.is_empty() && !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}

/// Write every built-in not in `disabled` (only when its content differs, so an unchanged
/// file keeps its mtime) and remove the files of disabled ones.
///
/// # Errors
/// When the directory or a file cannot be written or removed.
pub fn write(dir: &Path, disabled: &[String]) -> Result<(), DeployError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DeployError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, text) in BUILTIN {
        let path = dir.join(format!("{name}.yaml"));
        if disabled.iter().any(|d| d == name) {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "removed disabled manifest"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            continue;
        }
        if std::fs::read_to_string(&path).ok().as_deref() == Some(*text) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.yaml.tmp"));
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_accepts_repeats_comma_lists_and_file_names() {
        let got = disabled_names(&["a,b".into(), " c.yaml ".into(), "a".into(), ",".into()]);
        assert_eq!(got, vec!["a", "b", "c"]);
    }

    #[test]
    fn builtins_are_written_once_and_disabled_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[]).unwrap();
        let path = dir.path().join("rolebindings.yaml");
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), &[]).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        write(dir.path(), &["rolebindings".into()]).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn every_builtin_parses_into_named_objects() {
        for (name, text) in BUILTIN {
            let docs = super::super::manifest::parse(text);
            assert!(!docs.is_empty(), "{name} is empty");
            for d in docs {
                let o = d.object.unwrap();
                super::super::manifest::object_ref(&o).unwrap();
            }
        }
    }
}
