//! Reading a definition document from YAML or JSON text into a JSON value plus the line and
//! column of every node, so later checks can say where a problem is.

use crate::diag::{Diagnostic, Locations, Path, Position};
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted in a definition document.
pub const MAX_DOCUMENT_DEPTH: usize = 64;
/// Largest definition document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// The text format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2.
    Yaml,
    /// JSON.
    Json,
}

impl Format {
    /// Guesses the format of `text`: JSON when it starts with `{`.
    pub fn sniff(text: &str) -> Format {
        if text.trim_start().starts_with('{') { Format::Json } else { Format::Yaml }
    }
}

/// A parsed document: its value and where each node was in the text.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document as JSON.
    pub value: Value,
    /// Line and column of each node.
    pub locations: Locations,
}

/// Parses `text` as `format`.
///
/// # Errors
/// A syntax error (with its line and column), more than one YAML document, a document over
/// [`MAX_DOCUMENT_BYTES`] or nested deeper than [`MAX_DOCUMENT_DEPTH`].
pub fn parse(text: &str, format: Format) -> Result<Document, Diagnostic> {
    let err = |line: Option<usize>, column: Option<usize>, message: String| Diagnostic {
        path: Path::root().to_string(),
        line,
        column,
        message,
    };
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(err(None, None, format!("document is {} bytes; the limit is {MAX_DOCUMENT_BYTES}", text.len())));
    }
    if let Err((line, column)) = check_yaml_nesting(text) {
        return Err(err(Some(line), Some(column), format!("document nests deeper than {MAX_DOCUMENT_DEPTH} levels")));
    }
    if format == Format::Json {
        // The YAML parser may stop at a syntax error before it reaches the depth; JSON is
        // measured on its own, without recursion, before serde builds anything.
        if let Err((line, column)) = check_json_nesting(text) {
            return Err(err(
                Some(line),
                Some(column),
                format!("document nests deeper than {MAX_DOCUMENT_DEPTH} levels"),
            ));
        }
        // serde_json is the strict judge of JSON; saphyr then only supplies positions.
        // Keys are checked for repeats while reading (as YAML's are): JSON's last-one-wins
        // would silently drop half of a definition.
        let value = serde_json::from_str::<UniqueKeys>(text)
            .map_err(|e| err(Some(e.line()), Some(e.column()), format!("invalid JSON: {e}")))?
            .0;
        let locations = yaml_docs(text)
            .ok()
            .and_then(|docs| docs.into_iter().next())
            .and_then(|doc| convert(&doc, &Path::root(), 0).ok())
            .map(|(_, l)| l)
            .unwrap_or_default();
        return Ok(Document { value, locations });
    }
    let docs = yaml_docs(text).map_err(|e| {
        let m = e.marker();
        err(Some(m.line()), Some(m.col() + 1), format!("invalid YAML: {}", e.info()))
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(err(None, None, "the document is empty".into()));
    };
    if docs.next().is_some() {
        return Err(err(None, None, "expected one YAML document, found several (`---`)".into()));
    }
    let (value, locations) = convert(&doc, &Path::root(), 0)?;
    Ok(Document { value, locations })
}

fn yaml_docs(text: &str) -> Result<Vec<MarkedYaml<'_>>, saphyr::ScanError> {
    MarkedYaml::load_from_str(text)
}

/// Measures how deeply `text` nests by reading its parser events, before any tree is built:
/// building (and dropping) a tree recurses per level, so a 40 KB document of 20,000 nested
/// block sequences would overflow the stack. Returns the line and column of the first node
/// past the limit. Syntax errors are left to the loader, which reports them.
fn check_yaml_nesting(text: &str) -> Result<(), (usize, usize)> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return Ok(()) };
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DOCUMENT_DEPTH + 1 {
                    return Err((span.start.line(), span.start.col() + 1));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Measures how deeply JSON `text` nests (brackets outside strings), in one pass; the line
/// and column of the first bracket past the limit.
fn check_json_nesting(text: &str) -> Result<(), (usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        column += 1;
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth > MAX_DOCUMENT_DEPTH + 1 {
                    return Err((line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => {
                line += 1;
                column = 0;
            }
            _ => {}
        }
    }
    Ok(())
}

fn convert(node: &MarkedYaml<'_>, path: &Path, depth: usize) -> Result<(Value, Locations), Diagnostic> {
    let mut locations = Locations::default();
    let value = convert_into(node, path, depth, &mut locations)?;
    Ok((value, locations))
}

fn convert_into(node: &MarkedYaml<'_>, path: &Path, depth: usize, locs: &mut Locations) -> Result<Value, Diagnostic> {
    let pos = Position { line: node.span.start.line(), column: node.span.start.col() + 1 };
    locs.0.insert(path.clone(), pos);
    let fail = |message: String| Diagnostic {
        path: path.to_string(),
        line: Some(pos.line),
        column: Some(pos.column),
        message,
    };
    if depth > MAX_DOCUMENT_DEPTH {
        return Err(fail(format!("document nests deeper than {MAX_DOCUMENT_DEPTH} levels")));
    }
    Ok(match &node.data {
        YamlData::Value(s) => scalar(s).map_err(fail)?,
        YamlData::Representation(s, _, _) => Value::String(s.to_string()),
        YamlData::Sequence(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| convert_into(x, &path.index(i), depth + 1, locs))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => {
            let mut out = Map::with_capacity(map.len());
            for (k, v) in map.iter() {
                let key = match &k.data {
                    YamlData::Value(Scalar::String(s)) => s.to_string(),
                    YamlData::Value(Scalar::Null) => "null".to_owned(),
                    YamlData::Value(other) => match scalar(other).map_err(&fail)? {
                        Value::String(s) => s,
                        v => v.to_string(),
                    },
                    YamlData::Representation(s, _, _) => s.to_string(),
                    _ => return Err(fail("mapping keys must be plain strings".into())),
                };
                let child = path.key(key.clone());
                let value = convert_into(v, &child, depth + 1, locs)?;
                // Point at the key rather than the value: that is where users look.
                locs.0.insert(child, Position { line: k.span.start.line(), column: k.span.start.col() + 1 });
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlData::Tagged(_, inner) => convert_into(inner, path, depth, locs)?,
        YamlData::Alias(_) => return Err(fail("unresolved YAML alias".into())),
        YamlData::BadValue => return Err(fail("invalid YAML value".into())),
    })
}

fn scalar(s: &Scalar<'_>) -> Result<Value, String> {
    Ok(match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => {
            Value::Number(Number::from_f64(f.into_inner()).ok_or("numbers must be finite (no .nan or .inf)")?)
        }
        Scalar::String(s) => Value::String(s.to_string()),
    })
}

/// A JSON value read with every object's keys checked for repeats.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let UniqueKeys(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
