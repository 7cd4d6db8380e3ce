//! The Dataverse fake's `$filter` and `$orderby`: parsing the OData expressions and evaluating
//! them against stored records.
//!
//! Supported: `eq ne gt ge lt le`, `and or not`, parentheses, `contains`/`startswith`/
//! `endswith`, and literals: `'text'` (`''` escapes a quote), numbers, `true`/`false`, `null`,
//! bare GUIDs and bare dates (`2024-01-31T00:00:00Z`). Text compares case-insensitively, as
//! Dataverse's default collation does.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A parsed `$filter`.
#[derive(Debug, PartialEq)]
pub(super) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare { field: String, op: CompareOp, value: Value },
    Text { function: TextFunction, field: String, value: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TextFunction {
    Contains,
    StartsWith,
    EndsWith,
}

/// One `$orderby` item.
#[derive(Debug, PartialEq)]
pub(super) struct SortKey {
    pub(super) field: String,
    pub(super) descending: bool,
}

impl Filter {
    /// Whether `record` satisfies the filter; an absent field is `null`.
    pub(super) fn matches(&self, record: &Map<String, Value>) -> bool {
        match self {
            Filter::And(left, right) => left.matches(record) && right.matches(record),
            Filter::Or(left, right) => left.matches(record) || right.matches(record),
            Filter::Not(inner) => !inner.matches(record),
            Filter::Compare { field, op, value } => compare_op(record.get(field).unwrap_or(&Value::Null), *op, value),
            Filter::Text { function, field, value } => {
                let Some(Value::String(text)) = record.get(field) else { return false };
                let (text, value) = (text.to_lowercase(), value.to_lowercase());
                match function {
                    TextFunction::Contains => text.contains(&value),
                    TextFunction::StartsWith => text.starts_with(&value),
                    TextFunction::EndsWith => text.ends_with(&value),
                }
            }
        }
    }
}

fn compare_op(actual: &Value, op: CompareOp, expected: &Value) -> bool {
    if actual.is_null() || expected.is_null() {
        let both = actual.is_null() && expected.is_null();
        return match op {
            CompareOp::Eq => both,
            CompareOp::Ne => !both,
            _ => false,
        };
    }
    match compare_values(actual, expected) {
        Some(ordering) => match op {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
        },
        // Values of different types are never equal.
        None => op == CompareOp::Ne,
    }
}

/// Orders two values of the same type (text case-insensitively); `None` for other pairs.
pub(super) fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// The order of two records' values for `$orderby`: nulls first, as SQL Server sorts them.
pub(super) fn sort_order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let a = a.filter(|v| !v.is_null());
    let b = b.filter(|v| !v.is_null());
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => compare_values(a, b).unwrap_or(Ordering::Equal),
    }
}

/// Parses `$orderby`: `field [asc|desc]`, comma-separated.
pub(super) fn parse_orderby(text: &str) -> Result<Vec<SortKey>, String> {
    text.split(',')
        .map(|item| {
            let mut words = item.split_whitespace();
            let field = words.next().ok_or("an empty $orderby item")?;
            check_field(field)?;
            let descending = match words.next().map(str::to_ascii_lowercase).as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => return Err(format!("expected asc or desc after `{field}`, found `{other}`")),
            };
            if let Some(extra) = words.next() {
                return Err(format!("unexpected `{extra}` in $orderby"));
            }
            Ok(SortKey { field: field.to_owned(), descending })
        })
        .collect()
}

/// Parses `$filter`.
pub(super) fn parse_filter(text: &str) -> Result<Filter, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, at: 0 };
    let filter = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(filter),
        Some(token) => Err(format!("unexpected {token:?} in $filter")),
    }
}

