//! Path items and operations for a kind, in swagger 2.0 or OpenAPI 3.0 form, shaped like
//! upstream's (operation ids, `x-kubernetes-action`, `x-kubernetes-group-version-kind`,
//! query parameters). Every PATCH lists `fieldValidation`, which is what makes kubectl
//! hand validation to the server.

use super::KindRef;
use super::schemas::{DELETE_OPTIONS, PATCH, STATUS, gvk, schema_ref};
use serde_json::{Map, Value, json};

/// Which document flavour to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    V2,
    V3,
}

struct Param {
    name: &'static str,
    kind: &'static str,
    desc: &'static str,
}

const DRY_RUN: Param = Param {
    name: "dryRun",
    kind: "string",
    desc: "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
};
const FIELD_MANAGER: Param = Param {
    name: "fieldManager",
    kind: "string",
    desc: "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
};
const FIELD_VALIDATION: Param = Param {
    name: "fieldValidation",
    kind: "string",
    desc: "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
};
const FORCE: Param = Param {
    name: "force",
    kind: "boolean",
    desc: "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
};
const GRACE_PERIOD: Param = Param {
    name: "gracePeriodSeconds",
    kind: "integer",
    desc: "The duration in seconds before the object should be deleted.",
};
const PROPAGATION: Param = Param {
    name: "propagationPolicy",
    kind: "string",
    desc: "Whether and how garbage collection will be performed.",
};
const PRETTY: Param = Param {
    name: "pretty",
    kind: "string",
    desc: "If 'true', then the output is pretty printed.",
};
const LIST_PARAMS: [Param; 9] = [
    Param {
        name: "allowWatchBookmarks",
        kind: "boolean",
        desc: "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    },
    Param {
        name: "continue",
        kind: "string",
        desc: "The continue option should be set when retrieving more results from the server.",
    },
    Param {
        name: "fieldSelector",
        kind: "string",
        desc: "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    },
    Param {
        name: "labelSelector",
        kind: "string",
        desc: "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    },
    Param {
        name: "limit",
        kind: "integer",
        desc: "limit is a maximum number of responses to return for a list call.",
    },
    Param {
        name: "resourceVersion",
        kind: "string",
        desc: "resourceVersion sets a constraint on what resource versions a request may be served from.",
    },
    Param {
        name: "resourceVersionMatch",
        kind: "string",
        desc: "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    },
    Param {
        name: "timeoutSeconds",
        kind: "integer",
        desc: "Timeout for the list/watch call.",
    },
    Param {
        name: "watch",
        kind: "boolean",
        desc: "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    },
];

fn query(p: &Param, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V2 => {
            json!({"name": p.name, "in": "query", "description": p.desc, "type": p.kind, "uniqueItems": true})
        }
        Flavor::V3 => {
            json!({"name": p.name, "in": "query", "description": p.desc, "schema": {"type": p.kind, "uniqueItems": true}})
        }
    }
}

fn path_param(name: &str, desc: &str, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V2 => {
            json!({"name": name, "in": "path", "description": desc, "required": true, "type": "string", "uniqueItems": true})
        }
        Flavor::V3 => {
            json!({"name": name, "in": "path", "description": desc, "required": true, "schema": {"type": "string", "uniqueItems": true}})
        }
    }
}

fn reference(name: &str, flavor: Flavor) -> Value {
    match flavor {
        Flavor::V2 => json!({"$ref": format!("#/definitions/{name}")}),
        Flavor::V3 => schema_ref(name),
    }
}

/// `apps` + `v1` → `AppsV1`; `rbac.authorization.k8s.io` → `RbacAuthorizationV1`.
fn group_camel(group: &str, version: &str) -> String {
    let g = if group.is_empty() { "core" } else { group };
    let g = g.strip_suffix(".k8s.io").unwrap_or(g);
    let mut out = String::new();
    for part in g.split(['.', '-']) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    let mut v = version.chars();
    if let Some(c) = v.next() {
        out.extend(c.to_uppercase());
        out.push_str(v.as_str());
    }
    out
}

fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() { "core" } else { group };
    let g = g.strip_suffix(".k8s.io").unwrap_or(g);
    format!("{}_{version}", g.replace('.', "_"))
}

/// One operation's varying parts.
struct OpSpec<'a> {
    id: String,
    action: &'a str,
    desc: String,
    params: Vec<Value>,
    body: Option<(Value, Vec<&'a str>)>,
    responses: Value,
    gvk: &'a Value,
}

struct Ctx<'a> {
    k: &'a KindRef,
    flavor: Flavor,
    definition: &'a str,
    patch_types: Vec<&'static str>,
}

impl Ctx<'_> {
    fn responses(&self, codes: &[&str], schema: Value) -> Value {
        let mut r = Map::new();
        for code in codes {
            let desc = match *code {
                "200" => "OK",
                "201" => "Created",
                _ => "Accepted",
            };
            let entry = match self.flavor {
                Flavor::V2 => json!({"description": desc, "schema": schema}),
                Flavor::V3 => json!({"description": desc, "content": {
                    "application/json": {"schema": schema},
                    "application/yaml": {"schema": schema},
                }}),
            };
            r.insert((*code).to_string(), entry);
        }
        r.insert("401".into(), json!({"description": "Unauthorized"}));
        Value::Object(r)
    }

    fn op(&self, spec: OpSpec<'_>) -> Value {
        let OpSpec {
            id,
            action,
            desc,
            params,
            body,
            responses,
            gvk: gvk_value,
        } = spec;
        let mut op = Map::new();
        op.insert("tags".into(), json!([tag(&self.k.group, &self.k.version)]));
        op.insert("description".into(), json!(desc));
        op.insert("operationId".into(), json!(id));
        let mut params = params;
        if let Some((schema, types)) = body {
            match self.flavor {
                Flavor::V2 => {
                    params.insert(
                        0,
                        json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                    );
                    op.insert("consumes".into(), json!(types));
                }
                Flavor::V3 => {
                    let content: Map<String, Value> = types
                        .iter()
                        .map(|t| ((*t).to_string(), json!({"schema": schema})))
                        .collect();
                    op.insert(
                        "requestBody".into(),
                        json!({"content": content, "required": true}),
                    );
                }
            }
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if self.flavor == Flavor::V2 {
            op.insert(
                "produces".into(),
                json!(["application/json", "application/yaml"]),
            );
            op.insert("schemes".into(), json!(["https"]));
        }
        op.insert("responses".into(), responses);
        op.insert("x-kubernetes-action".into(), json!(action));
        op.insert("x-kubernetes-group-version-kind".into(), gvk_value.clone());
        Value::Object(op)
    }
}

/// Adds the paths of `k` (whose schema is definition `definition`) to `paths`.
pub(crate) fn add_kind_paths(
    paths: &mut Map<String, Value>,
    k: &KindRef,
    definition: &str,
    builtin: bool,
    flavor: Flavor,
) {
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if builtin {
        patch_types.push("application/strategic-merge-patch+json");
    }
    patch_types.push("application/apply-patch+yaml");
    let cx = Ctx {
        k,
        flavor,
        definition,
        patch_types,
    };
    let prefix = if k.group.is_empty() {
        format!("/api/{}", k.version)
    } else {
        format!("/apis/{}/{}", k.group, k.version)
    };
    let gv = group_camel(&k.group, &k.version);
    let scope = if k.namespaced { "Namespaced" } else { "" };
    let base = if k.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", k.plural)
    } else {
        format!("{prefix}/{}", k.plural)
    };
    let kind_gvk = gvk(&k.group, &k.version, &k.kind);
    let obj = reference(cx.definition, flavor);
    let list = reference(&format!("{}List", cx.definition), flavor);
    let status = reference(STATUS, flavor);
    let write_params = || {
        vec![
            query(&DRY_RUN, flavor),
            query(&FIELD_MANAGER, flavor),
            query(&FIELD_VALIDATION, flavor),
        ]
    };
    let patch_params = || {
        vec![
            query(&DRY_RUN, flavor),
            query(&FIELD_MANAGER, flavor),
            query(&FIELD_VALIDATION, flavor),
            query(&FORCE, flavor),
        ]
    };
    let list_params = || {
        LIST_PARAMS
            .iter()
            .map(|p| query(p, flavor))
            .collect::<Vec<_>>()
    };
    let ns_param = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
        flavor,
    );
    let name_param = |what: &str| path_param("name", &format!("name of the {what}"), flavor);
    let scope_params = |extra: Vec<Value>| {
        let mut v = extra;
        if k.namespaced {
            v.push(ns_param.clone());
        }
        v.push(query(&PRETTY, flavor));
        Value::Array(v)
    };

    // Collection.
    let mut coll = Map::new();
    coll.insert(
        "get".into(),
        cx.op(OpSpec {
            id: format!("list{gv}{scope}{}", k.kind),
            action: "list",
            desc: format!("list or watch objects of kind {}", k.kind),
            params: list_params(),
            body: None,
            responses: cx.responses(&["200"], list.clone()),
            gvk: &kind_gvk,
        }),
    );
    coll.insert(
        "post".into(),
        cx.op(OpSpec {
            id: format!("create{gv}{scope}{}", k.kind),
            action: "post",
            desc: format!("create a {}", k.kind),
            params: write_params(),
            body: Some((obj.clone(), vec!["*/*"])),
            responses: cx.responses(&["200", "201", "202"], obj.clone()),
            gvk: &kind_gvk,
        }),
    );
    coll.insert(
        "delete".into(),
        cx.op(OpSpec {
            id: format!("delete{gv}Collection{scope}{}", k.kind),
            action: "deletecollection",
            desc: format!("delete collection of {}", k.kind),
            params: list_params(),
            body: None,
            responses: cx.responses(&["200"], status.clone()),
            gvk: &kind_gvk,
        }),
    );
    coll.insert("parameters".into(), scope_params(Vec::new()));
    paths.insert(base.clone(), Value::Object(coll));

    // Item.
    let mut item = Map::new();
    item.insert(
        "get".into(),
        cx.op(OpSpec {
            id: format!("read{gv}{scope}{}", k.kind),
            action: "get",
            desc: format!("read the specified {}", k.kind),
            params: Vec::new(),
            body: None,
            responses: cx.responses(&["200"], obj.clone()),
            gvk: &kind_gvk,
        }),
    );
    item.insert(
        "put".into(),
        cx.op(OpSpec {
            id: format!("replace{gv}{scope}{}", k.kind),
            action: "put",
            desc: format!("replace the specified {}", k.kind),
            params: write_params(),
            body: Some((obj.clone(), vec!["*/*"])),
            responses: cx.responses(&["200", "201"], obj.clone()),
            gvk: &kind_gvk,
        }),
    );
    item.insert(
        "patch".into(),
        cx.op(OpSpec {
            id: format!("patch{gv}{scope}{}", k.kind),
            action: "patch",
            desc: format!("partially update the specified {}", k.kind),
            params: patch_params(),
            body: Some((reference(PATCH, flavor), cx.patch_types.clone())),
            responses: cx.responses(&["200", "201"], obj.clone()),
            gvk: &kind_gvk,
        }),
    );
    item.insert(
        "delete".into(),
        cx.op(OpSpec {
            id: format!("delete{gv}{scope}{}", k.kind),
            action: "delete",
            desc: format!("delete a {}", k.kind),
            params: vec![
                query(&DRY_RUN, flavor),
                query(&GRACE_PERIOD, flavor),
                query(&PROPAGATION, flavor),
            ],
            body: Some((reference(DELETE_OPTIONS, flavor), vec!["*/*"])),
            responses: cx.responses(&["200", "202"], status.clone()),
            gvk: &kind_gvk,
        }),
    );
    item.insert("parameters".into(), scope_params(vec![name_param(&k.kind)]));
    paths.insert(format!("{base}/{{name}}"), Value::Object(item));

    if k.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            cx.op(OpSpec {
                id: format!("list{gv}{}ForAllNamespaces", k.kind),
                action: "list",
                desc: format!("list or watch objects of kind {}", k.kind),
                params: list_params(),
                body: None,
                responses: cx.responses(&["200"], list.clone()),
                gvk: &kind_gvk,
            }),
        );
        all.insert("parameters".into(), json!([query(&PRETTY, flavor)]));
        paths.insert(format!("{prefix}/{}", k.plural), Value::Object(all));
    }

    for sub in &k.subresources {
        let (schema, sub_gvk) = match sub.as_str() {
            "status" | "ephemeralcontainers" | "resize" => (obj.clone(), kind_gvk.clone()),
            "scale" => (
                reference("io.k8s.api.autoscaling.v1.Scale", flavor),
                gvk("autoscaling", "v1", "Scale"),
            ),
            _ => continue,
        };
        let suffix = camel_word(sub);
        let mut m = Map::new();
        m.insert(
            "get".into(),
            cx.op(OpSpec {
                id: format!("read{gv}{scope}{}{suffix}", k.kind),
                action: "get",
                desc: format!("read {sub} of the specified {}", k.kind),
                params: Vec::new(),
                body: None,
                responses: cx.responses(&["200"], schema.clone()),
                gvk: &sub_gvk,
            }),
        );
        m.insert(
            "put".into(),
            cx.op(OpSpec {
                id: format!("replace{gv}{scope}{}{suffix}", k.kind),
                action: "put",
                desc: format!("replace {sub} of the specified {}", k.kind),
                params: write_params(),
                body: Some((schema.clone(), vec!["*/*"])),
                responses: cx.responses(&["200", "201"], schema.clone()),
                gvk: &sub_gvk,
            }),
        );
        m.insert(
            "patch".into(),
            cx.op(OpSpec {
                id: format!("patch{gv}{scope}{}{suffix}", k.kind),
                action: "patch",
                desc: format!("partially update {sub} of the specified {}", k.kind),
                params: patch_params(),
                body: Some((reference(PATCH, flavor), cx.patch_types.clone())),
                responses: cx.responses(&["200", "201"], schema.clone()),
                gvk: &sub_gvk,
            }),
        );
        m.insert("parameters".into(), scope_params(vec![name_param(&k.kind)]));
        paths.insert(format!("{base}/{{name}}/{sub}"), Value::Object(m));
    }
}

fn camel_word(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
