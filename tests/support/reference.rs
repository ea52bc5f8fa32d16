//! Atlassian's OpenAPI description of the DC 9.2 REST API as a JSON Schema validator: the check
//! every simulated body and every hand-written fixture goes through.
//!
//! The file is read where the workspace keeps it (`../shared/reference/` beside the checkout, or
//! `$BBDC_OPENAPI_REFERENCE`); it is Atlassian's document and is not copied into the project. A
//! missing file fails the test that needs it, loudly.
//!
//! OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4/5; validating them as draft 4 checks
//! what the reference says about a shape (types, enums, nested objects) and nothing it does not:
//! the reference lists no required properties and allows unknown ones, so a body may carry more
//! than it describes (servers do), but never a described field in another shape.
#![allow(dead_code)]

use jsonschema::Validator;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Where the reference lives.
pub fn reference_path() -> PathBuf {
    const FILE: &str = "bitbucket-dc-9.2-openapi.json";
    if let Some(p) = std::env::var_os("BBDC_OPENAPI_REFERENCE") {
        return PathBuf::from(p);
    }
    // `../shared/reference` beside the checkout, from the root crate or a host-harness crate.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if let Some(beside) = manifest
        .ancestors()
        .map(|dir| dir.join("../shared/reference").join(FILE))
        .find(|p| p.exists())
    {
        return beside;
    }
    // The workplace keeps the shared folder at a fixed place; a clean clone elsewhere finds it there.
    PathBuf::from("/work/shared/reference").join(FILE)
}

/// The parsed reference.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = reference_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the OpenAPI reference is not at {} ({e}); set BBDC_OPENAPI_REFERENCE to its path",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("the OpenAPI reference is JSON")
    })
}

/// A validator for `schema`, resolving `#/components/...` references within the reference.
fn build(schema: Value) -> Validator {
    let mut root = schema;
    root["components"] = document()["components"].clone();
    jsonschema::draft4::options()
        .should_validate_formats(false)
        .build(&root)
        .expect("the reference's schemas compile")
}

fn cached(key: String, make: impl FnOnce() -> Value) -> &'static Validator {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Validator>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().expect("validator cache");
    map.entry(key)
        .or_insert_with(|| Box::leak(Box::new(build(make()))))
}

/// The validator of component schema `name` (e.g. `RestPullRequest`).
pub fn schema(name: &str) -> &'static Validator {
    assert!(
        document()["components"]["schemas"].get(name).is_some(),
        "the reference has no schema {name}"
    );
    cached(
        format!("schema {name}"),
        || json!({"$ref": format!("#/components/schemas/{name}")}),
    )
}

/// The problems `validator` finds in `instance`, one line each; empty when it conforms.
pub fn problems(validator: &Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Panics, naming `what` and every problem, unless `instance` conforms to schema `name`.
pub fn assert_schema(name: &str, instance: &Value, what: &str) {
    let found = problems(schema(name), instance);
    assert!(
        found.is_empty(),
        "{what} does not conform to the reference's {name}:\n  {}",
        found.join("\n  ")
    );
}

/// The reference's path template for a request path such as `/rest/api/1.0/projects/P/repos`,
/// matching literal segments exactly and `{param}` segments to anything.
pub fn path_template(request_path: &str) -> Option<&'static str> {
    let api = request_path
        .strip_prefix("/rest")?
        .replacen("/api/1.0/", "/api/latest/", 1)
        .replacen("/build-status/1.0/", "/build-status/latest/", 1);
    // The whole pull-request diff is described only as `.../diff/{path}` with an optional path.
    let api = if api.ends_with("/diff") && api.contains("/pull-requests/") {
        format!("{api}/{{path}}")
    } else {
        api
    };
    let want: Vec<&str> = api.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter(|t| {
            let have: Vec<&str> = t.split('/').collect();
            have.len() == want.len()
                && have
                    .iter()
                    .zip(&want)
                    .all(|(h, w)| (h.starts_with('{') && h.ends_with('}')) || h == w)
        })
        // Prefer the template with the most literal segments.
        .max_by_key(|t| t.split('/').filter(|s| !s.starts_with('{')).count())
        .map(String::as_str)
}

/// The validator of the `200` JSON response the reference declares for `GET template`.
pub fn response(template: &str) -> &'static Validator {
    cached(format!("response {template}"), || {
        document()["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]
            .clone()
    })
}

/// Panics unless `body`, served for `GET request_path`, conforms to the response the reference
/// declares for that path. Two declarations are known to be narrower than what every server
/// sends, and are checked as servers send them:
/// - `GET /users` is declared as one `RestApplicationUser` but is a page of them;
/// - the pull-request diff is declared as one `RestDiff` but is a wrapper whose `diffs` are
///   `RestDiff`s.
pub fn assert_response(request_path: &str, body: &Value) {
    let template = path_template(request_path)
        .unwrap_or_else(|| panic!("the reference describes no GET {request_path}"));
    let found = problems(response(template), body);
    assert!(
        found.is_empty(),
        "GET {request_path} does not conform to the reference ({template}):\n  {}",
        found.join("\n  ")
    );
    if template == "/api/latest/users" {
        for (i, u) in body["values"].as_array().into_iter().flatten().enumerate() {
            assert_schema(
                "RestApplicationUser",
                u,
                &format!("GET {request_path} item {i}"),
            );
        }
    }
    if template.ends_with("/diff/{path}") {
        for (i, d) in body["diffs"].as_array().into_iter().flatten().enumerate() {
            assert_schema("RestDiff", d, &format!("GET {request_path} diffs[{i}]"));
        }
    }
}

/// The schemas the parts of a pull-request webhook payload follow (the envelope itself is not in
/// the REST reference; its parts are the REST resources).
pub const WEBHOOK_PARTS: &[(&str, &str)] = &[
    ("pullRequest", "RestPullRequest"),
    ("actor", "RestApplicationUser"),
    ("participant", "RestPullRequestParticipant"),
    ("comment", "RestComment"),
    ("previousTarget", "RestMinimalRef"),
    ("repository", "RestRepository"),
    ("old", "RestRepository"),
    ("new", "RestRepository"),
];

/// Panics unless every part of webhook `payload` conforms to its REST schema, the reviewer lists
/// hold users, and the envelope's own fields are strings.
pub fn assert_webhook(key: &str, payload: &Value) {
    for (field, name) in WEBHOOK_PARTS {
        if let Some(part) = payload.get(*field) {
            assert_schema(name, part, &format!("{key} payload's {field}"));
        }
    }
    for list in ["addedReviewers", "removedReviewers"] {
        for (i, u) in payload[list].as_array().into_iter().flatten().enumerate() {
            assert_schema(
                "RestApplicationUser",
                u,
                &format!("{key} payload's {list}[{i}]"),
            );
        }
    }
    for (i, c) in payload["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_schema(
            "RestMinimalRef",
            &c["ref"],
            &format!("{key} payload's changes[{i}].ref"),
        );
        for field in ["refId", "fromHash", "toHash", "type"] {
            assert!(
                c[field].is_string(),
                "{key} payload's changes[{i}].{field} is not a string: {}",
                c[field]
            );
        }
    }
    for field in [
        "eventKey",
        "date",
        "previousTitle",
        "previousDescription",
        "previousFromHash",
        "previousStatus",
    ] {
        if let Some(v) = payload.get(field) {
            assert!(
                v.is_string(),
                "{key} payload's {field} is not a string: {v}"
            );
        }
    }
}
