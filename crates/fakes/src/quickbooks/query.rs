//! The QuickBooks fake's query language: parsing `SELECT … FROM … WHERE … ORDERBY …
//! STARTPOSITION … MAXRESULTS …` and matching stored entities against it.
//!
//! Supported: `*`, `COUNT(*)` or a column list; conditions joined by `AND` (QuickBooks has no
//! `OR`) with `= < > <= >= IN LIKE`; `'text'` (`\'` escapes a quote) or bare numbers and
//! booleans; dotted paths (`MetaData.LastUpdatedTime`); a reference column (`CustomerRef`)
//! compares its `value`. Text compares case-insensitively, numbers numerically.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// The default `MAXRESULTS`.
pub const DEFAULT_MAX_RESULTS: usize = 100;
/// The largest `MAXRESULTS` QuickBooks accepts.
pub const MAX_MAX_RESULTS: usize = 1000;

/// A parsed query.
#[derive(Debug, PartialEq)]
pub(super) struct Query {
    pub(super) selection: Selection,
    pub(super) entity: String,
    pub(super) conditions: Vec<Condition>,
    pub(super) order: Vec<(String, bool)>,
    /// 1-based.
    pub(super) start_position: usize,
    pub(super) max_results: usize,
}

#[derive(Debug, PartialEq)]
pub(super) enum Selection {
    All,
    Count,
    Columns(Vec<String>),
}

#[derive(Debug, PartialEq)]
pub(super) struct Condition {
    field: String,
    op: Op,
    /// One value, or several for `IN`.
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Like,
}

/// Why a query was refused: QuickBooks tells a parse error (4000) from an invalid value (4001).
#[derive(Debug, PartialEq)]
pub(super) enum QueryError {
    Parse(String),
    Validation(String),
}

impl Condition {
    pub(super) fn matches(&self, record: &Map<String, Value>) -> bool {
        let Some(actual) = field_text(record, &self.field) else { return false };
        let first = &self.values[0];
        match self.op {
            Op::Eq => compare_text(&actual, first) == Ordering::Equal,
            Op::Lt => compare_text(&actual, first) == Ordering::Less,
            Op::Gt => compare_text(&actual, first) == Ordering::Greater,
            Op::Le => compare_text(&actual, first) != Ordering::Greater,
            Op::Ge => compare_text(&actual, first) != Ordering::Less,
            Op::In => self.values.iter().any(|v| compare_text(&actual, v) == Ordering::Equal),
            Op::Like => like(&actual.to_lowercase(), &first.to_lowercase()),
        }
    }
}

