//! Redaction: secret values in recorded data (journals, step inputs and outputs) are replaced
//! by markers before they are written, and put back when an execution resumes.
//!
//! A marker is `«secret:NAME»`. Each marker stands for exactly one value, so
//! [`Redactor::restore_text`] undoes [`Redactor::redact_text`] exactly (for text that held no
//! marker of a known name before). The JSON forms work on serialized values without parsing
//! them: they match a value's JSON-escaped form, and only at the start of a character inside a
//! string, so the result stays valid JSON.
//!
//! Where two occurrences overlap, the longer value wins: a secret that contains another is
//! replaced whole. All occurrences are found in one pass over the input (an Aho–Corasick
//! automaton), and nothing is allocated when none is found.
//!
//! # What is recognised (issue 13)
//!
//! A secret's exact value, and — for values of [`MIN_ENCODED_LEN`] characters or more — its
//! common encodings: upper and lower case, hex (both cases), percent-encoding, and base64
//! (standard and URL-safe) at each of the three alignments it can take inside a longer
//! encoded text (so `base64("user:" + password)`, a Basic `Authorization` header, is caught).
//! Each encoding has a marker of its own (`«secret:NAME|base64»`) that restores to exactly
//! the text it replaced. Other transformations (reversed, split, `explode`d, hashed) are not
//! recognised: values that must never be recorded should not be transformed in expressions.

use aho_corasick::{AhoCorasick, MatchKind};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// How a marker starts; the secret's name follows.
pub const MARKER_PREFIX: &str = "«secret:";

/// How a marker ends.
pub const MARKER_SUFFIX: &str = "»";

/// Characters in the shortest value that is redacted: shorter ones would match everywhere.
pub const MIN_SECRET_LEN: usize = 4;

/// Characters in the shortest value whose encodings are redacted too (shorter ones would
/// match inside unrelated base64 or hex text).
pub const MIN_ENCODED_LEN: usize = 8;

/// The encoded forms of a secret value: (marker suffix, text).
fn encodings(value: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let mut out = vec![
        ("upper", value.to_uppercase()),
        ("lower", value.to_lowercase()),
        ("hex", hex::encode(value)),
        ("HEX", hex::encode_upper(value)),
        ("url", percent_encode(value)),
    ];
    // Base64 inside a longer text: the secret starts at byte 0, 1 or 2 of a 3-byte group.
    // The characters covering only secret bytes are the same whatever surrounds them.
    for (suffix, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE_NO_PAD)] {
        for shift in 0..3usize {
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&bytes);
            // Skip the characters touched by the padding bytes before, and the last group's
            // characters that the bytes after would change.
            let skip = (shift * 4).div_ceil(3);
            let keep = ((shift + value.len()) / 3) * 4;
            if keep > skip + 4 {
                let name = match (suffix, shift) {
                    ("base64", 0) => "base64",
                    ("base64", 1) => "base64.1",
                    ("base64", _) => "base64.2",
                    (_, 0) => "base64url",
                    (_, 1) => "base64url.1",
                    _ => "base64url.2",
                };
                out.push((name, encoded[skip..keep].to_owned()));
            }
        }
    }
    out
}

/// `value` with every byte but unreserved URL characters percent-encoded.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces secret values in recorded data with markers, and puts them back.
///
/// Cheap to clone (the tables are shared); the default one knows no secret and costs nothing.
/// `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Redactor {
    /// `None` when there is no secret, so the common case does not even scan.
    table: Option<Arc<Table>>,
}

/// The secrets in four forms, index-aligned and ordered longest value first: position is
/// priority when occurrences overlap.
struct Table {
    names: Vec<String>,
    values: Patterns,
    markers: Patterns,
    json_values: Patterns,
    json_markers: Patterns,
}

/// Where a match may start.
#[derive(Clone, Copy)]
enum Starts {
    /// Anywhere.
    Anywhere,
    /// At a character (not inside an escape) inside a JSON string.
    JsonStrings,
}

