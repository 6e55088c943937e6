//! MCP's mirror headers (protocol revision 2026-07-28, SEP-2243): `Mcp-Method`, `Mcp-Name`
//! and `Mcp-Param-*` repeat parts of the JSON-RPC body so that intermediaries (a router,
//! Envoy's RBAC or rate limits, another gateway) can act on a request without parsing it.
//! aigate judges the body. A request whose headers say something else would be routed,
//! counted or allowed as one request and run as another, so it is refused
//! (`body_malformed`, rule `mcp.mirror`) as MCP servers must refuse it: HTTP 400 with the
//! JSON-RPC error `-32020` (HeaderMismatch).
//!
//! A header's claim must hold for every message of the body: in a batch (older protocol
//! revisions, which send no mirror headers) each message must carry what the header says.
//!
//! Which argument an `Mcp-Param-{Name}` header mirrors is declared by the tool's schema
//! (`x-mcp-header`), which aigate sees only when the catalogue repeats it
//! (`tools.<name>.param_headers`). Declared, the header must carry exactly that argument's
//! value and no undeclared header may ride along; undeclared, its value must at least be
//! the value of one of the call's arguments (at any depth of objects), or it describes
//! another call than the one the body makes.
//! Values are bytes: plain visible ASCII compared exactly, or the `=?base64?…?=` sentinel
//! decoded first (canonical base64 of UTF-8 text, or it agrees with nothing).

use super::mcp::{McpAction, McpBody, McpMessage};
use super::{Headers, Repeated};
use crate::authz::shown;
use crate::decision::{Denial, Reason};
use crate::policy::Tool;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// The rule a mirror header that disagrees with the body is refused under.
pub const RULE: &str = "mcp.mirror";
/// MCP's JSON-RPC error code for a header that disagrees with the body (HeaderMismatch).
pub const HEADER_MISMATCH: i64 = -32020;

const METHOD: &str = "mcp-method";
const NAME: &str = "mcp-name";
const PARAM: &str = "mcp-param-";
const SENTINEL_OPEN: &[u8] = b"=?base64?";
const SENTINEL_CLOSE: &[u8] = b"?=";
const BAD_SENTINEL: &str = "is not a valid =?base64?…?= value (canonical base64 of UTF-8 text)";
const NEEDLESS_SENTINEL: &str =
    "wraps in =?base64?…?= a value that goes plain, which a filter matching header text would not see as that value";

fn mismatch(message: impl Into<String>) -> Denial {
    Denial {
        jsonrpc_code: Some(HEADER_MISMATCH),
        ..Denial::new(Reason::BodyMalformed, RULE, message)
    }
}

/// Whether a header name is one of the mirror headers (`Mcp-Method`, `Mcp-Name`,
/// `Mcp-Param-*`), in any case.
pub fn is_mirror(name: &str) -> bool {
    name.eq_ignore_ascii_case(METHOD) || name.eq_ignore_ascii_case(NAME) || is_param(name)
}

/// Whether a header name is an `Mcp-Param-*` one, in any case.
pub fn is_param(name: &str) -> bool {
    name.as_bytes()
        .get(..PARAM.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PARAM.as_bytes()))
}

