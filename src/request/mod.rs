//! What arrives: the request head as read once from the host, and the per-protocol
//! extraction of actions from the body.

pub mod anthropic;
pub mod llm;
pub mod mcp;
pub mod mirror;
pub mod openai_chat;
pub mod openai_responses;
pub mod splice;

use serde_json::{Map, Value};

/// Request headers as the host hands them over: lower-case names, raw value bytes
/// (a hostile header byte must never become a UTF-8 panic).
#[derive(Debug, Default, Clone)]
pub struct Headers {
    pairs: Vec<(String, Vec<u8>)>,
}

impl Headers {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Headers { pairs }
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of `name`; `Err(Repeated)` when it appears more than once.
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a [u8]>, Repeated> {
        let mut it = self.get_all(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(Repeated);
        }
        Ok(first)
    }

    /// The headers, names with their values, in order (a repeated one as often as it appears).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The names of the headers, in order (a repeated one as often as it appears).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }

    /// A header as text, or `None` when absent, repeated or not UTF-8.
    pub fn text<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.one(name).ok().flatten().and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// What makes a request's authority (`Host`, `:authority`) one that servers read as
/// another host than aigate routes by, if anything: a port that is not a number (Go's
/// `net/http` serves `admin.example.com:abc` as `admin.example.com`), characters no host
/// name has (`,` of two joined `Host` headers, `@`, `%`), or an empty label. A host name
/// is letters, digits, `-`, `_` and dots, with at most one dot at its end; an IP literal
/// is bracketed (`[::1]`).
pub fn authority_problem(authority: &str) -> Option<&'static str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(literal) => {
            let Some((address, rest)) = literal.split_once(']') else {
                return Some("opens an IP literal it does not close");
            };
            if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
                return Some("holds an IP literal that is no address");
            }
            match rest.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None if rest.is_empty() => ("", None),
                None => return Some("goes on after its IP literal"),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return Some("has a port that is not a number");
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some("holds characters no host name has");
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    if !host.is_empty() && labels.split('.').any(str::is_empty) {
        return Some("has an empty label");
    }
    None
}

/// Why a request path cannot be matched to a route safely, if it cannot: routes match by
/// prefix, and an upstream that resolves `/api/orders/../refunds`, `//api/refunds` or
/// `/api%2Frefunds` would run an endpoint other than the one judged. Hosts that normalise
/// paths first (Envoy's `normalize_path`, `merge_slashes`) never send these.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("does not start with '/'");
    }
    if path.contains('\\') {
        return Some("contains a backslash");
    }
    if path.contains("//") {
        return Some("contains an empty segment (//)");
    }
    // `..;x` is a dot segment too for servers that drop `;` parameters (Tomcat, Spring,
    // Jetty), as route matching does: `/mcp/..;/api/refunds` reaches `/api/refunds`.
    if path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(seg))
        .any(|seg| seg == "." || seg == "..")
    {
        return Some("contains a dot segment");
    }
    if encoded_separator(path) {
        return Some("contains an encoded dot, slash or backslash");
    }
    // Servers decode `%63` to `c` (RFC 3986 §6.2.2.2) before routing: `/m%63p` is served
    // as `/mcp`, so it would be judged as no route (or another) and run as this one.
    // `%3B` is `;`, whose parameters servers drop.
    if needless_encoding(path) {
        return Some("percent-encodes a letter, digit, '-', '_', '~' or ';'");
    }
    None
}

/// A `%XX` that decodes to an unreserved character (or `;`): no client needs to encode one.
pub fn needless_encoding(path: &str) -> bool {
    let hex = |b: u8| char::from(b).to_digit(16);
    path.as_bytes().windows(3).any(|w| match *w {
        [b'%', hi, lo] => match (hex(hi), hex(lo)) {
            (Some(h), Some(l)) => {
                let c = char::from_u32(h * 16 + l).unwrap_or('%');
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | ';')
            }
            _ => false,
        },
        _ => false,
    })
}

/// An encoded `.`, `/` or `\` in a path or URI: once decoded, a segment that a prefix test
/// on the encoded text did not see.
pub fn encoded_separator(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| match *w {
        [b'%', hi, lo] => matches!((hi, lo.to_ascii_lowercase()), (b'2', b'e' | b'f') | (b'5', b'c')),
        _ => false,
    })
}

