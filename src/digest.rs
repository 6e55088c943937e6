//! The approval `args_digest`: base64url-no-pad(SHA-256(RFC 8785 canonical JSON of the
//! call's arguments)).
//!
//! RFC 8785, the JSON Canonicalization Scheme (JCS), is what lets an approval service in
//! any language hash the same bytes as aigate:
//!
//! - no whitespace between tokens;
//! - object members sorted by their names as arrays of **UTF-16 code units** (not UTF-8
//!   bytes, not code points: `"\u{10000}"` sorts before `"\u{e000}"`), recursively; array
//!   order is kept;
//! - strings as ECMAScript `JSON.stringify` writes them: only `"` `\` and U+0000–U+001F
//!   are escaped, as `\b \t \n \f \r` where those exist and `\u00xx` (lowercase hex)
//!   otherwise; everything else, `/` and non-ASCII included, is written as raw UTF-8;
//! - numbers as IEEE-754 doubles written by ECMAScript `Number.prototype.toString`
//!   (`1e3` → `1000`, `1.0` → `1`, `-0` → `0`, `1e21` → `1e+21`, `1e-7` → `1e-7`),
//!   done here by the `ryu-js` crate (the formatter of the Boa JavaScript engine).
//!
//! # Numbers and the integer range
//!
//! JCS models every number as a double, so two spellings of one double (`1`, `1.0`,
//! `1e0`) share a canonical form and a digest; that is RFC 8785 by design.
//!
//! Integers that `serde_json` keeps as integers (anything written without a fraction or
//! exponent that fits in `i64`/`u64`) must lie within ±(2^53 − 1), the range in which a
//! double holds every integer exactly (JavaScript's `Number.MAX_SAFE_INTEGER`). Outside
//! it they are **refused** with [`DigestError::NumberOutOfRange`] rather than rounded
//! to the nearest double as JCS would do: rounding would let an approval granted for
//! `9007199254740993` also cover `9007199254740992`, while the upstream tool may well
//! read them as different ids; refusing also agrees with implementations such as
//! Python's `rfc8785` package, which raise on such integers. Arguments that need larger
//! integers should carry them as strings (RFC 8785 Appendix D).
//!
//! Numbers `serde_json` already holds as doubles are canonicalised as doubles, whatever
//! their size: `1e30` → `1e+30`. This includes integer literals beyond ±2^64 (for
//! example `123456789012345678901` → `123456789012345680000`), which `serde_json`
//! (built without `arbitrary_precision`) turns into doubles while parsing, so they can
//! no longer be told apart from `1.2345678901234568e20`.
//!
//! [`args_digest`], what an approval binds, goes one step further and refuses every
//! number of magnitude 2^53 or more, doubles included: otherwise a grant for
//! `{"account": 18446744073709551616}` would also cover `18446744073709553000` (one
//! double), which a Python or Go upstream reads as another account. [`canonical_json`]
//! stays RFC 8785 for such doubles.
//!
//! Which double a decimal text denotes is decided by the parser, not here: for the
//! digest to match other implementations, `serde_json` must round correctly, which it
//! does only with its `float_roundtrip` feature (without it, `333333333.33333329` — the
//! RFC's own example — parses one ULP off). The tests below hold that in place.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// The largest integer magnitude accepted as an integer: 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Nesting depth beyond which canonicalisation is refused (a guard against stack
/// exhaustion for values built in code; parsed documents are far shallower).
pub const MAX_DEPTH: usize = 512;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// An integer outside ±(2^53 − 1), or (in [`args_digest`]) any number of such a
    /// magnitude; carries the number as written or as canonicalised.
    NumberOutOfRange(String),
    /// NaN or an infinity (not representable in JSON; `serde_json::Value` never holds
    /// one, but `Number` is matched defensively).
    NonFiniteNumber,
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::NumberOutOfRange(n) => write!(
                f,
                "number {n} is outside ±(2^53-1), where readers disagree on its value; send it as a string"
            ),
            DigestError::NonFiniteNumber => f.write_str("NaN and infinities have no JSON form"),
            DigestError::TooDeep => {
                write!(f, "JSON nesting exceeds {MAX_DEPTH} levels")
            }
        }
    }
}