/// The member of `params` that `Mcp-Name` mirrors, for the methods that name a target.
fn target_member(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        // The tasks extension (SEP-2663) names the task a request is about.
        "tasks/get" | "tasks/result" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

/// What `Mcp-Name` mirrors in a message: the target its method names, if it gives one as
/// a string. Read while the message is parsed, before its params are taken apart.
pub fn target(method: &str, params: &Map<String, Value>) -> Option<String> {
    let member = target_member(method)?;
    params.get(member)?.as_str().map(str::to_owned)
}

/// Refuses a request whose mirror headers disagree with its JSON-RPC body (`tools` is the
/// catalogue, for the headers its tools declare), are repeated (readers taking the first
/// and the last would act on different requests), or carry a value that has no one reading.
pub fn check(headers: &Headers, body: &McpBody, tools: &HashMap<String, Tool>) -> Result<(), Denial> {
    let method = one(headers, METHOD, "Mcp-Method")?
        .map(|v| plain(v).map_err(|p| mismatch(format!("Mcp-Method header {p}"))))
        .transpose()?;
    let name = one(headers, NAME, "Mcp-Name")?
        .map(|v| decode(v).map_err(|p| mismatch(format!("Mcp-Name header {p}"))))
        .transpose()?;
    let params = params(headers)?;
    for (i, m) in body.messages.iter().enumerate() {
        let at = At {
            batch: body.batch,
            index: i,
        };
        if let Some(header) = method {
            check_method(header, m, at)?;
        }
        if let Some(header) = &name {
            check_name(header, m, at)?;
        }
        for param in &params {
            check_param(param, m, at, tools)?;
        }
    }
    Ok(())
}

/// Refuses mirror headers on a request that carries no JSON-RPC message (MCP's `GET` and
/// `DELETE`): they name a method or a target the request does not have.
pub fn check_bodiless(headers: &Headers, http_method: &str) -> Result<(), Denial> {
    match headers.names().find(|n| is_mirror(n)) {
        Some(n) => Err(mismatch(format!(
            "header {} mirrors a JSON-RPC message, but a {http_method} request carries none",
            shown(n)
        ))),
        None => Ok(()),
    }
}

/// Which message of the body a header is compared with, for the message.
#[derive(Clone, Copy)]
struct At {
    batch: bool,
    index: usize,
}

impl At {
    /// "the body's tool name \"x\"", or in a batch "the tool name \"x\" of message 2 of the batch".
    fn says(self, what: &str, value: Option<&str>) -> String {
        let value = value.map(|v| format!(" {}", shown(v))).unwrap_or_default();
        if self.batch {
            format!("the {what}{value} of message {} of the batch", self.index + 1)
        } else {
            format!("the body's {what}{value}")
        }
    }

    /// "the body", or "message 2 of the batch".
    fn message(self) -> String {
        if self.batch {
            format!("message {} of the batch", self.index + 1)
        } else {
            "the body".to_string()
        }
    }
}

fn one<'h>(headers: &'h Headers, name: &'h str, label: &str) -> Result<Option<&'h [u8]>, Denial> {
    headers
        .one(name)
        .map_err(|Repeated| mismatch(format!("{label} appears more than once")))
}

/// An `Mcp-Param-{name}` header and the value it carries, decoded.
struct Param<'h> {
    /// The header's name as sent.
    header: &'h str,
    /// The name the tool's schema gives (`x-mcp-header`): the header's name without its prefix.
    name: &'h str,
    value: Cow<'h, [u8]>,
    /// Sent as a `=?base64?…?=` sentinel: text only (a string argument), never a number or
    /// a boolean, which always go plain.
    wrapped: bool,
    /// The plain value read as a JSON number, read once: it is compared with every
    /// fractional argument of the call, and a call may hold thousands.
    number: Option<f64>,
}

/// The `Mcp-Param-*` headers a request carries, after checking that none appears twice
/// and that each carries a value with one reading.
fn params(headers: &Headers) -> Result<Vec<Param<'_>>, Denial> {
    let sent: Vec<(&str, &[u8])> = headers.pairs().filter(|(n, _)| is_param(n)).collect();
    if sent.is_empty() {
        return Ok(Vec::new());
    }
    // How often each name appears, in any case: a request may carry many headers, and
    // each is compared with the others by these counts, not one by one.
    let mut times: HashMap<String, usize> = HashMap::new();
    for (n, _) in &sent {
        *times.entry(n.to_ascii_lowercase()).or_default() += 1;
    }
    let mut params: Vec<Param> = Vec::new();
    // CGI-style servers (WSGI, Rack, PHP) read `_` as `-`: to them `Mcp-Param-Tenant_Id`
    // and `Mcp-Param-Tenant-Id` are one header, given twice.
    let folded = |n: &str| n.replace('_', "-").to_ascii_lowercase();
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (n, value) in sent {
        if let Some(p) = seen.get(&folded(n)) {
            return Err(mismatch(if p.eq_ignore_ascii_case(n) {
                format!("header {} appears more than once", shown(n))
            } else {
                format!(
                    "headers {} and {} are one header to servers that read '_' as '-', given twice",
                    shown(p),
                    shown(n)
                )
            }));
        }
        if times.get(&n.to_ascii_lowercase()).is_some_and(|t| *t > 1) {
            return Err(mismatch(format!("{n} appears more than once")));
        }
        let decoded = decode(value).map_err(|p| mismatch(format!("header {} {p}", shown(n))))?;
        let wrapped = matches!(decoded, Cow::Owned(_));
        let number = (!wrapped)
            .then(|| std::str::from_utf8(&decoded).ok())
            .flatten()
            .and_then(|h| serde_json::from_str::<Number>(h).ok())
            .and_then(|h| h.as_f64());
        seen.insert(folded(n), n);
        params.push(Param {
            header: n,
            name: n.get(PARAM.len()..).unwrap_or_default(),
            wrapped,
            value: decoded,
            number,
        });
    }
    Ok(params)
}