/// Whether `name` can be a column name (no navigation paths or lambdas in this fake).
pub(super) fn check_field(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if well_formed { Ok(()) } else { Err(format!("`{name}` is not a property name this fake supports")) }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Comma,
    Text(String),
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string literal in $filter".into()),
                        // OData escapes a quote by doubling it.
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => literal.push(c),
                    }
                }
                tokens.push(Token::Text(literal));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '\'') {
                        break;
                    }
                    word.push(c);
                    chars.next();
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

    fn next(&mut self) -> Result<Token, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("$filter ends too early")?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, expected: Token) -> Result<(), String> {
        let token = self.next()?;
        if token == expected { Ok(()) } else { Err(format!("expected {expected:?}, found {token:?} in $filter")) }
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.at += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, String> {
        match self.next()? {
            Token::Open => {
                let inner = self.or()?;
                self.expect(Token::Close)?;
                Ok(inner)
            }
            Token::Word(word) if self.tokens.get(self.at) == Some(&Token::Open) => {
                let function = match word.to_ascii_lowercase().as_str() {
                    "contains" => TextFunction::Contains,
                    "startswith" => TextFunction::StartsWith,
                    "endswith" => TextFunction::EndsWith,
                    _ => return Err(format!("function `{word}` is not supported by this fake")),
                };
                self.expect(Token::Open)?;
                let Token::Word(field) = self.next()? else { return Err(format!("{word}() needs a property first")) };
                check_field(&field)?;
                self.expect(Token::Comma)?;
                let Token::Text(value) = self.next()? else { return Err(format!("{word}() needs a string literal")) };
                self.expect(Token::Close)?;
                Ok(Filter::Text { function, field, value })
            }
            Token::Word(field) => {
                check_field(&field)?;
                let Token::Word(op) = self.next()? else { return Err(format!("expected an operator after `{field}`")) };
                let op = match op.to_ascii_lowercase().as_str() {
                    "eq" => CompareOp::Eq,
                    "ne" => CompareOp::Ne,
                    "gt" => CompareOp::Gt,
                    "ge" => CompareOp::Ge,
                    "lt" => CompareOp::Lt,
                    "le" => CompareOp::Le,
                    _ => return Err(format!("operator `{op}` is not supported by this fake")),
                };
                let value = literal(self.next()?)?;
                Ok(Filter::Compare { field, op, value })
            }
            token => Err(format!("unexpected {token:?} in $filter")),
        }
    }
}

fn literal(token: Token) -> Result<Value, String> {
    let word = match token {
        Token::Text(text) => return Ok(Value::String(text)),
        Token::Word(word) => word,
        other => return Err(format!("expected a literal, found {other:?}")),
    };
    match word.as_str() {
        "null" => return Ok(Value::Null),
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Ok(integer) = word.parse::<i64>() {
        return Ok(Value::from(integer));
    }
    if let Some(number) = word.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        return Ok(Value::Number(number));
    }
    if word.len() == 36 && uuid::Uuid::try_parse(&word).is_ok() {
        return Ok(Value::String(word.to_ascii_lowercase()));
    }
    // Dates and date-times are bare in OData; stored ones are ISO 8601 text, so compare as text.
    if word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('-') {
        return Ok(Value::String(word));
    }
    Err(format!("`{word}` is not a literal this fake understands"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn parses_precedence_and_literals() {
        let filter = parse_filter("name eq 'O''Brien' or not (revenue gt 10.5 and x eq null)").unwrap();
        let expected = Filter::Or(
            Box::new(Filter::Compare { field: "name".into(), op: CompareOp::Eq, value: json!("O'Brien") }),
            Box::new(Filter::Not(Box::new(Filter::And(
                Box::new(Filter::Compare { field: "revenue".into(), op: CompareOp::Gt, value: json!(10.5) }),
                Box::new(Filter::Compare { field: "x".into(), op: CompareOp::Eq, value: Value::Null }),
            )))),
        );
        assert_eq!(filter, expected);
    }

    #[test]
    fn evaluates_comparisons() {
        let row = record(json!({"name": "Contoso", "revenue": 100, "active": true, "owner": null}));
        let check = |text: &str| parse_filter(text).unwrap().matches(&row);
        assert!(check("name eq 'contoso'"), "text compares case-insensitively");
        assert!(check("revenue gt 99 and revenue lt 101 and revenue ge 100 and revenue le 100"));
        assert!(!check("revenue ne 100"));
        assert!(check("active eq true"));
        assert!(check("owner eq null") && check("missing eq null") && check("name ne null"));
        assert!(!check("owner gt 1"));
        assert!(check("name ne 5"), "different types are not equal");
        assert!(check("contains(name,'NTOS') and startswith(name,'con') and endswith(name,'SO')"));
        assert!(check("createdon eq null or createdon gt 2024-01-01T00:00:00Z"));
    }

    #[test]
    fn rejects_malformed_filters() {
        for text in ["name eq", "name like 'x'", "name eq 'open", "(name eq 'a'", "a/b eq 1", "name eq bogus"] {
            assert!(parse_filter(text).is_err(), "{text}");
        }
    }

    #[test]
    fn orderby_and_sort_order() {
        let keys = parse_orderby("name desc, revenue").unwrap();
        assert_eq!(
            keys,
            vec![
                SortKey { field: "name".into(), descending: true },
                SortKey { field: "revenue".into(), descending: false }
            ]
        );
        assert!(parse_orderby("name sideways").is_err());
        assert_eq!(sort_order(None, Some(&json!(1))), Ordering::Less);
        assert_eq!(sort_order(Some(&json!("b")), Some(&json!("A"))), Ordering::Greater);
    }
}
