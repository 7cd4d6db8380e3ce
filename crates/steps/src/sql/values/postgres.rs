//! PostgreSQL: rows read and parameters written in its binary format, by the type the server
//! gives (a column's type, a parameter's inferred type).

use super::*;

// ---------------------------------------------------------------------------------------
// PostgreSQL rows

/// A row as a JSON object.
pub(in crate::sql) fn pg_row(row: &PgRow) -> Result<Map<String, Value>, StepError> {
    let mut out = Map::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).map_err(|e| bad_value(column.name(), "?", e))?;
        let value = if raw.is_null() {
            Value::Null
        } else {
            let ty = raw.type_info().into_owned();
            match raw.format() {
                PgValueFormat::Binary => {
                    let bytes = raw.as_bytes().map_err(|e| bad_value(column.name(), ty.name(), e))?;
                    pg_value(bytes, &ty).map_err(|e| e.into_step_error(column.name(), ty.name()))?
                }
                // Only results of statements without parameters come as text; the step
                // always sends parameters (maybe none), so this is a fallback.
                PgValueFormat::Text => Value::String(raw.as_str().unwrap_or_default().to_owned()),
            }
        };
        out.insert(column.name().to_owned(), value);
    }
    Ok(out)
}

/// Why a PostgreSQL value could not be read.
pub(super) enum ReadError {
    Unsupported,
    Bad(String),
}

impl ReadError {
    fn into_step_error(self, column: &str, ty: &str) -> StepError {
        match self {
            ReadError::Unsupported => unsupported(column, ty),
            ReadError::Bad(why) => bad_value(column, ty, why),
        }
    }
}

impl From<&str> for ReadError {
    fn from(s: &str) -> Self {
        ReadError::Bad(s.to_owned())
    }
}

pub(super) fn be<const N: usize>(b: &[u8]) -> Result<[u8; N], ReadError> {
    b.get(..N).and_then(|s| s.try_into().ok()).ok_or(ReadError::Bad(format!("expected {N} bytes")))
}

/// One value in PostgreSQL's binary format, of type `ty`.
pub(super) fn pg_value(b: &[u8], ty: &PgTypeInfo) -> Result<Value, ReadError> {
    if ty.oid() == Some(Oid(oid::VOID)) {
        // What a function returning nothing gives (`select pg_sleep(1)`).
        return Ok(Value::Null);
    }
    match ty.kind() {
        PgTypeKind::Enum(_) => return Ok(Value::String(utf8(b)?)),
        PgTypeKind::Domain(base) => return pg_value(b, base),
        PgTypeKind::Array(elem) => return pg_array(b, elem),
        PgTypeKind::Composite(_) | PgTypeKind::Range(_) | PgTypeKind::Pseudo => return Err(ReadError::Unsupported),
        PgTypeKind::Simple => {}
    }
    let Some(Oid(oid)) = ty.oid() else { return Err(ReadError::Unsupported) };
    Ok(match oid {
        oid::BOOL => Value::Bool(be::<1>(b)?[0] != 0),
        oid::INT2 => Value::from(i16::from_be_bytes(be(b)?)),
        oid::INT4 => Value::from(i32::from_be_bytes(be(b)?)),
        oid::INT8 => Value::from(i64::from_be_bytes(be(b)?)),
        oid::OID => Value::from(u32::from_be_bytes(be(b)?)),
        oid::FLOAT4 => float4(f32::from_be_bytes(be(b)?)),
        oid::FLOAT8 => float(f64::from_be_bytes(be(b)?)),
        oid::NUMERIC => Value::String(numeric_text(b)?),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::CHAR | oid::UNKNOWN | oid::XML => {
            Value::String(utf8(b)?)
        }
        oid::BYTEA => base64(b),
        oid::JSON => json(b)?,
        oid::JSONB => match b.split_first() {
            Some((1, rest)) => json(rest)?,
            _ => return Err("unknown jsonb version".into()),
        },
        oid::UUID => Value::String(uuid_text(&be::<16>(b)?)),
        oid::DATE => Value::String(date_text(i32::from_be_bytes(be(b)?))?),
        oid::TIMESTAMP => Value::String(timestamp_text(i64::from_be_bytes(be(b)?), "")?),
        oid::TIMESTAMPTZ => Value::String(timestamp_text(i64::from_be_bytes(be(b)?), "Z")?),
        oid::TIME => Value::String(time_text(i64::from_be_bytes(be(b)?))),
        oid::TIMETZ => {
            let us = i64::from_be_bytes(be(b)?);
            // Seconds *west* of UTC, as PostgreSQL stores it.
            let west = i32::from_be_bytes(be(b.get(8..).ok_or("short timetz")?)?);
            Value::String(format!("{}{}", time_text(us), offset_text(-west)))
        }
        oid::INTERVAL => {
            let us = i64::from_be_bytes(be(b)?);
            let days = i32::from_be_bytes(be(b.get(8..).ok_or("short interval")?)?);
            let months = i32::from_be_bytes(be(b.get(12..).ok_or("short interval")?)?);
            Value::String(interval_text(months, days, us))
        }
        oid::INET | oid::CIDR => Value::String(inet_text(b, oid == oid::CIDR)?),
        // citext and other extension types have no fixed oid; their binary form is text.
        _ if ty.name().eq_ignore_ascii_case("citext") => Value::String(utf8(b)?),
        _ => return Err(ReadError::Unsupported),
    })
}

