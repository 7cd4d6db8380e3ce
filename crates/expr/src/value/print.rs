//! Printing: values as JSON text, ticking per node, with a size cap; the `Display` that
//! jaq's error messages use shows at most [`DISPLAY_LIMIT`] bytes.

use super::{DISPLAY_LIMIT, Val};
use crate::meter::Exhausted;
use jaq_json::Val as Raw;
use std::fmt;

/// Writes `raw` as compact JSON (jq's `tojson`), failing once the memory budget would be
/// exceeded or the time budget is spent.
pub(super) fn to_json(raw: &Raw) -> Result<Vec<u8>, Exhausted> {
    let mut out = Vec::new();
    write_json(raw, &mut out, usize::MAX)?;
    Ok(out)
}

/// Writes `raw` into `out` until `out` holds `limit` bytes.
fn write_json(raw: &Raw, out: &mut Vec<u8>, limit: usize) -> Result<(), Exhausted> {
    crate::meter::tick_op()?;
    if out.len() >= limit {
        return Ok(());
    }
    if out.len() % 4096 < 64 {
        crate::meter::reserve(4096)?;
    }
    match raw {
        Raw::Arr(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(x, out, limit)?;
                if out.len() >= limit {
                    return Ok(());
                }
            }
            out.push(b']');
        }
        Raw::Obj(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(k, out, limit)?;
                out.push(b':');
                write_json(x, out, limit)?;
                if out.len() >= limit {
                    return Ok(());
                }
            }
            out.push(b'}');
        }
        scalar => {
            let _ = jaq_json::write::write(out, &jaq_json::write::Pp::default(), 0, scalar);
        }
    }
    Ok(())
}

/// A value in an error message: its first [`DISPLAY_LIMIT`] bytes of JSON.
pub(super) struct Shown<'a>(pub(super) &'a Raw);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        // An exhausted budget only shortens the text: the evaluation fails anyway.
        let _ = write_json(self.0, &mut out, DISPLAY_LIMIT + 1);
        if out.len() > DISPLAY_LIMIT {
            out.truncate(DISPLAY_LIMIT);
            f.write_str(&String::from_utf8_lossy(&out))?;
            f.write_str("…")
        } else {
            f.write_str(&String::from_utf8_lossy(&out))
        }
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Shown(&self.raw).fmt(f)
    }
}