/// The text of a (dotted) field; a reference object (`{"value": "1", "name": …}`) gives its value.
pub(super) fn field_text(record: &Map<String, Value>, path: &str) -> Option<String> {
    let mut parts = path.split('.');
    let mut value = record.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    if let Some(inner) = value.get("value") {
        value = inner;
    }
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Numbers numerically, anything else as case-insensitive text.
pub(super) fn compare_text(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(a), Ok(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

/// SQL `LIKE` with `%` wildcards only.
fn like(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return text == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        None => return Err(QueryError::Parse("unterminated string literal".into())),
                        Some('\\') => literal.extend(chars.next()),
                        Some('\'') => break,
                        Some(c) => literal.push(c),
                    }
                }
                tokens.push(Token::Text(literal));
            }
            '<' | '>' | '!' => {
                chars.next();
                let with_equals = chars.peek() == Some(&'=');
                if with_equals {
                    chars.next();
                }
                tokens.push(Token::Symbol(match (c, with_equals) {
                    ('<', false) => "<",
                    ('<', true) => "<=",
                    ('>', false) => ">",
                    ('>', true) => ">=",
                    _ => return Err(QueryError::Parse("operator != is not supported".into())),
                }));
            }
            '=' | ',' | '(' | ')' | '*' => {
                chars.next();
                tokens.push(Token::Symbol(match c {
                    '=' => "=",
                    ',' => ",",
                    '(' => "(",
                    ')' => ")",
                    _ => "*",
                }));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '+')) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                if word.is_empty() {
                    return Err(QueryError::Parse(format!("unexpected character `{c}`")));
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn peek_symbol(&self, symbol: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Symbol(s)) if *s == symbol)
    }

    fn next(&mut self) -> Result<Token, QueryError> {
        let token =
            self.tokens.get(self.at).cloned().ok_or_else(|| QueryError::Parse("the query ends too early".into()))?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), QueryError> {
        if self.peek_keyword(keyword) {
            self.at += 1;
            Ok(())
        } else {
            Err(QueryError::Parse(format!("expected {keyword}, found {:?}", self.tokens.get(self.at))))
        }
    }

    fn symbol(&mut self, symbol: &str) -> Result<(), QueryError> {
        if self.peek_symbol(symbol) {
            self.at += 1;
            Ok(())
        } else {
            Err(QueryError::Parse(format!("expected `{symbol}`, found {:?}", self.tokens.get(self.at))))
        }
    }

    fn word(&mut self, what: &str) -> Result<String, QueryError> {
        match self.next()? {
            Token::Word(word) => Ok(word),
            other => Err(QueryError::Parse(format!("expected {what}, found {other:?}"))),
        }
    }

    fn value(&mut self) -> Result<String, QueryError> {
        match self.next()? {
            Token::Text(text) | Token::Word(text) => Ok(text),
            other => Err(QueryError::Parse(format!("expected a value, found {other:?}"))),
        }
    }

    fn number(&mut self, clause: &str) -> Result<usize, QueryError> {
        let word = self.word(&format!("a number after {clause}"))?;
        word.parse().map_err(|_| QueryError::Validation(format!("{clause} needs a positive number, not `{word}`")))
    }

    fn condition(&mut self) -> Result<Condition, QueryError> {
        let field = self.word("a field name")?;
        let (op, values) = if self.peek_keyword("in") {
            self.at += 1;
            self.symbol("(")?;
            let mut values = vec![self.value()?];
            while self.peek_symbol(",") {
                self.at += 1;
                values.push(self.value()?);
            }
            self.symbol(")")?;
            (Op::In, values)
        } else if self.peek_keyword("like") {
            self.at += 1;
            (Op::Like, vec![self.value()?])
        } else {
            let op = match self.next()? {
                Token::Symbol("=") => Op::Eq,
                Token::Symbol("<") => Op::Lt,
                Token::Symbol(">") => Op::Gt,
                Token::Symbol("<=") => Op::Le,
                Token::Symbol(">=") => Op::Ge,
                other => return Err(QueryError::Parse(format!("expected an operator after {field}, found {other:?}"))),
            };
            (op, vec![self.value()?])
        };
        Ok(Condition { field, op, values })
    }
}