impl std::error::Error for DigestError {}

/// RFC 8785 canonical form of a JSON value.
///
/// # Errors
///
/// [`DigestError::NumberOutOfRange`] for an integer outside ±(2^53 − 1) (see the module
/// documentation), [`DigestError::TooDeep`] past [`MAX_DEPTH`] levels of nesting.
pub fn canonical_json(value: &Value) -> Result<String, DigestError> {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value, 0)?;
    Ok(out)
}

/// base64url(SHA-256(canonical_json(value))), no padding: 43 characters.
///
/// # Errors
///
/// As [`canonical_json`].
pub fn args_digest(value: &Value) -> Result<String, DigestError> {
    let canonical = canonical_json(value)?;
    // canonical_json bounded the depth, so this walk's recursion is bounded too.
    if let Some(n) = beyond_exact_range(value) {
        return Err(DigestError::NumberOutOfRange(n));
    }
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The first number of magnitude 2^53 or more in `value` (only doubles can be: larger
/// integers are refused while canonicalising), canonicalised.
fn beyond_exact_range(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.abs() > MAX_SAFE_INTEGER as f64)
            .map(|f| ryu_js::Buffer::new().format(f).to_string()),
        Value::Array(items) => items.iter().find_map(beyond_exact_range),
        Value::Object(members) => members.values().find_map(beyond_exact_range),
        _ => None,
    }
}

fn write_value(out: &mut String, value: &Value, depth: usize) -> Result<(), DigestError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            let depth = deeper(depth)?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, depth)?;
            }
            out.push(']');
        }
        Value::Object(members) => write_object(out, members, deeper(depth)?)?,
    }
    Ok(())
}