impl Redactor {
    /// A redactor for `secrets`, given as (name, value).
    ///
    /// Values shorter than [`MIN_SECRET_LEN`] characters are ignored. A value given twice
    /// keeps its first name. Names are made unique (`token`, `token#2`, …) and `«`/`»` in them
    /// become `_`, so that each marker names exactly one value.
    pub fn new(secrets: impl IntoIterator<Item = (String, String)>) -> Redactor {
        let mut seen_values = HashSet::new();
        let mut taken_names = HashSet::new();
        let mut entries: Vec<(String, String)> = Vec::new();
        for (name, value) in secrets {
            if value.chars().count() < MIN_SECRET_LEN || !seen_values.insert(value.clone()) {
                continue;
            }
            let base: String = name.chars().map(|c| if c == '«' || c == '»' { '_' } else { c }).collect();
            let mut unique = base.clone();
            let mut n = 2;
            while !taken_names.insert(unique.clone()) {
                unique = format!("{base}#{n}");
                n += 1;
            }
            if value.chars().count() >= MIN_ENCODED_LEN {
                for (suffix, encoded) in encodings(&value) {
                    if encoded.chars().count() >= MIN_SECRET_LEN && seen_values.insert(encoded.clone()) {
                        entries.push((format!("{unique}|{suffix}"), encoded));
                    }
                }
            }
            entries.push((unique, value));
        }
        if entries.is_empty() {
            return Redactor::default();
        }
        // Stable: values of one length keep the order they were given in.
        entries.sort_by_key(|(_, value)| std::cmp::Reverse(value.chars().count()));
        let markers: Vec<String> =
            entries.iter().map(|(name, _)| format!("{MARKER_PREFIX}{name}{MARKER_SUFFIX}")).collect();
        let table = Table {
            json_values: Patterns::new(entries.iter().map(|(_, value)| json_escape(value)).collect()),
            json_markers: Patterns::new(markers.iter().map(|marker| json_escape(marker)).collect()),
            markers: Patterns::new(markers),
            values: Patterns::new(entries.iter().map(|(_, value)| value.clone()).collect()),
            names: entries.into_iter().map(|(name, _)| name).collect(),
        };
        Redactor { table: Some(Arc::new(table)) }
    }

    /// Whether it knows no secret (then every method returns its input as it is).
    pub fn is_empty(&self) -> bool {
        self.table.is_none()
    }

    /// How many secrets it knows.
    pub fn len(&self) -> usize {
        self.table.as_ref().map_or(0, |t| t.names.iter().filter(|n| !n.contains('|')).count())
    }

    /// Replaces each occurrence of a secret value in plain text with `«secret:NAME»`.
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.table {
            None => Cow::Borrowed(text),
            Some(t) => replace(text, &t.values, &t.markers.texts, Starts::Anywhere),
        }
    }

    /// Replaces secret values inside the strings (and keys) of JSON text with markers.
    ///
    /// A value is matched in its JSON-escaped form (as serde_json writes it: `"`, `\` and
    /// control characters escaped), and only where a character of a string starts, so the
    /// result is valid JSON whenever the input was, and equals the serialization of
    /// [`redact_value`](Redactor::redact_value) on the parsed input. Numbers and other tokens
    /// outside strings are left alone ([`leaks`](Redactor::leaks) still sees them).
    pub fn redact_json_text<'a>(&self, json: &'a str) -> Cow<'a, str> {
        match &self.table {
            None => Cow::Borrowed(json),
            Some(t) => replace(json, &t.json_values, &t.json_markers.texts, Starts::JsonStrings),
        }
    }

    /// A copy of `v` in which every string and object key holding a secret value has it
    /// replaced by its marker.
    pub fn redact_value(&self, v: &Value) -> Value {
        if self.is_empty() {
            return v.clone();
        }
        map_strings(v, &|s| self.redact_text(s))
    }

    /// The reverse of [`redact_text`](Redactor::redact_text): markers become values again.
    /// Markers of names it does not know are left as they are.
    pub fn restore_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.table {
            None => Cow::Borrowed(text),
            Some(t) => replace(text, &t.markers, &t.values.texts, Starts::Anywhere),
        }
    }

    /// The reverse of [`redact_json_text`](Redactor::redact_json_text): markers become the
    /// values, JSON-escaped so the text stays valid JSON.
    pub fn restore_json_text<'a>(&self, json: &'a str) -> Cow<'a, str> {
        // A marker starts with `«`, which is never part of an escape: no need to look for
        // where strings are.
        match &self.table {
            None => Cow::Borrowed(json),
            Some(t) => replace(json, &t.json_markers, &t.json_values.texts, Starts::Anywhere),
        }
    }

    /// The reverse of [`redact_value`](Redactor::redact_value).
    pub fn restore_value(&self, v: &Value) -> Value {
        if self.is_empty() {
            return v.clone();
        }
        map_strings(v, &|s| self.restore_text(s))
    }

    /// Whether `text` holds any secret value, as it is or JSON-escaped (for tests and checks).
    pub fn leaks(&self, text: &str) -> bool {
        self.table.as_ref().is_some_and(|t| t.values.occurs_in(text) || t.json_values.occurs_in(text))
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&String> =
            self.table.as_ref().map_or(Vec::new(), |t| t.names.iter().filter(|n| !n.contains('|')).collect());
        f.debug_struct("Redactor").field("names", &names).finish()
    }
}

