//! Byte spans in a JSON text that already passed the strict parser (`crate::json`), so a
//! request can lose some tools while every other byte goes upstream as the client sent it
//! (providers' prompt caches key on the exact tool definitions and their key order), and
//! an answer can lose what the caller may not see while the rest reaches the client as
//! the server wrote it (its key order, its numbers: `12345678901234567890` is not a
//! double to the client).
//!
//! Only validated text comes here, but nothing is assumed: any surprise is `None`.

use std::borrow::Cow;
use std::collections::HashMap;

/// One member of an object: its key (unescaped), where it starts (the key's quote) and
/// the byte range of its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub key: String,
    pub start: usize,
    pub value: (usize, usize),
}

/// A byte range `[start, end)`.
pub type Span = (usize, usize);

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// End of the string starting at the quote at `i`.
fn string_end(text: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match text.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// End of the value starting at `i` (no leading whitespace).
fn value_end(text: &[u8], i: usize) -> Option<usize> {
    match text.get(i)? {
        b'"' => string_end(text, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match text.get(j)? {
                    b'"' => {
                        j = string_end(text, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while text
                .get(j)
                .is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// A key's text, unescaped (`"t\u006fols"` is `tools`). Keys without escapes, nearly all
/// of them, need no parser (nor a copy).
fn unescape_key(quoted: &[u8]) -> Option<Cow<'_, str>> {
    let text = std::str::from_utf8(quoted).ok()?;
    if !text.contains('\\') {
        return text.get(1..text.len().checked_sub(1)?).map(Cow::Borrowed);
    }
    serde_json::from_str(text).ok().map(Cow::Owned)
}

/// The members of the top-level object of `text`.
pub fn members(text: &[u8]) -> Option<Vec<Member>> {
    members_at(text, skip_ws(text, 0))
}

/// The members of the object starting at `i`.
fn members_at(text: &[u8], mut i: usize) -> Option<Vec<Member>> {
    let mut out = Vec::new();
    if text.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(text, i + 1);
    if text.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if text.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(text, i)?;
        let key = unescape_key(text.get(i..key_end)?)?.into_owned();
        let colon = skip_ws(text, key_end);
        if text.get(colon) != Some(&b':') {
            return None;
        }
        let vstart = skip_ws(text, colon + 1);
        let vend = value_end(text, vstart)?;
        out.push(Member {
            key,
            start: i,
            value: (vstart, vend),
        });
        let next = skip_ws(text, vend);
        match text.get(next)? {
            b',' => i = skip_ws(text, next + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// The elements of the array at `span`.
pub fn elements(text: &[u8], span: Span) -> Option<Vec<Span>> {
    let mut out = Vec::new();
    if text.get(span.0) != Some(&b'[') {
        return None;
    }
    let mut i = skip_ws(text, span.0 + 1);
    if text.get(i) == Some(&b']') {
        return Some(out);
    }
    loop {
        let end = value_end(text, i)?;
        if end > span.1 {
            return None;
        }
        out.push((i, end));
        let next = skip_ws(text, end);
        match text.get(next)? {
            b',' => i = skip_ws(text, next + 1),
            b']' => return Some(out),
            _ => return None,
        }
    }
}

/// The ranges to cut so the items flagged in `remove` disappear with their separators:
/// an item takes the comma after it, or the last kept item's comma when it is the last.
pub fn cuts(items: &[Span], remove: &[bool]) -> Vec<Span> {
    let mut out = Vec::new();
    for (k, item) in items.iter().enumerate() {
        if !remove.get(k).copied().unwrap_or(false) {
            continue;
        }
        if let Some(next) = items.get(k + 1) {
            out.push((item.0, next.0));
        } else {
            let kept_before = items
                .iter()
                .take(k)
                .enumerate()
                .rev()
                .find(|(p, _)| !remove.get(*p).copied().unwrap_or(false));
            match kept_before {
                Some((_, prev)) => out.push((prev.1, item.1)),
                None => out.push((item.0, item.1)),
            }
        }
    }
    out
}

/// One step into a JSON value: an object's member, or an array's element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The span of the value at `path` in the JSON text `text` (the whole text for no step).
pub fn locate(text: &[u8], path: &[Step]) -> Option<Span> {
    locate_all(text, &[path])?.into_iter().next()
}

/// The paths still to find below one value, as a tree of their steps: a document is
/// walked once, however many paths lead into it (an answer may withhold thousands of
/// blocks of one list, each a path from the root).
#[derive(Default)]
struct Wanted<'a> {
    /// The paths (their indexes) that end at this value.
    here: Vec<usize>,
    keys: HashMap<&'a str, Wanted<'a>>,
    indexes: HashMap<usize, Wanted<'a>>,
}

/// The span of the value at each of `paths` in the JSON text `text`, in one walk of it:
/// `None` when one of them leads nowhere.
pub fn locate_all(text: &[u8], paths: &[&[Step]]) -> Option<Vec<Span>> {
    let mut root = Wanted::default();
    for (n, path) in paths.iter().enumerate() {
        let mut node = &mut root;
        for step in *path {
            node = match step {
                Step::Key(key) => node.keys.entry(key).or_default(),
                Step::Index(i) => node.indexes.entry(*i).or_default(),
            };
        }
        node.here.push(n);
    }
    let mut found = vec![None; paths.len()];
    walk(text, skip_ws(text, 0), &root, &mut found)?;
    found.into_iter().collect()
}

/// Walks the value starting at `i`, noting the spans `wanted` asks for at it and below
/// it, and returns where it ends. Only values on a wanted path are entered: any other is
/// skipped, so each byte is read once.
fn walk(text: &[u8], i: usize, wanted: &Wanted, found: &mut [Option<Span>]) -> Option<usize> {
    let end = match text.get(i)? {
        b'{' if !wanted.keys.is_empty() => walk_members(text, i, wanted, found)?,
        b'[' if !wanted.indexes.is_empty() => walk_elements(text, i, wanted, found)?,
        _ => value_end(text, i)?,
    };
    for n in &wanted.here {
        // The first value a path reaches is its value (the strict parser refused
        // duplicate keys: there is one).
        let slot = found.get_mut(*n)?;
        slot.get_or_insert((i, end));
    }
    Some(end)
}

/// Walks the object starting at `i` (as `members_at` reads it), entering the members
/// `wanted` names.
fn walk_members(text: &[u8], i: usize, wanted: &Wanted, found: &mut [Option<Span>]) -> Option<usize> {
    let mut i = skip_ws(text, i + 1);
    if text.get(i) == Some(&b'}') {
        return Some(i + 1);
    }
    loop {
        if text.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(text, i)?;
        let key = unescape_key(text.get(i..key_end)?)?;
        let colon = skip_ws(text, key_end);
        if text.get(colon) != Some(&b':') {
            return None;
        }
        let vstart = skip_ws(text, colon + 1);
        let vend = match wanted.keys.get(key.as_ref()) {
            Some(below) => walk(text, vstart, below, found)?,
            None => value_end(text, vstart)?,
        };
        let next = skip_ws(text, vend);
        match text.get(next)? {
            b',' => i = skip_ws(text, next + 1),
            b'}' => return Some(next + 1),
            _ => return None,
        }
    }
}

/// Walks the array starting at `i` (as `elements` reads it), entering the elements
/// `wanted` names.
fn walk_elements(text: &[u8], i: usize, wanted: &Wanted, found: &mut [Option<Span>]) -> Option<usize> {
    let mut i = skip_ws(text, i + 1);
    if text.get(i) == Some(&b']') {
        return Some(i + 1);
    }
    let mut k = 0usize;
    loop {
        let end = match wanted.indexes.get(&k) {
            Some(below) => walk(text, i, below, found)?,
            None => value_end(text, i)?,
        };
        k += 1;
        let next = skip_ws(text, end);
        match text.get(next)? {
            b',' => i = skip_ws(text, next + 1),
            b']' => return Some(next + 1),
            _ => return None,
        }
    }
}

/// `text` without the `cuts` (overlapping cuts merge).
pub fn apply(text: &[u8], cuts: Vec<Span>) -> Option<Vec<u8>> {
    rewrite(text, cuts.into_iter().map(|span| (span, &[][..])).collect())
}

/// `text` with each span replaced by its bytes (none: cut). Spans may overlap only as cuts
/// do: one within a span already written is dropped; one straddling it is refused.
pub fn rewrite(text: &[u8], mut edits: Vec<(Span, &[u8])>) -> Option<Vec<u8>> {
    // Stable: edits of one span keep the order they were given in. An answer may bring
    // thousands of edits, so no insertion sort.
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0usize;
    for ((start, end), with) in edits {
        if end > text.len() || start > end {
            return None;
        }
        if start < at {
            // Inside what an earlier edit covered: a cut merges, a replacement cannot.
            if end > at && !with.is_empty() {
                return None;
            }
            at = at.max(end);
            continue;
        }
        out.extend_from_slice(text.get(at..start)?);
        out.extend_from_slice(with);
        at = end;
    }
    out.extend_from_slice(text.get(at..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(text: &str, key: &str, remove: &[bool]) -> String {
        let t = text.as_bytes();
        let m = members(t).unwrap();
        let tools = m.iter().find(|m| m.key == key).unwrap();
        let el = elements(t, tools.value).unwrap();
        String::from_utf8(apply(t, cuts(&el, remove)).unwrap()).unwrap()
    }

    #[test]
    fn members_unescape_keys_and_skip_nested_values() {
        let t = br#" { "a" : {"x":[1,"]}"]}, "t\u006fols":[ {"n":"a,b"} , 2 ],"z":-1.5e3 } "#;
        let m = members(t).unwrap();
        let keys: Vec<_> = m.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "tools", "z"]);
        assert_eq!(&t[m[2].value.0..m[2].value.1], b"-1.5e3");
        let el = elements(t, m[1].value).unwrap();
        assert_eq!(&t[el[0].0..el[0].1], br#"{"n":"a,b"}"#);
        assert_eq!(&t[el[1].0..el[1].1], b"2");
    }

    #[test]
    fn cuts_keep_valid_json_and_every_other_byte() {
        let t = r#"{"tools": [ {"a":1}, {"b":2}, {"c":3} ], "m": "x"}"#;
        assert_eq!(
            strip(t, "tools", &[false, true, false]),
            r#"{"tools": [ {"a":1}, {"c":3} ], "m": "x"}"#
        );
        assert_eq!(
            strip(t, "tools", &[true, false, false]),
            r#"{"tools": [ {"b":2}, {"c":3} ], "m": "x"}"#
        );
        assert_eq!(
            strip(t, "tools", &[false, false, true]),
            r#"{"tools": [ {"a":1}, {"b":2} ], "m": "x"}"#
        );
        assert_eq!(
            strip(t, "tools", &[false, true, true]),
            r#"{"tools": [ {"a":1} ], "m": "x"}"#
        );
        assert_eq!(strip(t, "tools", &[true, true, true]), r#"{"tools": [  ], "m": "x"}"#);
        for rm in [[true, false], [false, true], [true, true]] {
            let m = members(t.as_bytes()).unwrap();
            let spans: Vec<Span> = m.iter().map(|m| (m.start, m.value.1)).collect();
            let out = apply(t.as_bytes(), cuts(&spans, &rm)).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v.as_object().unwrap().len(), rm.iter().filter(|r| !**r).count());
        }
    }

    /// Every path into `value` (its own, then each member's and element's, recursively).
    fn all_paths<'v>(value: &'v serde_json::Value, path: Vec<Step<'v>>, out: &mut Vec<Vec<Step<'v>>>) {
        out.push(path.clone());
        match value {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let mut p = path.clone();
                    p.push(Step::Key(k));
                    all_paths(v, p, out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    let mut p = path.clone();
                    p.push(Step::Index(i));
                    all_paths(v, p, out);
                }
            }
            _ => {}
        }
    }

    /// One path found from the root, step by step, as each edit was found before all were
    /// found in one walk: the reference the walk must agree with.
    fn locate_from_root(text: &[u8], path: &[Step]) -> Option<Span> {
        let start = skip_ws(text, 0);
        let mut span = (start, value_end(text, start)?);
        for step in path {
            span = match step {
                Step::Key(key) => members_at(text, span.0)?.into_iter().find(|m| m.key == *key)?.value,
                Step::Index(i) => *elements(text, span)?.get(*i)?,
            };
        }
        Some(span)
    }

    #[test]
    fn one_walk_finds_every_path_where_the_root_does() {
        let docs = [
            r#" {"a" : [1, {"b":"x]}"} , [ ] ,[[2]]], "t\u006fols": {"x": -1.5e3, "y": null} , "z":[{}]} "#,
            r#"[{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text"},{"uri":"docs://g/1"}]}},{"result":{"tools":[]}}]"#,
            r#""only a string""#,
            "[[[[[]]]],\n\t{\"\\\"\":[true,false]}]",
        ];
        for doc in docs {
            let text = doc.as_bytes();
            let value: serde_json::Value = serde_json::from_slice(text).unwrap();
            let mut paths = Vec::new();
            all_paths(&value, Vec::new(), &mut paths);
            let wanted: Vec<&[Step]> = paths.iter().map(Vec::as_slice).collect();
            let each: Vec<Span> = wanted.iter().map(|p| locate_from_root(text, p).unwrap()).collect();
            assert_eq!(locate_all(text, &wanted).unwrap(), each, "{doc}");
            // Every value is what the parser reads there.
            for (path, span) in paths.iter().zip(&each) {
                let at: serde_json::Value = serde_json::from_slice(&text[span.0..span.1]).unwrap();
                let mut expected = &value;
                for step in path {
                    expected = match step {
                        Step::Key(k) => &expected[*k],
                        Step::Index(i) => &expected[*i],
                    };
                }
                assert_eq!(&at, expected, "{doc} at {path:?}");
            }
            // One at a time, and in reverse order, the same spans.
            for (path, span) in wanted.iter().zip(&each) {
                assert_eq!(locate(text, path), Some(*span));
            }
            let reversed: Vec<&[Step]> = wanted.iter().rev().copied().collect();
            let mut back = locate_all(text, &reversed).unwrap();
            back.reverse();
            assert_eq!(back, each);
        }
        // A path that leads nowhere finds nothing, whatever else is found.
        let text = br#"{"a":[1,2],"b":{"c":3}}"#;
        for missing in [
            &[Step::Key("x")][..],
            &[Step::Key("a"), Step::Index(2)],
            &[Step::Key("a"), Step::Key("c")],
            &[Step::Key("b"), Step::Index(0)],
            &[Step::Key("b"), Step::Key("c"), Step::Key("d")],
        ] {
            assert_eq!(locate_all(text, &[&[Step::Key("a")], missing]), None, "{missing:?}");
            assert_eq!(locate_from_root(text, missing), None, "{missing:?}");
        }
        assert_eq!(locate_all(text, &[]), Some(vec![]));
    }

    #[test]
    fn refuses_what_is_not_json() {
        assert!(members(b"[1]").is_none());
        assert!(members(br#"{"a":1"#).is_none());
        assert!(members(br#"{"a" 1}"#).is_none());
        assert!(elements(b"{}", (0, 2)).is_none());
        assert!(apply(b"abc", vec![(2, 9)]).is_none());
        assert_eq!(apply(b"abcdef", vec![(4, 5), (0, 1), (1, 2)]).unwrap(), b"cdf");
        assert_eq!(members(b"{}").unwrap(), vec![]);
    }
}