fn check_method(header: &[u8], m: &McpMessage, at: At) -> Result<(), Denial> {
    match m.method.as_deref() {
        Some(method) if header == method.as_bytes() => Ok(()),
        Some(method) => Err(mismatch(format!(
            "Mcp-Method header does not match {}",
            at.says("method", Some(method))
        ))),
        None => Err(mismatch(format!(
            "Mcp-Method header names a method, but {} is a response, which has none",
            at.message()
        ))),
    }
}

fn check_name(header: &[u8], m: &McpMessage, at: At) -> Result<(), Denial> {
    let Some(method) = m.method.as_deref() else {
        return Err(mismatch(format!(
            "Mcp-Name header names a target, but {} is a response, which names none",
            at.message()
        )));
    };
    let Some(member) = target_member(method) else {
        return Err(mismatch(format!(
            "Mcp-Name header names a target, but {} names none",
            at.says("method", Some(method))
        )));
    };
    let Some(target) = m.target.as_deref() else {
        return Err(mismatch(format!(
            "Mcp-Name header names a target, but {} gives no params.{member} as a string",
            at.says("method", Some(method))
        )));
    };
    if header == target.as_bytes() {
        return Ok(());
    }
    // Tool and prompt names are shown, as in aigate's other messages; URIs and task ids are not.
    let says = match method {
        "tools/call" => at.says("tool name", Some(target)),
        "prompts/get" => at.says("prompt name", Some(target)),
        _ => at.says(&format!("params.{member} of {method}"), None),
    };
    Err(mismatch(format!("Mcp-Name header does not match {says}")))
}

