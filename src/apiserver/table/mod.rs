//! Server-side `meta.k8s.io/v1` `Table` rendering for `kubectl get`: upstream's columns and
//! cell formatting per built-in kind (the `pkg/printers/internalversion` printers), CRD
//! `additionalPrinterColumns`, and a Name+Age fallback.
//!
//! Owns: pure conversion from objects to a Table value. No I/O; the handler adds
//! `metadata.resourceVersion`/`continue` and chooses `includeObject`.

mod apps;
mod core;
mod custom;
mod format;
mod misc;
mod pod_view;

pub use custom::{PrinterColumn, table_for_custom, table_for_custom_at};
pub use format::human_duration;

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// The `includeObject` query parameter of a Table request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object` in rows.
    None,
    /// `object` is a `PartialObjectMetadata` (kubectl's default).
    #[default]
    Metadata,
    /// `object` is the full object.
    Object,
}

impl IncludeObject {
    /// Parses `None|Metadata|Object`; anything else is `None` (upstream rejects it with 400).
    pub fn parse(s: &str) -> Option<IncludeObject> {
        match s {
            "None" => Some(IncludeObject::None),
            "Metadata" => Some(IncludeObject::Metadata),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// A column definition.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    desc: &'static str,
    priority: i32,
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A priority-0 column.
pub(crate) const fn col(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 0,
    }
}

/// A priority-1 column (shown with `-o wide`).
pub(crate) const fn wide(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 1,
    }
}

/// The `Name` column every printer starts with.
pub(crate) const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    desc: NAME_DESC,
    priority: 0,
};
/// The `Age` column.
pub(crate) const AGE: Col = col("Age", "string", AGE_DESC);
/// Upstream's `Created At` column (RBAC roles, CRDs, limit ranges).
pub(crate) const CREATED_AT: Col = Col {
    name: "Created At",
    ty: "date",
    format: "",
    desc: AGE_DESC,
    priority: 0,
};

/// Columns and a row function for one kind.
pub(crate) struct Printer {
    pub columns: Vec<Col>,
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
}

fn printer_for(group: &str, kind: &str) -> Option<Printer> {
    core::printer(group, kind)
        .or_else(|| apps::printer(group, kind))
        .or_else(|| misc::printer(group, kind))
}

fn fallback() -> Printer {
    Printer {
        columns: vec![NAME, col("Age", "date", AGE_DESC)],
        cells: |o, now| {
            vec![
                json!(format::s(o, "/metadata/name")),
                json!(format::since(opt_ts(o), now)),
            ]
        },
    }
}

pub(crate) fn opt_ts(o: &Value) -> Option<&str> {
    format::opt(o, "/metadata/creationTimestamp")
}

/// The `Age` cell of an object.
pub(crate) fn age(o: &Value, now: Timestamp) -> Value {
    json!(format::since(opt_ts(o), now))
}

/// The `Name` cell of an object.
pub(crate) fn name(o: &Value) -> Value {
    json!(format::s(o, "/metadata/name"))
}

/// Renders `objects` of the given kind as a Table, ages relative to the current time.
pub fn table_for(
    group: &str,
    version: &str,
    kind: &str,
    objects: &[Value],
    include_object: IncludeObject,
) -> Value {
    table_for_at(
        group,
        version,
        kind,
        objects,
        include_object,
        Timestamp::now(),
    )
}

/// [`table_for`] with an explicit "now" (for tests and consistent pages).
pub fn table_for_at(
    group: &str,
    _version: &str,
    kind: &str,
    objects: &[Value],
    include_object: IncludeObject,
    now: Timestamp,
) -> Value {
    let printer = printer_for(group, kind).unwrap_or_else(fallback);
    let rows = objects
        .iter()
        .map(|o| row((printer.cells)(o, now), o, include_object))
        .collect();
    render(&printer.columns, rows)
}

/// Whether [`stored_cells`] renders this kind's rows from stored bytes (built-in kinds with a
/// typed partial view; the others decode each object into a `Value`).
pub fn has_stored_view(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Pod"
}

/// The cells of one stored object of a kind with [`has_stored_view`], from its bytes; `None`
/// when the object needs the `Value` path ([`cells_at`] of the decoded object).
pub fn stored_cells(group: &str, kind: &str, bytes: &[u8], now: Timestamp) -> Option<Vec<Value>> {
    if !has_stored_view(group, kind) {
        return None;
    }
    pod_view::PodView::parse(bytes).ok().map(|v| v.cells(now))
}

/// The cells of one decoded object of a built-in kind, as [`table_for_at`] renders them.
pub fn cells_at(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    let printer = printer_for(group, kind).unwrap_or_else(fallback);
    (printer.cells)(obj, now)
}

/// The `columnDefinitions` of a built-in kind's Table.
pub fn column_definitions(group: &str, kind: &str) -> Value {
    let printer = printer_for(group, kind).unwrap_or_else(fallback);
    Value::Array(defs(&printer.columns))
}

fn defs(columns: &[Col]) -> Vec<Value> {
    columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.ty,
                "format": c.format,
                "description": c.desc,
                "priority": c.priority,
            })
        })
        .collect()
}

pub(crate) fn render(columns: &[Col], rows: Vec<Value>) -> Value {
    let defs = defs(columns);
    // Built by hand: `json!` would serialise `rows` into a deep copy.
    let mut t = Map::new();
    t.insert("kind".into(), json!("Table"));
    t.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    t.insert("metadata".into(), json!({}));
    t.insert("columnDefinitions".into(), Value::Array(defs));
    t.insert("rows".into(), Value::Array(rows));
    Value::Object(t)
}

pub(crate) fn row(cells: Vec<Value>, obj: &Value, include: IncludeObject) -> Value {
    let mut r = Map::new();
    r.insert("cells".into(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => {
            r.insert("object".into(), obj.clone());
        }
        IncludeObject::Metadata => {
            let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let mut partial = Map::new();
            partial.insert("kind".into(), json!("PartialObjectMetadata"));
            partial.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
            partial.insert("metadata".into(), meta);
            r.insert("object".into(), Value::Object(partial));
        }
    }
    Value::Object(r)
}

#[cfg(test)]
mod tests;