pub(super) fn utf8(b: &[u8]) -> Result<String, ReadError> {
    String::from_utf8(b.to_vec()).map_err(|_| "not UTF-8".into())
}

pub(super) fn json(b: &[u8]) -> Result<Value, ReadError> {
    serde_json::from_slice(b).map_err(|e| ReadError::Bad(format!("invalid JSON: {e}")))
}

/// An array (of any dimensions) as nested lists.
pub(super) fn pg_array(b: &[u8], elem: &PgTypeInfo) -> Result<Value, ReadError> {
    let ndim = i32::from_be_bytes(be(b)?);
    if ndim == 0 {
        return Ok(Value::Array(Vec::new()));
    }
    let ndim = usize::try_from(ndim).map_err(|_| "negative dimensions")?;
    if ndim > 6 {
        return Err("more than 6 dimensions".into());
    }
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let at = 12 + d * 8;
        let len = i32::from_be_bytes(be(b.get(at..).ok_or("short array")?)?);
        dims.push(usize::try_from(len).map_err(|_| "negative length")?);
    }
    let mut rest = b.get(12 + ndim * 8..).ok_or("short array")?;
    let mut items = Vec::new();
    let total: usize = dims.iter().product();
    for _ in 0..total {
        let len = i32::from_be_bytes(be(rest)?);
        rest = &rest[4..];
        if len < 0 {
            items.push(Value::Null);
            continue;
        }
        let len = len as usize;
        let bytes = rest.get(..len).ok_or("short array element")?;
        items.push(pg_value(bytes, elem)?);
        rest = &rest[len..];
    }
    // Fold the flat list into nested lists, innermost dimension first.
    for &d in dims.iter().skip(1).rev() {
        let chunks: Vec<Value> = items.chunks(d.max(1)).map(|c| Value::Array(c.to_vec())).collect();
        items = chunks;
    }
    Ok(Value::Array(items))
}

/// A `numeric` in its binary form (base-10000 digits) as its exact decimal text.
pub(super) fn numeric_text(b: &[u8]) -> Result<String, ReadError> {
    let ndigits = u16::from_be_bytes(be(b)?) as usize;
    let weight = i16::from_be_bytes(be(&b[2..])?) as i64;
    let sign = u16::from_be_bytes(be(&b[4..])?);
    let dscale = u16::from_be_bytes(be(&b[6..])?) as usize;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => {}
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        digits.push(i16::from_be_bytes(be(b.get(8 + i * 2..).ok_or("short numeric")?)?));
    }
    let digit = |i: i64| if i >= 0 && (i as usize) < digits.len() { digits[i as usize] } else { 0 };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

pub(super) fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub(super) fn date_of(days: i64) -> Result<time::Date, ReadError> {
    i32::try_from(days)
        .ok()
        .and_then(|d| d.checked_add(PG_EPOCH_JULIAN_DAY))
        .and_then(|j| time::Date::from_julian_day(j).ok())
        .ok_or_else(|| "a date beyond year 9999".into())
}

