//! Durations as users write them: `100ms`, `5s`, `5m` or `5min`, `1h` or `1hr`, `1d`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Longest duration accepted anywhere (ten years): every duration is added to times in
/// milliseconds and multiplied by retry factors, which must not overflow (issue 12).
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// A duration written as text (`250ms`, `10s`, `5min`, `1h`, `1d`) or as milliseconds, at
/// most [`MAX_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// `n` milliseconds.
    pub const fn millis(n: u64) -> Dur {
        Dur(Duration::from_millis(n))
    }

    /// `n` seconds.
    pub const fn secs(n: u64) -> Dur {
        Dur(Duration::from_secs(n))
    }

    /// Parses `100ms`, `5s`, `5m`, `5min`, `1h`, `1hr`, `1d` (and sums like `1m30s`).
    ///
    /// # Errors
    /// A message saying what was expected.
    pub fn parse(text: &str) -> Result<Dur, String> {
        let t = text.trim();
        let bad =
            || format!("invalid duration `{text}`: expected a number with a unit, like 100ms, 5s, 5min, 1h or 1d");
        if t.is_empty() {
            return Err(bad());
        }
        let too_long = || format!("invalid duration `{text}`: the longest accepted is {}", Dur(MAX_DURATION));
        let mut total_ms = 0f64;
        let mut rest = t;
        while !rest.is_empty() {
            let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
            rest = &rest[num_end..];
            let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = rest[..unit_end].trim();
            rest = &rest[unit_end..];
            let ms = match unit {
                "ms" => 1.0,
                "s" | "sec" | "secs" => 1e3,
                "m" | "min" | "mins" => 60e3,
                "h" | "hr" | "hrs" => 3_600e3,
                "d" | "day" | "days" => 86_400e3,
                _ => return Err(bad()),
            };
            total_ms += n * ms;
            if !total_ms.is_finite() || total_ms > MAX_DURATION.as_millis() as f64 {
                return Err(too_long());
            }
        }
        Ok(Dur(Duration::from_secs_f64(total_ms / 1e3)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
        for (size, unit) in units {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration like 100ms, 5s, 5min, 1h or 1d"))?
        {
            Raw::Millis(ms) if u128::from(ms) <= MAX_DURATION.as_millis() => Ok(Dur::millis(ms)),
            Raw::Millis(_) => Err(serde::de::Error::custom(format!(
                "a duration may be at most {} ({} ms)",
                Dur(MAX_DURATION),
                MAX_DURATION.as_millis()
            ))),
            Raw::Text(t) => Dur::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number with a unit (ms, s, m/min, h/hr, d), e.g. `250ms`, `5s`, `5min`, `1h`; or a number of milliseconds.",
            "oneOf": [
                { "type": "string", "pattern": "^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|secs?|m|mins?|h|hrs?|d|days?))+\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}