/// Strings to look for, in priority order, with an automaton that finds all of them at once.
struct Patterns {
    texts: Vec<String>,
    /// `None` only if the automaton could not be built (it has size limits): then each text is
    /// searched for on its own, which gives the same results more slowly.
    automaton: Option<AhoCorasick>,
}

impl Patterns {
    fn new(texts: Vec<String>) -> Patterns {
        let automaton = AhoCorasick::builder().match_kind(MatchKind::Standard).build(&texts).ok();
        Patterns { texts, automaton }
    }

    /// Calls `found(pattern, start)` for every occurrence in `hay`, overlapping ones included.
    fn each_occurrence(&self, hay: &str, mut found: impl FnMut(usize, usize)) {
        if let Some(iter) = self.automaton.as_ref().and_then(|ac| ac.try_find_overlapping_iter(hay).ok()) {
            for m in iter {
                found(m.pattern().as_usize(), m.start());
            }
            return;
        }
        for (pattern, text) in self.texts.iter().enumerate() {
            let mut from = 0;
            while let Some(at) = hay.get(from..).and_then(|rest| rest.find(text.as_str())) {
                let start = from + at;
                found(pattern, start);
                from = start + hay.get(start..).and_then(|rest| rest.chars().next()).map_or(1, char::len_utf8);
            }
        }
    }

    fn occurs_in(&self, hay: &str) -> bool {
        match self.automaton.as_ref().map(|ac| ac.try_find(hay)) {
            Some(Ok(found)) => found.is_some(),
            _ => self.texts.iter().any(|text| hay.contains(text.as_str())),
        }
    }
}

/// Replaces occurrences of `from`'s patterns in `hay` with the `to` of the same index. Of
/// overlapping occurrences the one of the earlier pattern wins, then the one further left.
fn replace<'a>(hay: &'a str, from: &Patterns, to: &[String], starts: Starts) -> Cow<'a, str> {
    let mut found: Vec<(usize, usize)> = Vec::new();
    from.each_occurrence(hay, |pattern, start| found.push((pattern, start)));
    if found.is_empty() {
        return Cow::Borrowed(hay);
    }
    if let Starts::JsonStrings = starts {
        let allowed = json_char_starts(hay);
        found.retain(|&(_, start)| allowed.get(start).copied().unwrap_or(false));
        if found.is_empty() {
            return Cow::Borrowed(hay);
        }
    }
    found.sort_unstable();
    // start → (end, pattern) of the occurrences kept; they never overlap.
    let mut kept: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for (pattern, start) in found {
        let end = start + from.texts[pattern].len();
        // Only the kept occurrence starting last before `end` can overlap [start, end).
        let overlaps = kept.range(..end).next_back().is_some_and(|(&s, &(e, _))| s >= start || e > start);
        if !overlaps {
            kept.insert(start, (end, pattern));
        }
    }
    let grown: usize = kept.values().map(|&(_, pattern)| to[pattern].len()).sum();
    let mut out = String::with_capacity(hay.len() + grown);
    let mut at = 0;
    // Occurrences start and end on character boundaries: patterns are whole UTF-8 text.
    for (start, (end, pattern)) in kept {
        out.push_str(&hay[at..start]);
        out.push_str(&to[pattern]);
        at = end;
    }
    out.push_str(&hay[at..]);
    Cow::Owned(out)
}