pub(super) fn date_string(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

pub(super) fn date_text(days: i32) -> Result<String, ReadError> {
    match days {
        i32::MAX => Ok("infinity".into()),
        i32::MIN => Ok("-infinity".into()),
        d => Ok(date_string(date_of(i64::from(d))?)),
    }
}

/// `HH:MM:SS` and a fraction without trailing zeros, from microseconds since midnight.
pub(super) fn time_text(us: i64) -> String {
    let (secs, frac) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000));
    let mut s = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let f = format!("{frac:06}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

pub(super) fn timestamp_text(us: i64, zone: &str) -> Result<String, ReadError> {
    match us {
        i64::MAX => return Ok("infinity".into()),
        i64::MIN => return Ok("-infinity".into()),
        _ => {}
    }
    let date = date_of(us.div_euclid(MICROS_PER_DAY))?;
    Ok(format!("{}T{}{zone}", date_string(date), time_text(us.rem_euclid(MICROS_PER_DAY))))
}

pub(super) fn offset_text(east: i32) -> String {
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60)
}

/// An interval as ISO 8601 (`P1Y2M3DT4H5M6.5S`; `PT0S` when empty).
pub(super) fn interval_text(months: i32, days: i32, us: i64) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    for (n, unit) in [(years, 'Y'), (months, 'M'), (days, 'D')] {
        if n != 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    if us != 0 {
        s.push('T');
        let (h, m) = (us / 3_600_000_000, us / 60_000_000 % 60);
        let sec_us = us % 60_000_000;
        if h != 0 {
            let _ = write!(s, "{h}H");
        }
        if m != 0 {
            let _ = write!(s, "{m}M");
        }
        if sec_us != 0 {
            let sign = if sec_us < 0 { "-" } else { "" };
            let a = sec_us.unsigned_abs();
            let (whole, frac) = (a / 1_000_000, a % 1_000_000);
            let _ = write!(s, "{sign}{whole}");
            if frac != 0 {
                let f = format!("{frac:06}");
                let _ = write!(s, ".{}", f.trim_end_matches('0'));
            }
            s.push('S');
        }
    }
    if s == "P" { "PT0S".into() } else { s }
}

pub(super) fn inet_text(b: &[u8], cidr: bool) -> Result<String, ReadError> {
    let [family, bits, _, len] = be::<4>(b)?;
    let addr = b.get(4..4 + len as usize).ok_or("short inet")?;
    let (ip, max): (std::net::IpAddr, u8) = match (family, addr.len()) {
        (2, 4) => (std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into(), 32),
        (3, 16) => (std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).map_err(|_| "bad inet")?).into(), 128),
        _ => return Err("unknown address family".into()),
    };
    Ok(if cidr || bits != max { format!("{ip}/{bits}") } else { ip.to_string() })
}

// ---------------------------------------------------------------------------------------
// PostgreSQL parameters

/// A parameter as PostgreSQL takes it: the bytes of its binary form for the type the server
/// inferred for its placeholder (None: NULL).
pub(in crate::sql) struct PgParam {
    ty: PgTypeInfo,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<Postgres> for PgParam {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(oid::UNKNOWN))
    }
}

impl sqlx::Encode<'_, Postgres> for PgParam {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match &self.bytes {
            None => Ok(IsNull::Yes),
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.ty.clone())
    }
}

impl PgParam {
    /// `v` for a placeholder of type `ty`.
    ///
    /// # Errors
    /// A value that does not fit the type, said plainly (the caller adds which parameter).
    pub(in crate::sql) fn new(v: &Value, ty: &PgTypeInfo) -> Result<PgParam, String> {
        let bytes = if v.is_null() { None } else { Some(pg_encode(v, ty)?) };
        Ok(PgParam { ty: ty.clone(), bytes })
    }
}

