//! `meta.k8s.io/v1` Table output for `kubectl get`: built-in kinds through [`super::table`],
//! custom resources through their CRD's `additionalPrinterColumns`.

use super::registry::ResourceKind;
use super::table::{self, PrinterColumn};
use serde_json::Value;

pub use super::table::IncludeObject;

/// `?includeObject=` (default `Metadata`, like kubectl expects).
pub fn include_object(q: Option<&str>) -> IncludeObject {
    q.and_then(IncludeObject::parse).unwrap_or_default()
}

/// A Table of `objs`; `list_meta` becomes its metadata (resourceVersion, continue).
pub fn table(
    kind: &ResourceKind,
    objs: &[Value],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let mut t = match &kind.crd {
        Some(crd) => {
            let cols: Vec<PrinterColumn> = crd
                .printer_columns
                .iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect();
            table::table_for_custom(&cols, objs, include)
        }
        None => table::table_for(&kind.group, &kind.version, &kind.kind, objs, include),
    };
    t["metadata"] = list_meta;
    t
}
