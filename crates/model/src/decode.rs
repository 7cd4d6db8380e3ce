//! Decoding one part of a document into a typed value while collecting *every* problem.
//!
//! serde stops at the first error, so a document is decoded piece by piece (integration, each
//! flow, each trigger, each step): each piece reports its first type error, and all of its
//! unknown keys are found with `serde_ignored` rather than `deny_unknown_fields`. The JSON
//! Schema still says `additionalProperties: false` for editors.

use crate::diag::{Diags, Path, Seg};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes `value` (found at `path`) as `T`, recording problems in `diags`.
pub fn decode<T: DeserializeOwned + JsonSchema>(value: &Value, path: &Path, diags: &mut Diags) -> Option<T> {
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let mut on_ignored = |p: serde_ignored::Path<'_>| unknown.push(ignored_path(&p));
    let result: Result<T, _> =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut on_ignored));
    for segs in unknown.iter_mut() {
        add_variant_keys(value, segs);
        let (Some(Seg::Key(key)), parent) = (segs.last(), &segs[..segs.len().saturating_sub(1)]) else { continue };
        let expected = known_keys::<T>(parent);
        let mut message = format!("unknown key `{key}`");
        if let Some(close) = closest(key, &expected) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        if !expected.is_empty() {
            message.push_str(&format!(" (expected one of: {})", expected.join(", ")));
        }
        diags.error(&path.join(segs.iter().cloned()), message);
    }
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let segs: Vec<Seg> = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            diags.error(&path.join(segs), humanize(&e.into_inner().to_string()));
            None
        }
    }
}

/// serde_ignored leaves out the variant key of externally tagged enums (`auth.apiKey.x`
/// comes back as `auth.x`); walk the value and put such keys back.
fn add_variant_keys(root: &Value, segs: &mut Vec<Seg>) {
    let mut node = root;
    let mut i = 0;
    while i < segs.len() {
        node = match (&segs[i], node) {
            (Seg::Key(k), Value::Object(o)) => match o.get(k) {
                Some(v) => v,
                None if o.len() == 1 => {
                    let (variant, inner) = o.iter().next().expect("one key");
                    if inner.get(k).is_none() {
                        return;
                    }
                    segs.insert(i, Seg::Key(variant.clone()));
                    inner
                }
                None => return,
            },
            (Seg::Index(n), Value::Array(a)) => match a.get(*n) {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
        i += 1;
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path as P;
    match p {
        P::Root => Vec::new(),
        P::Seq { parent, index } => {
            let mut v = ignored_path(parent);
            v.push(Seg::Index(*index));
            v
        }
        P::Map { parent, key } => {
            let mut v = ignored_path(parent);
            v.push(Seg::Key(key.clone()));
            v
        }
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// serde's messages with our vocabulary (`invalid type: map` → `… an object`).
fn humanize(msg: &str) -> String {
    msg.replace("invalid type: map", "invalid type: object")
        .replace("invalid type: sequence", "invalid type: list")
        .replace("a sequence", "a list")
        .replace("expected struct ", "expected an object ")
        .replace("unknown variant", "unknown kind")
}

/// The keys the schema of `T` allows at `path` (best effort: follows `$ref`s, properties,
/// items and single-key enum variants).
fn known_keys<T: JsonSchema>(path: &[Seg]) -> Vec<String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    let root: &Value = schema.as_value();
    let resolve = |s: &Value| -> Option<Value> { resolve_ref(root, s) };
    let mut node = match resolve(root) {
        Some(n) => n,
        None => return Vec::new(),
    };
    for seg in path {
        let next = match seg {
            Seg::Key(k) => find_property(&node, k, &resolve),
            Seg::Index(_) => node.get("items").and_then(&resolve),
        };
        node = match next {
            Some(n) => n,
            None => return Vec::new(),
        };
    }
    let mut keys = Vec::new();
    collect_props(&node, &resolve, &mut keys);
    keys
}

fn resolve_ref<'a>(root: &'a Value, mut s: &'a Value) -> Option<Value> {
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => s = root.pointer(r.trim_start_matches('#'))?,
            None => return Some(s.clone()),
        }
    }
    None
}

fn find_property(node: &Value, key: &str, resolve: &dyn Fn(&Value) -> Option<Value>) -> Option<Value> {
    if let Some(p) = node.get("properties").and_then(|p| p.get(key)) {
        return resolve(p);
    }
    // Optional fields are `anyOf [T, null]`; enums are `oneOf` variants.
    for alt in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(alt).and_then(Value::as_array) {
            for s in list {
                if let Some(found) = resolve(s).and_then(|s| find_property(&s, key, resolve)) {
                    return Some(found);
                }
            }
        }
    }
    None
}

fn collect_props(node: &Value, resolve: &dyn Fn(&Value) -> Option<Value>, out: &mut Vec<String>) {
    if let Some(p) = node.get("properties").and_then(Value::as_object) {
        for k in p.keys() {
            if !out.contains(k) {
                out.push(k.clone());
            }
        }
    }
    for alt in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(alt).and_then(Value::as_array) {
            for s in list {
                if let Some(s) = resolve(s) {
                    collect_props(&s, resolve, out);
                }
            }
        }
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: &'a [impl AsRef<str>]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(&word.to_lowercase(), &c.as_ref().to_lowercase()), c.as_ref()))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