/// The text a scalar gives for a text column (a string as it is, anything else as JSON).
pub(super) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn pg_encode(v: &Value, ty: &PgTypeInfo) -> Result<Vec<u8>, String> {
    match ty.kind() {
        PgTypeKind::Enum(_) => return Ok(as_text(v).into_bytes()),
        PgTypeKind::Domain(base) => return pg_encode(v, base),
        PgTypeKind::Array(elem) => return pg_encode_array(v, elem),
        PgTypeKind::Simple => {}
        _ => return Err(cast_hint(ty)),
    }
    let Some(Oid(oid)) = ty.oid() else { return Err(cast_hint(ty)) };
    let wanted = |what: &str| format!("expected {what} for a {} placeholder, got {}", ty.name(), short(v));
    Ok(match oid {
        oid::BOOL => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(wanted("a boolean")),
            };
            vec![u8::from(b)]
        }
        oid::INT2 => i16::try_from(integer(v).ok_or_else(|| wanted("an integer"))?)
            .map_err(|_| wanted("a smallint"))?
            .to_be_bytes()
            .to_vec(),
        oid::INT4 => i32::try_from(integer(v).ok_or_else(|| wanted("an integer"))?)
            .map_err(|_| wanted("an integer"))?
            .to_be_bytes()
            .to_vec(),
        oid::INT8 => integer(v).ok_or_else(|| wanted("an integer"))?.to_be_bytes().to_vec(),
        oid::OID => u32::try_from(integer(v).ok_or_else(|| wanted("an oid"))?)
            .map_err(|_| wanted("an oid"))?
            .to_be_bytes()
            .to_vec(),
        oid::FLOAT4 => (real(v).ok_or_else(|| wanted("a number"))? as f32).to_be_bytes().to_vec(),
        oid::FLOAT8 => real(v).ok_or_else(|| wanted("a number"))?.to_be_bytes().to_vec(),
        oid::NUMERIC => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.trim().to_owned(),
                _ => return Err(wanted("a number")),
            };
            numeric_bytes(&text).ok_or_else(|| wanted("a decimal number"))?
        }
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::XML | oid::CHAR => {
            as_text(v).into_bytes()
        }
        oid::JSON => v.to_string().into_bytes(),
        oid::JSONB => {
            let mut b = vec![1];
            b.extend_from_slice(v.to_string().as_bytes());
            b
        }
        oid::BYTEA => {
            let Value::String(s) = v else { return Err(wanted("base64 text")) };
            base64::engine::general_purpose::STANDARD.decode(s.trim()).map_err(|_| wanted("base64 text"))?
        }
        oid::UUID => {
            let Value::String(s) = v else { return Err(wanted("a UUID")) };
            let h: String = s.trim().trim_matches(['{', '}']).chars().filter(|c| *c != '-').collect();
            hex::decode(&h).ok().filter(|b| b.len() == 16).ok_or_else(|| wanted("a UUID"))?
        }
        oid::DATE => {
            let (date, _, _) = datetime(v).ok_or_else(|| wanted("a date (2024-05-01)"))?;
            (date.to_julian_day() - PG_EPOCH_JULIAN_DAY).to_be_bytes().to_vec()
        }
        oid::TIMESTAMP | oid::TIMESTAMPTZ => {
            let (date, us, offset) = datetime(v).ok_or_else(|| wanted("a date-time (2024-05-01T10:00:00Z)"))?;
            let mut micros = i64::from(date.to_julian_day() - PG_EPOCH_JULIAN_DAY) * MICROS_PER_DAY + us;
            // A `timestamp` keeps the wall-clock time written (PostgreSQL ignores an offset
            // there too); a `timestamptz` is the instant (no offset: UTC).
            if oid == oid::TIMESTAMPTZ {
                micros -= i64::from(offset.unwrap_or(0)) * 1_000_000;
            }
            micros.to_be_bytes().to_vec()
        }
        oid::TIME => {
            let Value::String(s) = v else { return Err(wanted("a time (10:00:00)")) };
            time_of_day(s.trim()).ok_or_else(|| wanted("a time (10:00:00)"))?.to_be_bytes().to_vec()
        }
        _ if ty.name().eq_ignore_ascii_case("citext") => as_text(v).into_bytes(),
        _ => return Err(cast_hint(ty)),
    })
}

pub(super) fn cast_hint(ty: &PgTypeInfo) -> String {
    format!(
        "PostgreSQL wants a {} here, which params cannot give: pass text and cast it in the query (`CAST($n AS text)::{}`)",
        ty.name(),
        ty.name().to_ascii_lowercase()
    )
}

pub(super) fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 { format!("{}…", s.chars().take(40).collect::<String>()) } else { s }
}

pub(super) fn pg_encode_array(v: &Value, elem: &PgTypeInfo) -> Result<Vec<u8>, String> {
    let Value::Array(items) = v else { return Err(format!("expected a list for a {}[] placeholder", elem.name())) };
    let Some(Oid(elem_oid)) = elem.oid() else { return Err(cast_hint(elem)) };
    let mut b = Vec::new();
    if items.is_empty() {
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&elem_oid.to_be_bytes());
        return Ok(b);
    }
    let has_null = items.iter().any(Value::is_null);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&i32::from(has_null).to_be_bytes());
    b.extend_from_slice(&elem_oid.to_be_bytes());
    b.extend_from_slice(&i32::try_from(items.len()).map_err(|_| "too many items")?.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    for item in items {
        if item.is_null() {
            b.extend_from_slice(&(-1i32).to_be_bytes());
        } else if item.is_array() {
            return Err("only one-dimensional lists can be given for arrays".into());
        } else {
            let e = pg_encode(item, elem)?;
            b.extend_from_slice(&i32::try_from(e.len()).map_err(|_| "item too large")?.to_be_bytes());
            b.extend_from_slice(&e);
        }
    }
    Ok(b)
}