/// Refuses a member spelled like one aigate reads but in another case (`"Method"`,
/// `"Tools"`): the reference servers refuse or ignore it, while a server built on a parser
/// that ignores case (Go's `encoding/json`: mcp-go, Ollama) reads it as the member aigate
/// did not judge.
pub fn refuse_miscased(key: &str, read: &[&str], rule: &'static str) -> Result<(), crate::decision::Denial> {
    // The names aigate reads are ASCII: an ASCII key folds onto one only at its length,
    // so most comparisons end there (this runs on every key of every object read).
    let ascii = key.is_ascii();
    let same = |k: &str| {
        if ascii {
            k.len() == key.len() && k != key && k.eq_ignore_ascii_case(key)
        } else {
            crate::json::same_key_ignoring_case(k, key)
        }
    };
    match read.iter().find(|k| same(k)) {
        Some(k) => Err(crate::decision::Denial::new(
            crate::decision::Reason::BodyMalformed,
            rule,
            format!("member {key:?} differs from {k:?} only in case: send {k:?}"),
        )),
        None => Ok(()),
    }
}

/// Refuses a member that is a camelCase name aigate reads written in snake_case
/// (`task_ids` for `taskIds`): MCP servers and clients whose models also take snake_case
/// names (pydantic's `populate_by_name`) read it as the member aigate did not judge.
pub fn refuse_snake_cased(key: &str, read: &[&str], rule: &'static str) -> Result<(), crate::decision::Denial> {
    if !key.contains('_') {
        return Ok(());
    }
    match read.iter().find(|k| !k.contains('_') && snake_of(key, k)) {
        Some(k) => Err(crate::decision::Denial::new(
            crate::decision::Reason::BodyMalformed,
            rule,
            format!("member {key:?} is {k:?} spelled in snake_case, which some readers take for it: send {k:?}"),
        )),
        None => Ok(()),
    }
}

/// A character compatibility normalisation (NFKC) turns into ASCII: the dot leaders and
/// ellipsis (`‥` is `..`), the fraction and division slashes, the CJK compatibility and
/// small forms (`︰`, `﹨`), and the halfwidth and fullwidth forms (`．`, `／`, `Ａ`). A
/// server normalising a name or a path would read another one than the text judged.
pub fn compatibility_form(c: char) -> bool {
    matches!(u32::from(c), 0x2024..=0x2026 | 0x2044 | 0x2215 | 0xFE30..=0xFE4F | 0xFE50..=0xFE6F | 0xFF00..=0xFFEF)
}

/// A character Unicode says to ignore in display (Default_Ignorable_Code_Point: soft
/// hyphen, zero-width spaces and joiners, variation selectors, tags…), which identifier and
/// domain name mappings (NFKC_Casefold, UTS #46) remove: `.\u{200b}.` becomes `..`.
pub fn default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x34F
            | 0x61C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Is `key` the camelCase name `camel` written in snake_case (`input_requests`)?
fn snake_of(key: &str, camel: &str) -> bool {
    let mut rest = key.bytes().filter(|b| *b != b'_');
    camel
        .bytes()
        .all(|c| rest.next().is_some_and(|k| k.eq_ignore_ascii_case(&c)))
        && rest.next().is_none()
}

/// Why a request's JSON (a body, or arguments sent as JSON text) is refused. Nesting past
/// the limit names the setting and its value, as the body size and batch refusals do: the
/// client can tell a limit it hit from a malformed document.
pub fn json_problem(e: &crate::json::JsonError, limits: &crate::policy::Limits) -> String {
    match e {
        crate::json::JsonError::TooDeep => format!("{e} (limits.max_json_depth = {})", limits.max_json_depth),
        e => e.to_string(),
    }
}

/// The refusal of a request body that is not acceptable JSON (`body_malformed`): under
/// `limits.max_json_depth` for nesting, else under `json`.
pub fn json_refused(e: &crate::json::JsonError, limits: &crate::policy::Limits) -> crate::decision::Denial {
    // Depth is a limit the policy sets; anything else is the JSON itself.
    let rule = match e {
        crate::json::JsonError::TooDeep => "limits.max_json_depth",
        _ => "json",
    };
    crate::decision::Denial::new(crate::decision::Reason::BodyMalformed, rule, json_problem(e, limits))
}

