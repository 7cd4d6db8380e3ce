//! Paths into a definition document and the located problems found in it.
//!
//! Every problem names where it is: a path (`flows[0].steps[2].http.url`, usable for JSON
//! input) and, when the document came from text, the line and column of that node.

use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Where a node sits in a document, from its root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The document's root.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path with one more key.
    pub fn key(&self, k: impl Into<String>) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }

    /// This path with one more index.
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// This path followed by `other`.
    pub fn join(&self, other: impl IntoIterator<Item = Seg>) -> Path {
        let mut p = self.clone();
        p.0.extend(other);
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?
                }
                Seg::Key(k) => write!(f, "[{}]", serde_json::Value::String(k.clone()))?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A line and column in a document's text, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// Positions of a document's nodes, by path.
#[derive(Debug, Clone, Default)]
pub struct Locations(pub(crate) HashMap<Path, Position>);

impl Locations {
    /// The position of the node at `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &Path) -> Option<Position> {
        let mut p = path.0.as_slice();
        loop {
            if let Some(pos) = self.0.get(&Path(p.to_vec())) {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = &p[..p.len() - 1];
        }
    }
}

/// One problem in a definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Where, as a path from the document's root (`flows[0].steps[1].transform`).
    pub path: String,
    /// Line of the node, when the document came from text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column of the node, when the document came from text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}: {}: {}", l, c, self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Collects the problems of one document.
#[derive(Debug, Default)]
pub struct Diags {
    locations: Locations,
    items: Vec<Diagnostic>,
    /// Step ids seen so far in the flow being decoded, with where: `$steps` is flat, so ids
    /// are unique across a flow's nested steps too.
    pub(crate) step_ids: std::collections::HashMap<String, String>,
}

impl Diags {
    /// A collector that locates problems with `locations`.
    pub fn new(locations: Locations) -> Diags {
        Diags { locations, items: Vec::new(), step_ids: Default::default() }
    }

    /// Records a problem at `path`.
    pub fn error(&mut self, path: &Path, message: impl Into<String>) {
        let pos = self.locations.find(path);
        self.items.push(Diagnostic {
            path: path.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message: message.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems recorded so far, in document order where known.
    pub fn into_vec(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(0)));
        self.items
    }
}
