//! JSON text measured without parsing it: how deep it nests and how much memory its tree
//! would take (one pass, no tree), for checks before a body or `fromjson` is parsed.

/// The deepest bracket nesting of a JSON text, outside its strings (one pass, no tree).
pub fn json_nesting(text: &[u8]) -> usize {
    json_shape(text).0
}

/// Bytes a JSON text's tree takes in memory, estimated from its size and how many values it
/// holds: a `serde_json::Value` is 32 bytes, its conversion for jq 16 more, and vectors grow
/// by doubling. One pass over the text, no tree.
pub fn json_tree_bytes(text: &[u8]) -> usize {
    const PER_VALUE: usize = 64;
    text.len() + json_shape(text).1.saturating_mul(PER_VALUE)
}

/// (deepest nesting, number of values and keys) of a JSON text.
fn json_shape(text: &[u8]) -> (usize, usize) {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    let mut values = 1usize;
    for &b in text {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' | b':' => values += 1,
            _ => {}
        }
    }
    (max, values)
}
