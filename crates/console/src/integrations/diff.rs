//! A side-by-side line diff of two version sources, computed with `similar` (as the API's
//! `GET …/versions/{a}/diff/{b}` computes its unified diff) and laid out as rows: equal lines
//! beside each other, a removed line on the left only, an added one on the right only, and
//! a changed block paired line by line.

use similar::{DiffTag, TextDiff};

/// How long a diff may search for the smallest edit: two large sources that differ
/// everywhere would otherwise keep a worker busy for minutes. Past it the diff is still
/// right, only less tidy (bigger changed blocks).
pub(crate) const TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);

/// What a row shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The same on both sides.
    Equal,
    /// Only on the left (removed).
    Removed,
    /// Only on the right (added).
    Added,
    /// A line removed on the left and one added on the right, paired.
    Changed,
}

/// One row: the left line (number, text) and the right one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) kind: Kind,
    pub(crate) left: Option<(usize, String)>,
    pub(crate) right: Option<(usize, String)>,
}

/// The side-by-side rows of `old` → `new`, with the counts of added and removed lines (as
/// the API counts them).
pub(crate) fn side_by_side(old: &str, new: &str) -> (Vec<Row>, usize, usize) {
    let diff = TextDiff::configure().timeout(TIMEOUT).diff_lines(old, new);
    let a: Vec<&str> = diff.old_slices().to_vec();
    let b: Vec<&str> = diff.new_slices().to_vec();
    let line = |s: &str| s.trim_end_matches(['\n', '\r']).to_owned();
    let mut rows = Vec::new();
    let (mut added, mut removed) = (0, 0);
    for op in diff.ops() {
        let (tag, l, r) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => {
                for (i, j) in l.zip(r) {
                    rows.push(Row {
                        kind: Kind::Equal,
                        left: Some((i + 1, line(a[i]))),
                        right: Some((j + 1, line(b[j]))),
                    });
                }
            }
            DiffTag::Delete => {
                removed += l.len();
                for i in l {
                    rows.push(Row { kind: Kind::Removed, left: Some((i + 1, line(a[i]))), right: None });
                }
            }
            DiffTag::Insert => {
                added += r.len();
                for j in r {
                    rows.push(Row { kind: Kind::Added, left: None, right: Some((j + 1, line(b[j]))) });
                }
            }
            DiffTag::Replace => {
                removed += l.len();
                added += r.len();
                let (l, r): (Vec<usize>, Vec<usize>) = (l.collect(), r.collect());
                for k in 0..l.len().max(r.len()) {
                    let left = l.get(k).map(|&i| (i + 1, line(a[i])));
                    let right = r.get(k).map(|&j| (j + 1, line(b[j])));
                    let kind = match (&left, &right) {
                        (Some(_), Some(_)) => Kind::Changed,
                        (Some(_), None) => Kind::Removed,
                        _ => Kind::Added,
                    };
                    rows.push(Row { kind, left, right });
                }
            }
        }
    }
    (rows, added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pair_equal_lines_and_mark_changes() {
        let (rows, added, removed) = side_by_side("a\nb\nc\nd\n", "a\nB\nc\nd\ne\n");
        assert_eq!((added, removed), (2, 1));
        let kinds: Vec<Kind> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, vec![Kind::Equal, Kind::Changed, Kind::Equal, Kind::Equal, Kind::Added]);
        assert_eq!(rows[1].left, Some((2, "b".to_owned())));
        assert_eq!(rows[1].right, Some((2, "B".to_owned())));
        assert_eq!(rows[4].right, Some((5, "e".to_owned())));
        assert_eq!(rows[4].left, None);
    }

    #[test]
    fn removed_lines_are_on_the_left_only() {
        let (rows, added, removed) = side_by_side("x\ny\nz", "x\nz");
        assert_eq!((added, removed), (0, 1));
        assert_eq!(rows[1], Row { kind: Kind::Removed, left: Some((2, "y".to_owned())), right: None });
        assert_eq!(rows[2].left, Some((3, "z".to_owned())));
        assert_eq!(rows[2].right, Some((2, "z".to_owned())));
    }

    #[test]
    fn identical_sources_have_no_changes() {
        let (rows, added, removed) = side_by_side("same\n", "same\n");
        assert_eq!((added, removed, rows.len()), (0, 0, 1));
    }
}