/// A header that must appear at most once appeared several times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// What the engine needs from the host beyond headers and body. Implemented by the
/// proxy-wasm glue and by plain values in tests; read lazily, so a policy that does not
/// use mTLS never pays for the property lookup.
pub trait Host {
    /// Seconds since the Unix epoch, from the host clock.
    fn now(&self) -> u64;
    /// URI SAN of the mTLS peer certificate, if the connection has one.
    fn peer_uri_san(&self) -> Option<String>;
    /// JWT payload that Envoy's jwt_authn stored in dynamic metadata.
    fn jwt_payload(&self, namespace: &str, key: &str) -> Option<Map<String, Value>>;
    /// Shared data, for single-use approvals.
    fn shared(&self) -> &dyn SharedData;
    /// This worker's cache of verified tokens, if the host keeps one (the plugin does, in
    /// its per-VM state next to the policy). Without one every token is verified.
    fn token_cache(&self) -> Option<&crate::identity::cache::TokenCache> {
        None
    }
}

/// Host shared data (Envoy: shared across the workers of one proxy) with Envoy's
/// compare-and-swap semantics: `cas` 0 writes unconditionally.
pub trait SharedData {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Someone else wrote the key since we read it.
    CasMismatch,
    Other,
}

/// Shared data in memory with Envoy's semantics (the CAS is checked only for a key that
/// exists; every write takes the next version): the store of the CLI, tests and benches.
#[derive(Debug, Default)]
pub struct MemoryShared {
    entries: std::cell::RefCell<std::collections::HashMap<String, (Vec<u8>, u32)>>,
    version: std::cell::Cell<u32>,
}

impl SharedData for MemoryShared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.entries.try_borrow().ok()?.get(key).cloned()
    }
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut entries = self.entries.try_borrow_mut().map_err(|_| SetError::Other)?;
        if let Some((_, current)) = entries.get(key) {
            if cas != 0 && cas != *current {
                return Err(SetError::CasMismatch);
            }
        }
        let version = self.version.get().wrapping_add(1).max(1);
        self.version.set(version);
        entries.insert(key.to_string(), (value.to_vec(), version));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::encoded_separator;

    #[test]
    fn json_too_deep_names_the_limit() {
        let limits = crate::policy::Limits::for_tests();
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(20), "]".repeat(20));
        let e = super::llm::json_arguments(&deep, &limits, "openai_chat").unwrap_err();
        assert_eq!(
            (e.reason, e.rule.as_str(), e.message.as_str()),
            (
                crate::decision::Reason::BodyMalformed,
                "openai_chat",
                "function arguments: JSON nesting exceeds the depth limit (limits.max_json_depth = 16)"
            )
        );
        let e = super::llm::object(deep.as_bytes(), &limits, "openai_chat").unwrap_err();
        assert_eq!(
            (e.rule.as_str(), e.message.as_str()),
            (
                "limits.max_json_depth",
                "JSON nesting exceeds the depth limit (limits.max_json_depth = 16)"
            )
        );
    }

    #[test]
    fn needlessly_encoded_paths_are_refused() {
        for yes in [
            "/m%63p",
            "/%6Dcp",
            "/mcp/%61dmin",
            "/api/x%3Bjsessionid=1",
            "/a%7e",
            "/a%2D",
            "/a%5F",
        ] {
            assert_eq!(
                super::path_problem(yes),
                Some("percent-encodes a letter, digit, '-', '_', '~' or ';'"),
                "{yes}"
            );
        }
        for no in ["/mcp", "/files/a%20b", "/a%25", "/q%3F", "/%", "/%6", "/%zz", "/é"] {
            assert_eq!(super::path_problem(no), None, "{no}");
        }
    }

    #[test]
    fn encoded_separators_are_found_in_either_case() {
        for yes in ["%2e", "%2E", "a/%2f", "%2F", "x%5cy", "%5C", "%%2e", "%252%2e"] {
            assert!(encoded_separator(yes), "{yes}");
        }
        for no in [
            "", "%", "%2", "%5", "%25", "%2g", "%5d", "2e", "%%", "%e2", "/a/b.c", "é%2",
        ] {
            assert!(!encoded_separator(no), "{no}");
        }
    }
}