/// An integer from a number without fraction or a string of one.
pub(super) fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
        }
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

pub(super) fn real(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A decimal's text (`-12.50`, `1e3`, `NaN`) in `numeric`'s binary form.
pub(super) fn numeric_bytes(text: &str) -> Option<Vec<u8>> {
    let head = |sign: u16| [0u16.to_be_bytes(), 0i16.to_be_bytes(), sign.to_be_bytes(), 0u16.to_be_bytes()].concat();
    match text {
        "NaN" => return Some(head(0xC000)),
        "Infinity" | "+Infinity" => return Some(head(0xD000)),
        "-Infinity" => return Some(head(0xF000)),
        _ => {}
    }
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i32>().ok()?),
        None => (rest, 0),
    };
    if !(-1000..=1000).contains(&exp) {
        return None;
    }
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the decimal point falls among them.
    let digits: String = format!("{int}{frac}");
    let point = int.len() as i64 + i64::from(exp);
    let (int_part, frac_part) = if point <= 0 {
        (String::new(), format!("{}{digits}", "0".repeat((-point) as usize)))
    } else if point as usize >= digits.len() {
        (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
    } else {
        (digits[..point as usize].to_owned(), digits[point as usize..].to_owned())
    };
    let dscale = u16::try_from(frac_part.len()).ok()?;
    let int_part = int_part.trim_start_matches('0');
    let pad = (4 - int_part.len() % 4) % 4;
    let int_part = format!("{}{int_part}", "0".repeat(pad));
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let frac_part = format!("{frac_part}{}", "0".repeat(frac_pad));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap().parse().unwrap()).collect()
    };
    let mut groups = group(&int_part);
    let mut weight = groups.len() as i64 - 1;
    groups.extend(group(&frac_part));
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let mut b = Vec::with_capacity(8 + groups.len() * 2);
    b.extend_from_slice(&u16::try_from(groups.len()).ok()?.to_be_bytes());
    b.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    b.extend_from_slice(&(if negative && !groups.is_empty() { 0x4000u16 } else { 0 }).to_be_bytes());
    b.extend_from_slice(&dscale.to_be_bytes());
    for g in groups {
        b.extend_from_slice(&g.to_be_bytes());
    }
    Some(b)
}

/// A date, or a date-time (`T` or a space between; seconds and fraction optional) with an
/// optional offset (`Z`, `+02:00`): the date, the microseconds since midnight, and the
/// offset in seconds east of UTC when one was given.
pub(super) fn datetime(v: &Value) -> Option<(time::Date, i64, Option<i32>)> {
    let Value::String(s) = v else { return None };
    let s = s.trim();
    let date = s.get(..10)?;
    let (y, m, d) = (
        date.get(..4)?.parse::<i32>().ok()?,
        date.get(5..7)?.parse::<u8>().ok()?,
        date.get(8..10)?.parse::<u8>().ok()?,
    );
    if date.as_bytes()[4] != b'-' || date.as_bytes()[7] != b'-' {
        return None;
    }
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()?;
    let rest = &s[10..];
    if rest.is_empty() {
        return Some((date, 0, None));
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let zone_at = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let us = time_of_day(&rest[..zone_at])?;
    let zone = &rest[zone_at..];
    let offset = match zone {
        "" => None,
        "Z" | "z" => Some(0),
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            let (h, m) = match digits.len() {
                2 => (digits.parse::<i32>().ok()?, 0),
                4 => (digits[..2].parse::<i32>().ok()?, digits[2..].parse::<i32>().ok()?),
                _ => return None,
            };
            Some(sign * (h * 3600 + m * 60))
        }
    };
    Some((date, us, offset))
}

/// `HH:MM[:SS[.ffffff]]` as microseconds since midnight.
pub(super) fn time_of_day(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let (sec, frac) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let frac_us = format!("{:0<6}", frac.get(..frac.len().min(6))?).parse::<i64>().ok()?;
            (whole.parse::<i64>().ok()?, frac_us)
        }
    };
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || !(0..=60).contains(&sec) {
        return None;
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + frac)
}
