//! Strict JSON parsing for untrusted input (request bodies, token payloads, grants).
//!
//! `serde_json::Value` silently keeps the last of duplicate keys, which lets a client
//! show one value to aigate and another to an upstream parser that keeps the first.
//! This parser refuses duplicate keys (compared after unescaping, so `"a"` and
//! `"\u0061"` collide) and bounds nesting depth, and otherwise yields a normal `Value`.
//!
//! Requests are parsed more strictly still ([`parse_request`]): Go's `encoding/json` and
//! ASP.NET Core bind object keys case-insensitively, last one winning, so
//! `{"name":"get_order","Name":"send_email"}` would be `send_email` to a Go MCP server.
//! Keys of one object that differ only in case (as those parsers fold them) are refused.

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not UTF-8.
    NotUtf8,
    /// Nesting deeper than allowed.
    TooDeep,
    /// The same key twice in one object, and where the second one ends (`line 3 column 17`).
    DuplicateKey(String, String),
    /// Two keys of one object that differ only in case (request bodies).
    KeysDifferInCase(String),
    /// Any other syntax error (message from the parser, with position).
    Syntax(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::NotUtf8 => f.write_str("body is not valid UTF-8"),
            JsonError::TooDeep => f.write_str("JSON nesting exceeds the depth limit"),
            JsonError::DuplicateKey(k, at) if at.is_empty() => write!(f, "duplicate JSON key {k:?}"),
            JsonError::DuplicateKey(k, at) => write!(f, "duplicate JSON key {k:?} at {at}"),
            JsonError::KeysDifferInCase(k) => write!(
                f,
                "JSON key {k:?} differs from another key of its object only in case, which parsers that ignore case read as one key"
            ),
            JsonError::Syntax(m) => write!(f, "invalid JSON: {m}"),
        }
    }
}

const DUPLICATE: &str = "\u{0}duplicate key:";
const TOO_DEEP: &str = "\u{0}too deep";
const CASE: &str = "\u{0}keys differ in case:";

/// Parses `bytes` as one JSON document with at most `max_depth` levels of nesting.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    parse_with(bytes, max_depth, false)
}

/// Parses a request body (or arguments a request carries): as [`parse`], and keys of one
/// object must not differ only in case.
pub fn parse_request(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    parse_with(bytes, max_depth, true)
}

fn parse_with(bytes: &[u8], max_depth: usize, fold_keys: bool) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    // Invisible in an editor, a byte-order mark would be reported as "expected value at
    // line 1 column 1": it is named instead (and still refused).
    if text.starts_with('\u{feff}') {
        return Err(JsonError::Syntax(
            "the text starts with a byte-order mark (U+FEFF), which JSON text must not (RFC 8259 section 8.1): \
             save it without one"
                .into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    // serde_json's own recursion guard (128) stays on as a backstop.
    let value = Strict {
        depth_left: max_depth,
        fold_keys,
    }
    .deserialize(&mut de)
    .map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(value)
}

/// A key as parsers that ignore case compare it: Go's `encoding/json` folds each letter
/// through lower then upper case with one-to-one mappings only, so the Kelvin sign is `K`
/// and the long s is `S`, while `ß` stays `ß`.
fn folded(key: &str) -> String {
    fn one(mut mapped: impl Iterator<Item = char>, c: char) -> char {
        match (mapped.next(), mapped.next()) {
            (Some(m), None) => m,
            _ => c,
        }
    }
    if key.is_ascii() {
        return key.to_ascii_uppercase();
    }
    key.chars()
        .map(|c| {
            let lower = one(c.to_lowercase(), c);
            one(lower.to_uppercase(), lower)
        })
        .collect()
}

/// Whether two keys are one to a parser that ignores case (see [`folded`]).
pub fn same_key_ignoring_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        // No allocation on the common path: only ASCII letters fold within ASCII.
        return a.eq_ignore_ascii_case(b);
    }
    folded(a) == folded(b)
}

/// Whether two keys name one argument to a server that binds names loosely: they differ
/// only in case (see [`folded`]) or in `_` and `-`. Besides Go and ASP.NET, which ignore
/// case, pydantic models with a camelCase alias generator and `populate_by_name` read
/// `customerId` as `customer_id` (preferring the alias), and binders of kebab-case names
/// `customer-id`.
pub fn same_argument_name(a: &str, b: &str) -> bool {
    // ASCII names (nearly all) compare in place: this runs for every key beside a judged
    // argument.
    if a.is_ascii() && b.is_ascii() {
        fn bare(s: &str) -> impl Iterator<Item = u8> + '_ {
            s.bytes()
                .filter(|c| !matches!(c, b'_' | b'-'))
                .map(|c| c.to_ascii_lowercase())
        }
        return bare(a).eq(bare(b));
    }
    let bare = |s: &str| s.chars().filter(|c| !matches!(c, '_' | '-')).collect::<String>();
    same_key_ignoring_case(&bare(a), &bare(b))
}

/// Whether some other key of `map` folds to the same text as one of its keys; only keys
/// with an upper-case or non-ASCII letter can collide with another, so most objects skip it.
fn case_collision(map: &Map<String, Value>) -> Option<&str> {
    if !map
        .keys()
        .any(|k| k.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()))
    {
        return None;
    }
    let mut seen = std::collections::HashSet::with_capacity(map.len());
    map.keys().find(|k| !seen.insert(folded(k))).map(String::as_str)
}