/// For each byte offset of `json`, whether it is inside a string at the start of a character
/// or escape sequence: the only places where an escaped value may be replaced without
/// breaking the JSON or matching half an escape (`n123` in `"\n123"`). Tolerates any input.
fn json_char_starts(json: &str) -> Vec<bool> {
    let bytes = json.as_bytes();
    let mut starts = vec![false; bytes.len() + 1];
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        starts[i] = true;
        i += match b {
            b'"' => {
                in_string = false;
                1
            }
            b'\\' if bytes.get(i + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            _ => 1,
        };
    }
    starts
}

/// `s` as it appears between the quotes of a JSON string written by serde_json.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    match quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Some(inner) => inner.to_owned(),
        None => s.to_owned(),
    }
}

/// A copy of `v` with `f` applied to every string and object key.
fn map_strings<'s, F>(v: &'s Value, f: &F) -> Value
where
    F: Fn(&'s str) -> Cow<'s, str>,
{
    match v {
        Value::String(s) => Value::String(f(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(|item| map_strings(item, f)).collect()),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, item)| (f(k).into_owned(), map_strings(item, f))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;
    use serde_json::json;

    const TOKEN: &str = "sk_live_abc123";
    const PASSWORD: &str = "pa\"ss\\wo\nrd";
    const UNICODE: &str = "pässwörd✓🔑";
    const CONTROL: &str = "ab\u{1}\u{1f}\u{7f}cd";
    /// Inside TOKEN.
    const INNER: &str = "live_abc";
    /// Overlaps TOKEN's end.
    const OVERLAP: &str = "123XYZ";

    fn secrets() -> Vec<(String, String)> {
        [
            ("apiToken", TOKEN),
            ("password", PASSWORD),
            ("unicode", UNICODE),
            ("control", CONTROL),
            ("inner", INNER),
            ("overlap", OVERLAP),
            ("tab", "\tTAB\t"),
            ("short", "abc"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
    }

    fn redactor() -> Redactor {
        Redactor::new(secrets())
    }

    fn marker(name: &str) -> String {
        format!("{MARKER_PREFIX}{name}{MARKER_SUFFIX}")
    }

    #[test]
    fn is_send_sync_clone_default() {
        fn check<T: Send + Sync + Clone + Default>() {}
        check::<Redactor>();
        assert!(Redactor::default().is_empty());
        assert_eq!(redactor().clone().len(), 7);
    }

    #[test]
    fn redacts_plain_text() {
        let r = redactor();
        let text = format!("Authorization: Bearer {TOKEN}\npassword={PASSWORD}; again {TOKEN}");
        let redacted = r.redact_text(&text);
        assert_eq!(
            redacted,
            "Authorization: Bearer «secret:apiToken»\npassword=«secret:password»; again «secret:apiToken»"
        );
        assert!(!r.leaks(&redacted) && r.leaks(&text));
        assert_eq!(r.restore_text(&redacted), text);
        assert_eq!(r.redact_text(&format!("{UNICODE}{UNICODE}")), "«secret:unicode»«secret:unicode»");
    }

    #[test]
    fn nothing_to_do_borrows() {
        let r = redactor();
        for text in ["", "nothing secret here", "sk_live_ab", "«secret:apiToken", "ünïcødé"] {
            assert!(matches!(r.redact_text(text), Cow::Borrowed(_)), "{text:?}");
            assert!(matches!(r.redact_json_text(text), Cow::Borrowed(_)), "{text:?}");
            assert!(matches!(r.restore_text(text), Cow::Borrowed(_)), "{text:?}");
            assert!(matches!(r.restore_json_text(text), Cow::Borrowed(_)), "{text:?}");
        }
        let empty = Redactor::default();
        let text = format!("{TOKEN} «secret:apiToken»");
        assert!(matches!(empty.redact_text(&text), Cow::Borrowed(_)));
        assert!(matches!(empty.redact_json_text(&text), Cow::Borrowed(_)));
        assert!(matches!(empty.restore_text(&text), Cow::Borrowed(_)));
        assert!(matches!(empty.restore_json_text(&text), Cow::Borrowed(_)));
        assert!(!empty.leaks(&text));
        let v = json!({"a": TOKEN});
        assert_eq!(empty.redact_value(&v), v);
        assert_eq!(empty.restore_value(&v), v);
        // A match outside any JSON string is no match.
        assert!(matches!(r.redact_json_text(&format!("[1, {TOKEN}]")), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_ignored() {
        let r = Redactor::new([("pin".to_owned(), "123".to_owned()), ("emoji".to_owned(), "🔑🔑🔑".to_owned())]);
        assert!(r.is_empty());
        assert_eq!(r.len(), 0);
        assert_eq!(redactor().redact_text("abc abcd"), "abc abcd");
        // The length is in characters, not bytes.
        let r = Redactor::new([("emoji".to_owned(), "🔑🔑🔑🔑".to_owned())]);
        assert_eq!(r.redact_text("x🔑🔑🔑🔑y"), "x«secret:emoji»y");
    }

    #[test]
    fn longer_values_win_over_values_they_contain() {
        let r = redactor();
        assert_eq!(r.redact_text(&format!("{TOKEN} {INNER}")), "«secret:apiToken» «secret:inner»");
        // Overlapping without containing: the longer one is replaced whole.
        assert_eq!(r.redact_text("sk_live_abc123XYZ"), "«secret:apiToken»XYZ");
        assert_eq!(r.redact_text("xx_live_abc123XYZ"), "xx_«secret:inner»«secret:overlap»");
        // Whatever the order the secrets are given in.
        let reversed = Redactor::new(secrets().into_iter().rev());
        assert_eq!(reversed.redact_text(&format!("{TOKEN} {INNER}")), "«secret:apiToken» «secret:inner»");
        // A value that is inside a marker is not looked for in the markers put in.
        let r = Redactor::new([("s".to_owned(), "secret".to_owned()), ("k".to_owned(), "my-secret-key".to_owned())]);
        let text = "my-secret-key and secret";
        assert_eq!(r.redact_text(text), "«secret:k» and «secret:s»");
        assert_eq!(r.restore_text(&r.redact_text(text)), text);
    }

    #[test]
    fn self_overlapping_occurrences() {
        let r = Redactor::new([("a".to_owned(), "aaaa".to_owned())]);
        assert_eq!(r.redact_text("aaaaaaaaaa"), "«secret:a»«secret:a»aa");
        assert_eq!(r.restore_text(&r.redact_text("aaaaaaaaaa")), "aaaaaaaaaa");
    }

    #[test]
    fn redacts_json_text_with_escaped_values() {
        let r = redactor();
        let v = json!({
            "headers": {"authorization": format!("Bearer {TOKEN}"), "x-pass": PASSWORD},
            "body": [UNICODE, {"c": CONTROL, "tab": "\tTAB\t"}, 42, null, true],
            PASSWORD: "as a key",
        });
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains(r#"pa\"ss\\wo\nrd"#) && text.contains(r"\u0001\u001f"), "{text}");
        let redacted = r.redact_json_text(&text);
        assert!(!r.leaks(&redacted), "{redacted}");
        let parsed: Value = serde_json::from_str(&redacted).unwrap();
        let expected = json!({
            "headers": {"authorization": "Bearer «secret:apiToken»", "x-pass": "«secret:password»"},
            "body": ["«secret:unicode»", {"c": "«secret:control»", "tab": "«secret:tab»"}, 42, null, true],
            "«secret:password»": "as a key",
        });
        assert_eq!(parsed, expected);
        assert_eq!(r.redact_value(&v), expected);
        assert_eq!(redacted, serde_json::to_string(&expected).unwrap());
        // Back again, as valid JSON with the values escaped.
        let restored = r.restore_json_text(&redacted);
        assert_eq!(restored, text);
        assert_eq!(serde_json::from_str::<Value>(&restored).unwrap(), v);
        assert_eq!(r.restore_value(&expected), v);
        // Pretty-printed text too.
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&r.redact_json_text(&pretty)).unwrap(), expected);
    }

    #[test]
    fn json_matches_only_whole_characters_inside_strings() {
        let r = Redactor::new([
            ("n".to_owned(), "n123".to_owned()),
            ("hex".to_owned(), "001fzz".to_owned()),
            ("pin".to_owned(), "12345678".to_owned()),
            ("q".to_owned(), "\"quoted\"".to_owned()),
        ]);
        // "\n123" is a newline then 123: it does not contain "n123".
        for v in [json!("\n123"), json!("\u{1f}zz"), json!(["x\\", "n123"])] {
            let text = serde_json::to_string(&v).unwrap();
            let redacted = r.redact_json_text(&text);
            assert!(serde_json::from_str::<Value>(&redacted).is_ok(), "{redacted}");
            assert_eq!(redacted, serde_json::to_string(&r.redact_value(&v)).unwrap());
        }
        assert_eq!(r.redact_json_text(r#"["x\\","n123"]"#), r#"["x\\","«secret:n»"]"#);
        assert_eq!(r.redact_json_text(r#"["x\\n123"]"#), r#"["x\\«secret:n»"]"#);
        // Numbers are not strings: replacing them would break the JSON.
        assert_eq!(r.redact_json_text(r#"{"a":12345678,"b":"12345678"}"#), r#"{"a":12345678,"b":"«secret:pin»"}"#);
        assert!(r.leaks(r#"{"a":12345678}"#));
        // A quote inside the value is matched in its escaped form only.
        assert_eq!(r.redact_json_text(r#"{"a":"say \"quoted\"!"}"#), r#"{"a":"say «secret:q»!"}"#);
        assert_eq!(r.redact_json_text(r#"{"a":"say ""quoted"""}"#), r#"{"a":"say ""quoted"""}"#);
        assert!(r.leaks(r#"say \"quoted\""#) && r.leaks("say \"quoted\""));
    }

    #[test]
    fn redacts_nested_values_and_keys() {
        let r = redactor();
        let v = json!({
            "level1": {"level2": [{"level3": format!("x{TOKEN}y")}, [[UNICODE]]]},
            format!("key-{INNER}"): {"n": 1.5, "b": false},
            "untouched": "plain",
        });
        let redacted = r.redact_value(&v);
        assert_eq!(
            redacted,
            json!({
                "level1": {"level2": [{"level3": "x«secret:apiToken»y"}, [["«secret:unicode»"]]]},
                "key-«secret:inner»": {"n": 1.5, "b": false},
                "untouched": "plain",
            })
        );
        assert!(!r.leaks(&redacted.to_string()));
        assert_eq!(r.restore_value(&redacted), v);
        // Order of keys is kept.
        let keys: Vec<_> = redacted.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["level1", "key-«secret:inner»", "untouched"]);
    }

    #[test]
    fn unknown_markers_are_left_intact() {
        let r = redactor();
        let text = "«secret:other» «secret:apiToken» «secret:» «secret:apiToken «secret:apiTokens»";
        assert_eq!(
            r.restore_text(text),
            format!("«secret:other» {TOKEN} «secret:» «secret:apiToken «secret:apiTokens»")
        );
        let json = r#"{"a":"«secret:other»","b":"«secret:password»"}"#;
        let restored = r.restore_json_text(json);
        assert_eq!(restored, r#"{"a":"«secret:other»","b":"pa\"ss\\wo\nrd"}"#);
        assert_eq!(serde_json::from_str::<Value>(&restored).unwrap()["b"], PASSWORD);
        assert_eq!(r.restore_value(&json!(["«secret:other»"])), json!(["«secret:other»"]));
    }

    /// Issue 13: transformed copies of a secret — case, hex, percent-encoding, base64 at any
    /// alignment (a Basic `Authorization` header) — are redacted too, each with a marker that
    /// restores exactly what it replaced.
    #[test]
    fn common_encodings_are_redacted_and_restored_exactly() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "s3cr3t-Pa$$word/42";
        let r = Redactor::new([("pw".to_owned(), secret.to_owned())]);
        assert_eq!(r.len(), 1, "one secret, whatever its encodings");
        let forms = [
            secret.to_owned(),
            secret.to_uppercase(),
            secret.to_lowercase(),
            hex::encode(secret),
            hex::encode_upper(secret),
            "s3cr3t-Pa%24%24word%2F42".to_owned(),
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            STANDARD.encode(format!("user:{secret}")),
            STANDARD.encode(format!("ab:{secret}:z")),
            URL_SAFE_NO_PAD.encode(format!("x{secret}")),
        ];
        for form in &forms {
            let text = format!("Authorization: Basic {form} end");
            let redacted = r.redact_text(&text);
            assert!(!redacted.contains(form.as_str()), "{form}: {redacted}");
            assert!(!r.leaks(&redacted), "{form}: {redacted}");
            assert_eq!(r.restore_text(&redacted), text, "{form}");
            let json = serde_json::to_string(&json!({ "h": text })).unwrap();
            let redacted = r.redact_json_text(&json);
            assert!(!redacted.contains(form.as_str()), "{form}: {redacted}");
            assert_eq!(r.restore_json_text(&redacted), json, "{form}");
        }
        // Short secrets: only the exact value (their encodings would match anywhere).
        let short = Redactor::new([("pin".to_owned(), "4711".to_owned())]);
        assert_eq!(short.redact_text("NDcxMQ== 4711"), "NDcxMQ== «secret:pin»");
    }

    #[test]
    fn names_are_made_unique_and_values_deduplicated() {
        let r = Redactor::new(
            [
                ("token", "aaaa1111"),
                ("token", "bbbb2222"),
                ("alias", "aaaa1111"),
                ("we«ir»d", "cccc3333"),
                ("we_ir_d", "dddd"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
        assert_eq!(r.len(), 4);
        let text = "aaaa1111 bbbb2222 cccc3333 dddd";
        let redacted = r.redact_text(text);
        assert_eq!(redacted, "«secret:token» «secret:token#2» «secret:we_ir_d» «secret:we_ir_d#2»");
        assert_eq!(r.restore_text(&redacted), text);
        // Names that need JSON escapes.
        let r = Redactor::new([("a\"b\\c".to_owned(), "value\"1".to_owned())]);
        let json = serde_json::to_string(&json!({"k": "value\"1"})).unwrap();
        let redacted = r.redact_json_text(&json);
        assert_eq!(serde_json::from_str::<Value>(&redacted).unwrap(), json!({"k": marker("a\"b\\c")}));
        assert_eq!(r.restore_json_text(&redacted), json);
    }

    #[test]
    fn debug_shows_names_only() {
        let shown = format!("{:?}", redactor());
        assert!(shown.contains("apiToken") && !shown.contains(TOKEN) && !shown.contains("pässwörd"), "{shown}");
        assert_eq!(format!("{:?}", Redactor::default()), "Redactor { names: [] }");
    }

    #[test]
    fn the_fallback_search_finds_what_the_automaton_finds() {
        let r = redactor();
        let t = r.table.as_ref().unwrap();
        let slow = Patterns { texts: t.values.texts.clone(), automaton: None };
        let slow_json = Patterns { texts: t.json_values.texts.clone(), automaton: None };
        let mut rng = rand::rng();
        for _ in 0..200 {
            let text = random_text(&mut rng);
            let json = serde_json::to_string(&text).unwrap();
            assert_eq!(replace(&text, &slow, &t.markers.texts, Starts::Anywhere), r.redact_text(&text));
            assert_eq!(
                replace(&json, &slow_json, &t.json_markers.texts, Starts::JsonStrings),
                r.redact_json_text(&json)
            );
            assert_eq!(slow.occurs_in(&text), t.values.occurs_in(&text));
        }
    }

    /// Pieces that make redaction hard: secrets, parts of them, escapes, markers.
    fn random_text(rng: &mut impl rand::Rng) -> String {
        let values: Vec<String> = secrets().into_iter().map(|(_, v)| v).collect();
        let alphabet: Vec<char> = " aZ_1\"\\\n\t\u{1}\u{1f}é✓🔑«»:/{}[],".chars().collect();
        let pieces = rng.random_range(0..12);
        let mut text = String::new();
        for _ in 0..pieces {
            match rng.random_range(0..10) {
                0..=2 => text.push_str(&values[rng.random_range(0..values.len())]),
                3 | 4 => {
                    let v = &values[rng.random_range(0..values.len())];
                    let chars: Vec<char> = v.chars().collect();
                    let a = rng.random_range(0..chars.len());
                    let b = rng.random_range(a..=chars.len());
                    text.extend(&chars[a..b]);
                }
                5 => text.push_str(["«secret:", "«secret:nobody»", "»", "\\u00", "\\"][rng.random_range(0..5)]),
                _ => {
                    for _ in 0..rng.random_range(1..6) {
                        text.push(alphabet[rng.random_range(0..alphabet.len())]);
                    }
                }
            }
        }
        text
    }

    #[test]
    fn restore_inverts_redact_on_random_text() {
        let r = redactor();
        let known_markers: Vec<String> = r.table.as_ref().unwrap().markers.texts.clone();
        let mut rng = rand::rng();
        let mut checked = 0;
        for _ in 0..600 {
            let text = random_text(&mut rng);
            if known_markers.iter().any(|m| text.contains(m.as_str())) {
                continue; // Not recorded data: it already holds a marker.
            }
            checked += 1;
            let redacted = r.redact_text(&text);
            assert_eq!(r.restore_text(&redacted), text, "{text:?} → {redacted:?}");
            // None of these values is part of a marker, so no whole one can survive.
            assert!(!r.leaks(&redacted), "{text:?} → {redacted:?}");

            // As JSON text: valid, the same as redacting the value, and back.
            let v = json!({ "text": text, "list": [text, {"k": 1}], text.clone(): null });
            let json = serde_json::to_string(&v).unwrap();
            let redacted_json = r.redact_json_text(&json);
            let parsed: Value = serde_json::from_str(&redacted_json).unwrap_or_else(|e| panic!("{e}: {redacted_json}"));
            assert!(!r.leaks(&redacted_json), "{redacted_json}");
            assert_eq!(parsed, r.redact_value(&v));
            assert_eq!(parsed["text"], Value::String(redacted.clone().into_owned()));
            assert_eq!(r.restore_json_text(&redacted_json), json);
            assert_eq!(r.restore_value(&parsed), v);
        }
        assert!(checked > 500, "{checked}");
    }

    #[test]
    fn whole_secrets_never_survive_redaction() {
        // With secrets that are not parts of markers, the redacted text holds none of them.
        let r = Redactor::new([
            ("a".to_owned(), "xyzw".to_owned()),
            ("b".to_owned(), "wxyz1".to_owned()),
            ("c".to_owned(), "\"q\"\"".to_owned()),
        ]);
        let alphabet: Vec<char> = "xyzwq1\"\\ ".chars().collect();
        let mut rng = rand::rng();
        for _ in 0..300 {
            let text: String =
                (0..rng.random_range(0..40)).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect();
            let redacted = r.redact_text(&text);
            for v in ["xyzw", "wxyz1", "\"q\"\""] {
                assert!(!redacted.contains(v), "{text:?} → {redacted:?}");
            }
            assert_eq!(r.restore_text(&redacted), text);
            let json = serde_json::to_string(&text).unwrap();
            assert_eq!(r.redact_json_text(&json), serde_json::to_string(&redacted).unwrap());
        }
    }

    #[test]
    fn garbage_json_never_panics() {
        let r = redactor();
        let mut rng = rand::rng();
        for _ in 0..300 {
            let text = random_text(&mut rng);
            for wrapped in [text.clone(), format!("\"{text}"), format!("{{\"a\":\"{text}\\u12")] {
                let _ = r.redact_json_text(&wrapped);
                let _ = r.restore_json_text(&wrapped);
            }
        }
        assert_eq!(json_char_starts("\"\\u").len(), 4);
        assert_eq!(r.redact_json_text(&format!("\"\\u{TOKEN}\"")), format!("\"\\u{TOKEN}\""));
    }
}