/// Parses a query.
pub(super) fn parse(text: &str) -> Result<Query, QueryError> {
    let mut parser = Parser { tokens: tokenize(text)?, at: 0 };
    parser.keyword("select")?;
    let selection = if parser.peek_symbol("*") {
        parser.at += 1;
        Selection::All
    } else if parser.peek_keyword("count") {
        parser.at += 1;
        parser.symbol("(")?;
        parser.symbol("*")?;
        parser.symbol(")")?;
        Selection::Count
    } else {
        let mut columns = vec![parser.word("a column")?];
        while parser.peek_symbol(",") {
            parser.at += 1;
            columns.push(parser.word("a column")?);
        }
        Selection::Columns(columns)
    };
    parser.keyword("from")?;
    let entity = parser.word("an entity name")?;

    let mut conditions = Vec::new();
    if parser.peek_keyword("where") {
        parser.at += 1;
        conditions.push(parser.condition()?);
        while parser.peek_keyword("and") {
            parser.at += 1;
            conditions.push(parser.condition()?);
        }
        if parser.peek_keyword("or") {
            return Err(QueryError::Parse("OR is not supported".into()));
        }
    }

    let mut order = Vec::new();
    let order_by = parser.peek_keyword("orderby")
        || (parser.peek_keyword("order")
            && matches!(parser.tokens.get(parser.at + 1), Some(Token::Word(w)) if w.eq_ignore_ascii_case("by")));
    if order_by {
        parser.at += if parser.peek_keyword("orderby") { 1 } else { 2 };
        loop {
            let field = parser.word("a field to order by")?;
            let descending = if parser.peek_keyword("desc") {
                parser.at += 1;
                true
            } else {
                if parser.peek_keyword("asc") {
                    parser.at += 1;
                }
                false
            };
            order.push((field, descending));
            if !parser.peek_symbol(",") {
                break;
            }
            parser.at += 1;
        }
    }

    let (mut start_position, mut max_results) = (1, DEFAULT_MAX_RESULTS);
    while parser.at < parser.tokens.len() {
        if parser.peek_keyword("startposition") {
            parser.at += 1;
            start_position = parser.number("STARTPOSITION")?;
            if start_position == 0 {
                return Err(QueryError::Validation("STARTPOSITION starts at 1".into()));
            }
        } else if parser.peek_keyword("maxresults") {
            parser.at += 1;
            max_results = parser.number("MAXRESULTS")?;
            if max_results > MAX_MAX_RESULTS {
                return Err(QueryError::Validation(format!(
                    "value {max_results} is too large. Max allowed value is: {MAX_MAX_RESULTS}"
                )));
            }
        } else {
            return Err(QueryError::Parse(format!("unexpected {:?}", parser.tokens[parser.at])));
        }
    }
    Ok(Query { selection, entity, conditions, order, start_position, max_results })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_a_full_query() {
        let query = parse(
            "select * from Customer where DisplayName = 'O\\'Brien' AND Balance >= 10 and Id IN ('1', '2') \
             orderby DisplayName desc, Id STARTPOSITION 11 MAXRESULTS 10",
        )
        .unwrap();
        assert_eq!(query.selection, Selection::All);
        assert_eq!(query.entity, "Customer");
        assert_eq!(query.conditions.len(), 3);
        assert_eq!(query.conditions[0].values, ["O'Brien"]);
        assert_eq!(query.conditions[2].op, Op::In);
        assert_eq!(query.order, [("DisplayName".to_owned(), true), ("Id".to_owned(), false)]);
        assert_eq!((query.start_position, query.max_results), (11, 10));

        let count = parse("SELECT COUNT(*) FROM Invoice").unwrap();
        assert_eq!((count.selection, count.max_results), (Selection::Count, DEFAULT_MAX_RESULTS));
        let columns = parse("SELECT Id, DisplayName FROM Customer ORDER BY Id").unwrap();
        assert_eq!(columns.selection, Selection::Columns(vec!["Id".into(), "DisplayName".into()]));
    }

    #[test]
    fn refuses_malformed_and_out_of_range_queries() {
        for text in [
            "",
            "SELECT * Customer",
            "SELECT * FROM Customer WHERE",
            "SELECT * FROM Customer WHERE a = 'x' OR b = 'y'",
            "SELECT * FROM Customer WHERE a != 'x'",
            "SELECT * FROM Customer LIMIT 5",
        ] {
            assert!(matches!(parse(text), Err(QueryError::Parse(_))), "{text}");
        }
        assert!(matches!(parse("SELECT * FROM Customer MAXRESULTS 1001"), Err(QueryError::Validation(_))));
        assert!(matches!(parse("SELECT * FROM Customer STARTPOSITION 0"), Err(QueryError::Validation(_))));
    }

    #[test]
    fn conditions_match_records() {
        let record = json!({
            "DisplayName": "Amy's Bird Sanctuary", "Balance": 239.0, "Active": true,
            "CustomerRef": {"value": "7", "name": "x"}, "MetaData": {"LastUpdatedTime": "2024-03-01T10:00:00-08:00"}
        });
        let record = record.as_object().unwrap();
        let check = |clause: &str| {
            let query = parse(&format!("SELECT * FROM X WHERE {clause}")).unwrap();
            query.conditions.iter().all(|c| c.matches(record))
        };
        assert!(check("DisplayName = 'amy\\'s bird sanctuary'"));
        assert!(check("Balance > '100' AND Balance <= 239 AND Balance < 1000"));
        assert!(!check("Balance >= '240'"));
        assert!(check("Active = true"));
        assert!(check("CustomerRef = '7'") && check("CustomerRef IN ('3', '7')"));
        assert!(check("MetaData.LastUpdatedTime > '2024-01-01'"));
        assert!(
            check("DisplayName LIKE 'Amy%'")
                && check("DisplayName LIKE '%bird%'")
                && check("DisplayName LIKE '%tuary'")
        );
        assert!(!check("DisplayName LIKE 'Bird%'"));
        assert!(!check("Missing = 'x'"));
    }
}
