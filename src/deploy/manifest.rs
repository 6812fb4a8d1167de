//! Manifest files on disk: which files count, and their documents as JSON objects.
//!
//! Owns: the file rules (`*.yaml`, `*.yml`, `*.json`; skipped when the name ends in
//! `.skip` or a `<file>.skip` sibling exists) and multi-document parsing. May call: the
//! filesystem only.

use super::DeployError;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An object a manifest names: enough to find it again (to delete it) later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One document of a file: its 1-based position and the object, or why it is unusable.
#[derive(Debug)]
pub struct Document {
    pub index: usize,
    pub object: Result<Value, String>,
}

/// The add-on name of a manifest file: its file name without the extension.
pub fn addon_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext) && name.len() > ext.len())
}

/// The manifest files of `dir`, sorted by name. A missing directory has none.
///
/// # Errors
/// When the directory exists but cannot be read.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, DeployError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DeployError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut out: Vec<PathBuf> = names
        .iter()
        .filter(|n| is_manifest_name(n) && !n.starts_with('.'))
        .filter(|n| !names.contains(&format!("{n}.skip")))
        .map(|n| dir.join(n))
        .collect();
    out.sort();
    Ok(out)
}

/// The documents of a manifest file's text (YAML, multi-document, or JSON). Empty documents
/// are dropped; a `kind: List` document is expanded into its items (same index).
pub fn parse(text: &str) -> Vec<Document> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        match Value::deserialize(de) {
            Ok(Value::Null) => {}
            Ok(Value::Object(mut o)) => {
                if o.get("kind").and_then(Value::as_str) == Some("List")
                    && let Some(Value::Array(items)) = o.remove("items")
                {
                    for item in items {
                        out.push(Document {
                            index,
                            object: Ok(item),
                        });
                    }
                } else {
                    out.push(Document {
                        index,
                        object: Ok(Value::Object(o)),
                    });
                }
            }
            Ok(_) => out.push(Document {
                index,
                object: Err("not an object".into()),
            }),
            Err(e) => {
                out.push(Document {
                    index,
                    object: Err(e.to_string()),
                });
                // The YAML stream cannot be resumed after a syntax error.
                break;
            }
        }
    }
    out
}

/// The reference of an object (namespace as written; the caller defaults it by scope).
///
/// # Errors
/// When `apiVersion`, `kind` or `metadata.name` is missing.
pub fn object_ref(obj: &Value) -> Result<ObjectRef, String> {
    fn s(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let api_version = s(obj.get("apiVersion")).ok_or("apiVersion is missing")?;
    let kind = s(obj.get("kind")).ok_or("kind is missing")?;
    let meta = obj.get("metadata");
    let name = s(meta.and_then(|m| m.get("name"))).ok_or("metadata.name is missing")?;
    Ok(ObjectRef {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        namespace: s(meta.and_then(|m| m.get("namespace"))).map(String::from),
        name: name.to_string(),
    })
}

/// Apply order: namespaces and CRDs before what may live in or use them; otherwise the
/// file's order.
pub fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_gives_one_object_per_non_empty_document() {
        let docs = parse(
            "# leading comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n- {apiVersion: v1, kind: Secret, metadata: {name: c}}\n",
        );
        let names: Vec<(usize, String)> = docs
            .iter()
            .map(|d| {
                let o = d.object.as_ref().unwrap();
                (d.index, object_ref(o).unwrap().name)
            })
            .collect();
        assert_eq!(
            names,
            vec![(1, "a".into()), (3, "b".into()), (3, "c".into())]
        );
    }

    #[test]
    fn json_files_parse_like_yaml() {
        let docs = parse(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#);
        assert_eq!(docs.len(), 1);
        let r = object_ref(docs[0].object.as_ref().unwrap()).unwrap();
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("Namespace", "x"));
    }

    #[test]
    fn a_broken_document_is_reported_with_its_index() {
        let docs = parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n- 1\n---\nkey: [unclosed\n",
        );
        assert!(docs[0].object.is_ok());
        assert_eq!(docs[1].index, 2);
        assert!(docs[1].object.is_err());
        assert_eq!(docs[2].index, 3);
        assert!(docs[2].object.is_err());
        assert!(object_ref(&serde_json::json!({"kind": "X"})).is_err());
    }

    #[test]
    fn skip_files_and_skip_siblings_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "a.yaml",
            "b.yml",
            "c.json",
            "d.yaml",
            "d.yaml.skip",
            "e.yaml.skip",
            "notes.txt",
            ".hidden.yaml",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let names: Vec<String> = list(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.yaml", "b.yml", "c.json"]);
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
        assert_eq!(addon_name(&dir.path().join("ccm.yaml")), "ccm");
    }
}