fn classify(e: serde_json::Error) -> JsonError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix(DUPLICATE) {
        let (key, at) = match rest.split_once(" at line ") {
            Some((key, at)) => (key, format!("line {at}")),
            None => (rest, String::new()),
        };
        return JsonError::DuplicateKey(key.to_string(), at);
    }
    if let Some(rest) = msg.strip_prefix(CASE) {
        let key = rest.split(" at line ").next().unwrap_or(rest);
        return JsonError::KeysDifferInCase(key.to_string());
    }
    if msg.starts_with(TOO_DEEP) || msg.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep;
    }
    JsonError::Syntax(msg)
}

#[derive(Clone, Copy)]
struct Strict {
    depth_left: usize,
    fold_keys: bool,
}

impl Strict {
    fn nested<E: serde::de::Error>(&self) -> Result<Strict, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Strict { depth_left, ..*self }),
            None => Err(E::custom(TOO_DEEP)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        // serde_json never hands us a non-finite float; map defensively to null anyway.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("{DUPLICATE}{key}")));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        if self.fold_keys {
            if let Some(key) = case_collision(&out) {
                return Err(A::Error::custom(format_args!("{CASE}{key}")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_byte_order_mark() {
        let e = parse(b"\xef\xbb\xbf{}", 8).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid JSON: the text starts with a byte-order mark (U+FEFF)"),
            "{e}"
        );
    }

    #[test]
    fn accepts_plain_documents() {
        let v = parse(br#"{"a":[1,2,{"b":null}],"c":"d"}"#, 8).unwrap();
        assert_eq!(v["a"][2]["b"], Value::Null);
    }

    #[test]
    fn refuses_duplicate_keys_after_unescaping() {
        let e = parse(br#"{"name":"a","n\u0061me":"b"}"#, 8).unwrap_err();
        assert!(
            matches!(&e, JsonError::DuplicateKey(k, at) if k == "name" && at.starts_with("line 1 column ")),
            "{e:?}"
        );
    }

    #[test]
    fn requests_refuse_keys_that_differ_only_in_case() {
        for doc in [
            r#"{"name":"get_order","Name":"send_email"}"#,
            r#"{"params":{"arguments":{"amount":5,"AMOUNT":100000}}}"#,
            r#"[{"ok":1},{"id":1,"iD":2}]"#,
            // Go folds the Kelvin sign to K and the long s to S.
            "{\"kind\":1,\"\u{212a}ind\":2}",
            "{\"session\":1,\"\u{17f}ession\":2}",
        ] {
            let e = parse_request(doc.as_bytes(), 8).unwrap_err();
            assert!(matches!(e, JsonError::KeysDifferInCase(_)), "{doc}: {e:?}");
            assert!(parse(doc.as_bytes(), 8).is_ok(), "answers are not held to it: {doc}");
        }
        for doc in [
            r#"{"inputSchema":{},"name":"x","Nam":"y","userId":1,"user_id":2}"#,
            r#"{"a":{"B":1},"b":{"A":1}}"#,
            "{\"straße\":1,\"strasse\":2}",
        ] {
            assert!(parse_request(doc.as_bytes(), 8).is_ok(), "{doc}");
        }
    }

    #[test]
    fn argument_names_are_one_across_case_underscores_and_dashes() {
        for (a, b) in [
            ("customer_id", "customerId"),
            ("customer_id", "customer-id"),
            ("customer_id", "CUSTOMERID"),
            ("customer_id", "Customer_Id"),
            ("note", "Note"),
            ("amount_usd", "amount__usd"),
            ("\u{212a}ind", "kind"),
        ] {
            assert!(same_argument_name(a, b), "{a} {b}");
            assert!(same_argument_name(b, a), "{b} {a}");
        }
        for (a, b) in [
            ("customer_id", "customer_ids"),
            ("note", "notes"),
            ("a_b", "a.b"),
            ("stra\u{df}e", "STRASSE"),
        ] {
            assert!(!same_argument_name(a, b), "{a} {b}");
        }
    }

    #[test]
    fn refuses_depth_beyond_limit() {
        assert!(parse(b"[[[1]]]", 3).is_ok());
        assert_eq!(parse(b"[[[[1]]]]", 3).unwrap_err(), JsonError::TooDeep);
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(parse(deep.as_bytes(), 10_000).unwrap_err(), JsonError::TooDeep);
    }

    #[test]
    fn refuses_non_utf8_trailing_garbage_and_empty() {
        assert_eq!(parse(b"\"\xff\"", 8).unwrap_err(), JsonError::NotUtf8);
        assert!(matches!(parse(b"{} x", 8), Err(JsonError::Syntax(_))));
        assert!(matches!(parse(b"", 8), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn huge_numbers_do_not_fail_or_trap() {
        // Out-of-range floats are a syntax error, not a panic or an infinity.
        assert!(matches!(parse(b"[1e400]", 8), Err(JsonError::Syntax(_))));
        let v = parse(b"[123456789012345678901234567890]", 8).unwrap();
        assert!(v[0].is_f64());
    }
}