fn deeper(depth: usize) -> Result<usize, DigestError> {
    if depth >= MAX_DEPTH {
        Err(DigestError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn write_object(out: &mut String, members: &Map<String, Value>, depth: usize) -> Result<(), DigestError> {
    let mut sorted: Vec<Member<'_>> = members.iter().collect();
    sort_by_utf16(&mut sorted);
    out.push('{');
    for (i, (name, member)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_value(out, member, depth)?;
    }
    out.push('}');
    Ok(())
}

type Member<'a> = (&'a String, &'a Value);

/// Sorts members by name in UTF-16 code-unit order. A heapsort: O(n log n) in the worst
/// case, no allocation, and about 12 KB less .wasm than `slice::sort_unstable_by`. Names
/// are unique within an object, so stability does not matter.
fn sort_by_utf16(members: &mut [Member<'_>]) {
    let len = members.len();
    for root in (0..len / 2).rev() {
        sift_down(members, root, len);
    }
    for end in (1..len).rev() {
        members.swap(0, end);
        sift_down(members, 0, end);
    }
}

/// Restores the max-heap property below `root` within `heap[..end]`.
fn sift_down(heap: &mut [Member<'_>], mut root: usize, end: usize) {
    loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && name_less(heap, child, child + 1) {
            child += 1;
        }
        if !name_less(heap, root, child) {
            return;
        }
        heap.swap(root, child);
        root = child;
    }
}

fn name_less(members: &[Member<'_>], a: usize, b: usize) -> bool {
    match (members.get(a), members.get(b)) {
        (Some((x, _)), Some((y, _))) => x.encode_utf16().lt(y.encode_utf16()),
        _ => false,
    }
}

fn write_number(out: &mut String, n: &Number) -> Result<(), DigestError> {
    let double = if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(DigestError::NumberOutOfRange(u.to_string()));
        }
        u as f64 // exact: u < 2^53
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(DigestError::NumberOutOfRange(i.to_string()));
        }
        i as f64 // exact: |i| < 2^53
    } else {
        match n.as_f64() {
            Some(f) if f.is_finite() => f,
            _ => return Err(DigestError::NonFiniteNumber),
        }
    };
    // ECMAScript Number::toString; writes -0 as "0".
    let mut buffer = ryu_js::Buffer::new();
    out.push_str(buffer.format_finite(double));
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut plain_from = 0;
    for (at, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(s.get(plain_from..at).unwrap_or_default());
        if escape.is_empty() {
            let code = u32::from(c);
            out.push_str("\\u00");
            out.push(hex_digit(code >> 4));
            out.push(hex_digit(code & 0xf));
        } else {
            out.push_str(escape);
        }
        plain_from = at + c.len_utf8();
    }
    out.push_str(s.get(plain_from..).unwrap_or_default());
    out.push('"');
}

fn hex_digit(nibble: u32) -> char {
    // Lowercase, as RFC 8785 (ECMAScript JSON.stringify) requires.
    char::from_digit(nibble, 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap();
        canonical_json(&value).unwrap()
    }

    fn canon_f64(bits: u64) -> String {
        let value = Value::from(f64::from_bits(bits));
        canonical_json(&value).unwrap()
    }

    /// RFC 8785 §3.2.2 (and §3.2.4 for its UTF-8 bytes): the "numbers" / "string" /
    /// "literals" example, parsed from the RFC's own JSON text.
    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let expected = concat!(
            r#"{"literals":[null,true,false],"#,
            r#""numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"#,
            r#""string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        assert_eq!(canon(input), expected);
        // §3.2.4: the same output as UTF-8 bytes.
        let hex = "\
            7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 \
            75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a \
            5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 \
            65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 \
            5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 \
            30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(canon(input).as_bytes(), bytes);
    }

    /// RFC 8785 §3.2.3: property sorting by UTF-16 code units.
    #[test]
    fn rfc8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = concat!(
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",",
            "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",",
            "\"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
        assert_eq!(canon(input), expected);
    }

    /// UTF-16 order differs from UTF-8 / code-point order exactly when a supplementary
    /// character (surrogate pair D800–DBFF …) meets a BMP character at E000–FFFF.
    #[test]
    fn sorting_is_by_utf16_not_utf8() {
        let value = json!({"\u{ff61}": 1, "\u{10000}": 2, "\u{e000}": 3, "\u{5d0}": 4, "a": 5});
        assert_eq!(
            canonical_json(&value).unwrap(),
            "{\"a\":5,\"\u{5d0}\":4,\"\u{10000}\":2,\"\u{e000}\":3,\"\u{ff61}\":1}"
        );
    }

    /// The heapsort against the standard library's sort, on many shuffled name sets
    /// mixing ASCII, BMP above U+E000 and supplementary characters.
    #[test]
    fn heapsort_matches_std_sort() {
        let alphabet = [
            "",
            "a",
            "B",
            "1",
            "\u{7f}",
            "\u{80}",
            "é",
            "\u{d7ff}",
            "\u{e000}",
            "\u{ffff}",
            "\u{10000}",
            "😀",
            "\u{10ffff}",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..2000 {
            let mut names = std::collections::BTreeSet::new();
            for _ in 0..(round % 40) {
                let len = next() % 4;
                let name: String = (0..len).map(|_| alphabet[(next() % 13) as usize]).collect();
                names.insert(name);
            }
            let null = Value::Null;
            let mut members: Vec<Member<'_>> = names.iter().map(|n| (n, &null)).collect();
            // Shuffle, then sort both ways.
            for i in (1..members.len()).rev() {
                members.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            let mut expected = members.clone();
            expected.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            sort_by_utf16(&mut members);
            let got: Vec<&String> = members.iter().map(|(n, _)| *n).collect();
            let want: Vec<&String> = expected.iter().map(|(n, _)| *n).collect();
            assert_eq!(got, want);
        }
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text (the finite
    /// rows; NaN and Infinity cannot occur in a `serde_json::Value`).
    #[test]
    fn rfc8785_appendix_b_numbers() {
        let table: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for &(bits, expected) in table {
            assert_eq!(canon_f64(bits), expected, "bits {bits:016x}");
        }
    }

    /// Number texts → ECMAScript Number::toString of the double they denote.
    #[test]
    fn number_spellings() {
        for (text, expected) in [
            ("1e3", "1000"),
            ("1.0", "1"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("1e-7", "1e-7"),
            ("0.000001", "0.000001"),
            ("123456789012345678901", "123456789012345680000"),
            ("4.50", "4.5"),
            ("-1.5E-10", "-1.5e-10"),
            ("0.1", "0.1"),
            ("9007199254740991", "9007199254740991"),
            ("-9007199254740991", "-9007199254740991"),
            ("1e16", "10000000000000000"),
            ("5e-324", "5e-324"),
        ] {
            assert_eq!(canon(text), expected, "input {text}");
        }
    }

    /// The digest must agree with correctly rounding parsers (ECMAScript, Python,
    /// Go, …): 16- and 17-digit decimals are what those languages print for doubles.
    /// Fails if serde_json's `float_roundtrip` feature is dropped.
    #[test]
    fn long_decimals_parse_to_the_nearest_double() {
        for (text, expected) in [
            ("333333333.33333329", "333333333.3333333"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("997970.3875732421", "997970.3875732421"),
            ("3941262.9173050476", "3941262.9173050476"),
            ("5.3578301957329129e-76", "5.357830195732913e-76"),
        ] {
            assert_eq!(canon(text), expected, "input {text}");
        }
    }

    #[test]
    fn integers_outside_the_exact_double_range_are_refused() {
        for text in [
            "9007199254740992",
            "9007199254740993",
            "-9007199254740992",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                canonical_json(&value),
                Err(DigestError::NumberOutOfRange(text.to_string())),
                "input {text}"
            );
            assert!(args_digest(&json!({ "id": value })).is_err());
        }
        assert_eq!(canonical_json(&json!(MAX_SAFE_INTEGER)).unwrap(), "9007199254740991");
    }

    /// Beyond ±2^64 an integer literal becomes a double while parsing: RFC 8785 keeps it,
    /// but an approval cannot bind it (one double, many integers), nor a double that big.
    #[test]
    fn approvals_refuse_every_number_beyond_the_exact_range() {
        for (text, shown) in [
            ("18446744073709551616", "18446744073709552000"),
            ("18446744073709553000", "18446744073709552000"),
            ("-123456789012345678901", "-123456789012345680000"),
            ("1e30", "1e+30"),
            ("9007199254740992.0", "9007199254740992"),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(canonical_json(&value).is_ok(), "{text}");
            assert_eq!(
                args_digest(&json!({"to": "x", "account": [value]})),
                Err(DigestError::NumberOutOfRange(shown.to_string())),
                "input {text}"
            );
        }
        for text in ["9007199254740991.0", "-9007199254740991", "1.5e15", "0.1", "1e-300"] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert!(args_digest(&json!({ "n": value })).is_ok(), "{text}");
        }
    }

    #[test]
    fn string_escapes() {
        // Input escapes are resolved: "\u0061" is "a"; "\/" is "/".
        assert_eq!(canon(r#""\u0061\/""#), r#""a/""#);
        assert_eq!(canon(r#"{"\u0061":1,"b":2}"#), r#"{"a":1,"b":2}"#);
        // Mandatory escapes only, short forms where they exist, else \u00xx lowercase;
        // DEL, non-ASCII and U+2028/2029 stay raw.
        let value = json!("\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{e}\u{1f} \"\\/\u{7f}\u{80}\u{2028}é😀");
        assert_eq!(
            canonical_json(&value).unwrap(),
            "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u000e\\u001f \\\"\\\\/\u{7f}\u{80}\u{2028}é😀\""
        );
        // Escapes inside object names too.
        assert_eq!(canonical_json(&json!({"a\"b\n": "x"})).unwrap(), r#"{"a\"b\n":"x"}"#);
        // Unicode is not normalised (cyberphone testdata unicode.json).
        assert_eq!(
            canon(r#"{"Unnormalized Unicode":"\u1e0d\u0307"}"#),
            "{\"Unnormalized Unicode\":\"\u{1e0d}\u{307}\"}"
        );
    }

    /// cyberphone/json-canonicalization testdata (the RFC authors' reference data).
    #[test]
    fn reference_testdata() {
        // structures.json
        assert_eq!(
            canon(
                r#"{"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty",
                    "a": { }, "111": [ { } ], "A": { }}"#
            ),
            r#"{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}"#
        );
        // arrays.json
        assert_eq!(
            canon(r#"[56, {"d": true, "10": null, "1": [ ]}]"#),
            r#"[56,{"1":[],"10":null,"d":true}]"#
        );
        // weird.json
        assert_eq!(
            canon(
                r#"{"\u20ac": "Euro Sign", "1": "One", "\u0080": "Control\u007f",
                    "\ud83d\ude02": "Smiley", "\u00f6": "Latin Small Letter O With Diaeresis",
                    "\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}"#
            ),
            concat!(
                "{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u{80}\":\"Control\u{7f}\",",
                "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",",
                "\"\u{1f602}\":\"Smiley\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
            )
        );
        // french.json: no locale collation.
        assert_eq!(
            canon(
                r#"{"peach": "This sorting order", "péché": "is wrong according to French",
                    "pêche": "but canonicalization MUST", "sin": "ingnore locale"}"#
            ),
            r#"{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}"#
        );
    }

    #[test]
    fn nesting_and_empty_containers() {
        assert_eq!(canon("{}"), "{}");
        assert_eq!(canon("[]"), "[]");
        assert_eq!(canon(" [ [ ] , { } , [ [ 1 , [ 2.0 ] ] ] ] "), "[[],{},[[1,[2]]]]");
        assert_eq!(
            canon(r#"{"b": [{"z": 1, "y": [true, null]}], "a": {"d": {}, "c": []}}"#),
            r#"{"a":{"c":[],"d":{}},"b":[{"y":[true,null],"z":1}]}"#
        );
        assert_eq!(canon("null"), "null");
        assert_eq!(canon("true"), "true");
        assert_eq!(canon(r#""""#), r#""""#);
    }

    #[test]
    fn depth_is_bounded() {
        let mut value = json!(1);
        for _ in 0..MAX_DEPTH {
            value = json!([value]);
        }
        assert!(canonical_json(&value).is_ok());
        let value = json!({ "x": value });
        assert_eq!(canonical_json(&value), Err(DigestError::TooDeep));
    }

    /// Fixed digests, computed independently with Python:
    /// `c = json.dumps(v, sort_keys=True, separators=(",",":"), ensure_ascii=False)`,
    /// `base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=")`
    /// (for ASCII names and integers, that output is RFC 8785's).
    #[test]
    fn fixed_digests() {
        let value = json!({
            "to": ["alice@example.com", "bob@example.com"],
            "subject": "Quarterly report – café\n",
            "priority": 3,
            "retries": -2,
            "dry_run": false,
            "cc": null,
            "meta": {"z": 0, "a": [1, [2, []], {}], "B": 9007199254740991u64}
        });
        assert_eq!(
            canonical_json(&value).unwrap(),
            concat!(
                r#"{"cc":null,"dry_run":false,"meta":{"B":9007199254740991,"a":[1,[2,[]],{}],"z":0},"#,
                r#""priority":3,"retries":-2,"subject":"Quarterly report – café\n","#,
                r#""to":["alice@example.com","bob@example.com"]}"#
            )
        );
        assert_eq!(
            args_digest(&value).unwrap(),
            "G6YQBgkvb9NN8s692hPvq-0zsNV3pLk3QLjAFmPsRbg"
        );
        assert_eq!(
            args_digest(&json!({})).unwrap(),
            "RBNvo1WzZ4oRRq0W9-hknpT7T8If536DEMBg9hyq_4o"
        );
    }

    #[test]
    fn digest_ignores_member_order_and_whitespace_only() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": [1.0, "x"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":[1,"\u0078"],"a":1e0}"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"b":["x",1],"a":1}"#).unwrap();
        assert_eq!(args_digest(&a).unwrap(), args_digest(&b).unwrap());
        assert_ne!(args_digest(&a).unwrap(), args_digest(&c).unwrap());
        assert_eq!(args_digest(&a).unwrap().len(), 43);
    }
}