fn check_param(param: &Param, m: &McpMessage, at: At, tools: &HashMap<String, Tool>) -> Result<(), Denial> {
    let header = shown(param.header);
    let McpAction::ToolCall { name, arguments } = &m.action else {
        return Err(mismatch(format!(
            "header {header} mirrors a tool argument, but {} is no tools/call",
            match m.method.as_deref() {
                Some(method) => at.says("method", Some(method)),
                None => format!("{} (a response)", at.message()),
            }
        )));
    };
    let declared = tools.get(name).map(|t| &t.param_headers).filter(|d| !d.is_empty());
    let Some(declared) = declared else {
        // Which argument it mirrors is unknown here: its value must be one the call gives.
        return if any_argument_is(arguments, param) {
            Ok(())
        } else {
            Err(mismatch(format!(
                "header {header} mirrors a tool argument, but {} has no argument of that value",
                at.says("tools/call", None)
            )))
        };
    };
    let Some((_, arg)) = declared.iter().find(|(n, _)| n.eq_ignore_ascii_case(param.name)) else {
        return Err(mismatch(format!(
            "header {header} mirrors no argument of tool {} (its param_headers declare {})",
            shown(name),
            declared
                .iter()
                .map(|(n, _)| format!("Mcp-Param-{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    match arg.find(arguments) {
        Some(value) if mirrors(value, param) => Ok(()),
        Some(Value::Null) | None => Err(mismatch(format!(
            "header {header} mirrors argument {}, which {} does not give",
            shown(&arg.to_string()),
            at.says("tools/call", None)
        ))),
        Some(_) => Err(mismatch(format!(
            "header {header} does not match argument {} of {}",
            shown(&arg.to_string()),
            at.says("tools/call", None)
        ))),
    }
}

/// Whether a header carries `value` as MCP mirrors it: a string as itself (plain, or as a
/// sentinel when it cannot go plain), a boolean as `true` or `false`, an integer as its
/// decimal digits exactly (`100`, not `1e2` nor `100.0`: a filter matching header text
/// must see the number that runs), another number as a JSON number equal to it. Objects,
/// arrays and `null` are never mirrored.
fn mirrors(value: &Value, header: &Param) -> bool {
    let plain = || (!header.wrapped).then_some(header.value.as_ref());
    match value {
        Value::String(s) => s.as_bytes() == header.value.as_ref(),
        Value::Bool(b) => plain() == Some(if *b { &b"true"[..] } else { b"false" }),
        Value::Number(n) if !n.is_f64() => plain() == Some(n.to_string().as_bytes()),
        Value::Number(n) => header.number.zip(n.as_f64()).is_some_and(|(h, n)| h == n),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// Whether some argument, at any depth of objects (where `x-mcp-header` may stand), holds
/// the value the header carries.
fn any_argument_is(arguments: &Value, header: &Param) -> bool {
    match arguments {
        Value::Object(members) => members.values().any(|v| any_argument_is(v, header)),
        v => mirrors(v, header),
    }
}

/// The text a mirror header carries: the value itself when it is plain visible ASCII, or
/// the UTF-8 text a `=?base64?…?=` sentinel wraps. Anything else has no one reading: an
/// intermediary reading header bytes as Latin-1 (Python's ASGI servers do) and one reading
/// them as UTF-8 would see different names.
fn decode(value: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    if !(value.starts_with(SENTINEL_OPEN) && value.ends_with(SENTINEL_CLOSE)) {
        return plain(value)
            .map(Cow::Borrowed)
            .map_err(|_| "is neither plain visible ASCII nor a =?base64?…?= value");
    }
    let payload = value
        .strip_prefix(SENTINEL_OPEN)
        .and_then(|rest| rest.strip_suffix(SENTINEL_CLOSE))
        .ok_or(BAD_SENTINEL)?;
    let text = STANDARD.decode(payload).map_err(|_| BAD_SENTINEL)?;
    // Only the canonical spelling: decoders that tolerate other padding or trailing bits
    // would accept what stricter ones refuse.
    if STANDARD.encode(&text).as_bytes() != payload || std::str::from_utf8(&text).is_err() {
        return Err(BAD_SENTINEL);
    }
    // Only a value that cannot go plain: a name that can (`refund_order`) wrapped anyway
    // is one a filter matching header text (Envoy's RBAC, a rate limit) does not see as
    // that name, while the server decodes it and acts on it.
    if !needs_sentinel(&text) {
        return Err(NEEDLESS_SENTINEL);
    }
    Ok(Cow::Owned(text))
}

/// A value clients must send as a sentinel (SEP-2243): one that is empty, holds bytes
/// other than visible ASCII and spaces, starts or ends with a space, or is itself spelled
/// as a sentinel.
fn needs_sentinel(text: &[u8]) -> bool {
    text.is_empty()
        || plain(text).is_err()
        || text.starts_with(b" ")
        || text.ends_with(b" ")
        || (text.starts_with(SENTINEL_OPEN) && text.ends_with(SENTINEL_CLOSE))
}

fn plain(value: &[u8]) -> Result<&[u8], &'static str> {
    if value.iter().all(|b| (0x20..=0x7e).contains(b)) {
        Ok(value)
    } else {
        Err("is not plain visible ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_decode_only_when_canonical() {
        assert_eq!(decode(b"get_order").unwrap().as_ref(), b"get_order");
        assert_eq!(
            decode("=?base64?Y2Fmw6k=?=".as_bytes()).unwrap().as_ref(),
            "café".as_bytes()
        );
        assert_eq!(decode(b"=?base64??=").unwrap().as_ref(), b"");
        assert_eq!(decode(b"=?base64?IHBhZGRlZCA=?=").unwrap().as_ref(), b" padded ");
        // A value that goes plain is sent plain: wrapped, a filter would not read it.
        for needless in ["=?base64?cmVmdW5kX29yZGVy?=", "=?base64?YSBi?="] {
            assert_eq!(decode(needless.as_bytes()), Err(NEEDLESS_SENTINEL), "{needless}");
        }
        // The markers are lower-case: another spelling is a plain value.
        assert_eq!(decode(b"=?BASE64?eA==?=").unwrap().as_ref(), b"=?BASE64?eA==?=");
        for bad in [
            &b"=?base64?Y2Fmw6k?="[..], // padding missing
            b"=?base64?eR==?=",         // non-zero trailing bits
            b"=?base64?*x==?=",
            b"=?base64?/w==?=", // 0xff: not UTF-8
            b"=?base64?=",      // the markers overlap
        ] {
            assert_eq!(decode(bad), Err(BAD_SENTINEL), "{}", String::from_utf8_lossy(bad));
        }
        for bad in ["café".as_bytes(), b"a\tb", b"\xff"] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn mirror_header_names_in_any_case() {
        for yes in ["mcp-method", "Mcp-Name", "MCP-PARAM-Region", "mcp-param-"] {
            assert!(is_mirror(yes), "{yes}");
        }
        for no in [
            "mcp-session-id",
            "mcp-protocol-version",
            "mcp-param",
            "mcp-methods",
            "é",
        ] {
            assert!(!is_mirror(no), "{no}");
        }
    }
}
