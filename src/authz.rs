//! The action and data boundaries: may this principal take this action, on these
//! arguments, against this data?

use crate::decision::{Denial, Reason};
use crate::identity::Principal;
use crate::policy::{
    Constraint, DataRule, Located, McpServerRule, PatternRef, Policy, PromptRule, ResourceRule, StoreRule,
    TemplatePart, Tool,
};
use crate::request::mcp::Listing;
use serde_json::{Map, Value};
use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet};

/// Judges a tool call: catalogue, scope, claim bindings, argument constraints.
/// Approval for external impact is judged afterwards by `approval`.
pub fn tool_call<'p>(policy: &'p Policy, principal: &Principal, name: &str, args: &Value) -> Result<&'p Tool, Denial> {
    let tool = policy.tools.get(name).ok_or_else(|| {
        Denial::new(
            Reason::ToolUnknown,
            "tools",
            format!("tool {} is not in the catalogue", shown(name)),
        )
    })?;
    if !principal.grants(policy, &tool.intent) {
        let mut d = Denial::new(
            Reason::ScopeMissing,
            format!("tools.{name}"),
            format!("calling {name:?} needs a scope granting intent {:?}", tool.intent),
        );
        d.required_scope = Some(tool.intent.clone());
        return Err(d);
    }
    for (ptr, claim) in &tool.bind {
        let arg = match ptr.locate(args) {
            Located::Found(v) => Some(v),
            Located::Respelled(key) => {
                return Err(Denial::new(
                    Reason::BindingMismatch,
                    format!("tools.{name}.bind.{ptr}"),
                    respelled(ptr, &key),
                ))
            }
            Located::Absent | Located::Blocked(_) => None,
        };
        let bound = principal.attribute(claim);
        let holds = match (arg, &bound) {
            (Some(a), Some(b)) => same_value(a, b),
            _ => false,
        };
        if !holds {
            // Say which side is missing: an argument the call left out, or a claim the
            // token does not carry (or carries as nothing a value can equal).
            let why = match (arg, &bound) {
                (None, _) => format!("argument {ptr} is required: it must equal the caller's {claim:?} claim"),
                (_, None) => format!(
                    "argument {ptr} must equal the caller's {claim:?} claim, which the caller's token does not carry"
                ),
                _ => format!("argument {ptr} must equal the caller's {claim:?} claim"),
            };
            return Err(Denial::new(
                Reason::BindingMismatch,
                format!("tools.{name}.bind.{ptr}"),
                why,
            ));
        }
    }
    constraints(tool, args)?;
    Ok(tool)
}

/// Checks a call's arguments against its tool's `constraints`: what holds of the arguments
/// alone, whoever calls (`aigate approve` refuses to sign a grant for arguments that fail).
pub fn constraints(tool: &Tool, args: &Value) -> Result<(), Denial> {
    let name = &tool.name;
    for (ptr, c) in &tool.constraints {
        let found = match ptr.locate(args) {
            Located::Found(v) => Some(v),
            Located::Absent => None,
            Located::Blocked(at) => {
                return Err(Denial::new(
                    Reason::ArgumentViolation,
                    format!("tools.{name}.constraints.{ptr}"),
                    format!(
                    "argument {at} is not what {ptr} reaches into (an object for a member's name, an array for an index), so {ptr} cannot be checked: send it as JSON of that shape, not as text"
                ),
                ))
            }
            Located::Respelled(key) => {
                return Err(Denial::new(
                    Reason::ArgumentViolation,
                    format!("tools.{name}.constraints.{ptr}"),
                    respelled(ptr, &key),
                ))
            }
        };
        if let Err(why) = check(c, found) {
            return Err(Denial::new(
                Reason::ArgumentViolation,
                format!("tools.{name}.constraints.{ptr}"),
                format!("argument {ptr} {why}"),
            ));
        }
    }
    Ok(())
}

/// Why an argument the policy judges is refused when a member names it in another spelling:
/// a server binding names loosely would act on that member, which aigate did not judge.
fn respelled(ptr: &crate::policy::ArgPath, key: &str) -> String {
    format!(
        "argument {ptr} is sent as {}, which servers binding names loosely (Go and ASP.NET ignore case, \
         pydantic reads camelCase aliases) read as it, unchecked: send it only as the policy names it",
        shown(key)
    )
}

/// Claims may carry ids as numbers while tools take strings (or the reverse): compare
/// scalars by their JSON text, never structures loosely. An empty claim (`""`, `[]`, `{}`,
/// null) binds nothing, as it fills no template: a backend may read an empty customer id
/// as "every customer". Nor does a number that is not an exact integer: behind jwt_authn
/// every claim number travelled as a double, and an id of 2^53 or more came out rounded,
/// equal to the rounded form of other ids. Nor, likewise, does an argument number beyond
/// 2^53 − 1: a JavaScript server reads `9007199254740993` as another customer's id,
/// `…992` (send such ids as strings).
fn same_value(arg: &Value, claim: &Value) -> bool {
    const SAFE: u64 = (1 << 53) - 1;
    if let Value::Number(n) = arg {
        if !(n.as_u64().is_some_and(|u| u <= SAFE) || n.as_i64().is_some_and(|i| i.unsigned_abs() <= SAFE)) {
            return false;
        }
    }
    if blank(claim) || claim.as_number().is_some_and(serde_json::Number::is_f64) {
        return false;
    }
    match (arg, claim) {
        (Value::String(a), Value::Number(b)) | (Value::Number(b), Value::String(a)) => *a == b.to_string(),
        (a, b) => a == b && !a.is_null(),
    }
}

/// A value that names nothing: `null`, `""`, `[]`, `{}`.
fn blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(_) => false,
    }
}

/// Checks one constraint. A list argument is declared by `max_items`: the scalar rules then
/// apply to every element. Without it a scalar rule needs a single value, so a list cannot
/// stand in for one (`[]` would satisfy every rule with nothing checked).
fn check(c: &Constraint, v: Option<&Value>) -> Result<(), String> {
    // `null` is no value to a server that reads an absent argument as null; an empty
    // value is "every customer" to a backend that filters by it.
    let v = match v {
        Some(v) if c.required && blank(v) => return Err("is required and must not be empty".into()),
        Some(v) => v,
        None if c.required => return Err("is required".into()),
        None => return Ok(()),
    };
    match (v, c.max_items) {
        (Value::Array(items), Some(max)) => {
            if items.len() > max {
                return Err(format!("has more than {max} items"));
            }
            items.iter().try_for_each(|item| scalar(c, item))
        }
        (Value::Array(_), None) if has_scalar_rules(c) => {
            Err("must be a single value, not a list (max_items declares a list)".into())
        }
        (_, Some(_)) => Err("must be an array".into()),
        _ => scalar(c, v),
    }
}

fn has_scalar_rules(c: &Constraint) -> bool {
    c.one_of.is_some()
        || c.min.is_some()
        || c.max.is_some()
        || c.max_length.is_some()
        || c.prefix_in.is_some()
        || c.suffix_in.is_some()
}

/// An e-mail address and nothing else: `"eve@evil.com, bob@example.com"` ends with
/// `@example.com` too, and a mail tool would send to both.
fn single_address(s: &str) -> bool {
    s.matches('@').count() == 1
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>' | '"' | '(' | ')' | ':'))
}

/// Is `s` one address of mail `domain`? The domain compares without case (as DNS does);
/// the mailbox must be a plain dot-atom (RFC 5322 `atext`, or non-ASCII text as RFC 6532
/// allows), holding no `%` or `!` (old relay syntax some mail servers still route by:
/// `eve%evil.com@acme.example` goes to evil.com) and no RFC 2047 encoded word
/// (`=?utf-8?q?eve=40evil.com?=`: mail libraries decode it into another address).
fn in_domain(s: &str, domain: &str) -> bool {
    single_address(s)
        && s.split_once('@')
            .is_some_and(|(local, at)| plain_mailbox(local) && at.eq_ignore_ascii_case(domain))
}

fn plain_mailbox(local: &str) -> bool {
    // Non-ASCII letters are allowed (RFC 6531), but not forms a mail system may map onto
    // ASCII (`＠`, `﹫` are `@` after NFKC) nor invisible ones: `a＠evil.io@corp.com` must
    // not read as a mailbox at evil.io anywhere.
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || (!c.is_ascii()
                && !crate::request::compatibility_form(c)
                && !crate::request::default_ignorable(c)
                && !c.is_control())
            || "#$&'*+-/=?^_`{|}~".contains(c)
    };
    !local.contains("=?")
        && !local.contains("?=")
        && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

fn scalar(c: &Constraint, v: &Value) -> Result<(), String> {
    if let Some(list) = &c.one_of {
        if !list.iter().any(|allowed| allowed == v) {
            return Err("is not one of the allowed values".into());
        }
    }
    if c.max.is_some() || c.min.is_some() {
        let n = v.as_f64().ok_or("must be a number")?;
        if c.max.is_some_and(|max| n > max) {
            return Err("is above the allowed maximum".into());
        }
        if c.min.is_some_and(|min| n < min) {
            return Err("is below the allowed minimum".into());
        }
    }
    let needs_text = c.max_length.is_some() || c.prefix_in.is_some() || c.suffix_in.is_some();
    if needs_text {
        let s = v.as_str().ok_or("must be a string")?;
        if c.max_length.is_some_and(|max| s.chars().count() > max) {
            return Err("is too long".into());
        }
        if let Some(p) = &c.prefix_in {
            if !p.iter().any(|p| s.starts_with(p.as_str())) {
                return Err("does not start with an allowed prefix".into());
            }
            // A path or URL under the prefix must stay under it once a server resolves it:
            // `/files/acme/../globex/x` starts with `/files/acme/` and opens globex's file.
            if dot_segments(s) || crate::request::encoded_separator(s) || s.contains("%25") || decodes_elsewhere(s) {
                return Err("holds a dot segment or an encoded separator that could leave the allowed prefix".into());
            }
        }
        if let Some(sfx) = &c.suffix_in {
            let ok = |x: &String| match x.strip_prefix('@') {
                Some(domain) => in_domain(s, domain),
                None => s.ends_with(x.as_str()),
            };
            if !sfx.iter().any(ok) {
                return Err(if sfx.iter().any(|x| x.starts_with('@')) {
                    "is not a single address in an allowed domain".into()
                } else {
                    "does not end with an allowed suffix".into()
                });
            }
        }
    }
    Ok(())
}

/// May this caller's requests use `model`? Allowed by `models.allow`, or by the
/// `models` of a named scope the caller holds.
pub fn model(policy: &Policy, principal: &Principal, model: &str) -> Result<(), Denial> {
    let global = policy.models.iter().any(|p| p.matches(model));
    if global
        || policy
            .scope_models
            .iter()
            .any(|(scope, pats)| pats.iter().any(|p| p.matches(model)) && holds(policy, principal, scope))
    {
        return Ok(());
    }
    Err(Denial::new(
        Reason::ModelNotAllowed,
        "models",
        format!("model {} is not allowed for this caller", shown(model)),
    ))
}

/// Does the caller hold the named scope itself (not an intent it grants)? The token must
/// carry it (or a pattern covering its name), and so must the workload's ceiling and the
/// token issuer's (`scopes` of an issuer): a partner's IdP grants no more models than tools.
fn holds(policy: &Policy, principal: &Principal, scope: &str) -> bool {
    let covers = |held: &String| {
        held == scope || (!policy.scopes.contains_key(held) && PatternRef::parse(held).is_ok_and(|p| p.matches(scope)))
    };
    let ceiling = match principal.ceiling.and_then(|i| policy.ceilings.get(i)) {
        Some(c) => c.scopes.iter().any(covers),
        None => policy.ceilings.is_empty(),
    };
    let issuer = principal
        .issuer
        .and_then(|i| policy.identity.issuer_scopes.get(i))
        .is_none_or(|(_, scopes)| scopes.iter().any(covers));
    ceiling && issuer && principal.scopes.iter().any(covers)
}

/// A caller-supplied name in a message: bounded, so a huge name cannot bloat replies.
pub fn shown(name: &str) -> String {
    const MAX: usize = 64;
    match name.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", name.get(..cut).unwrap_or("")),
        None => format!("{name:?}"),
    }
}

/// The rules of `data.vector_stores` or `data.files`, with the ids each lets one caller
/// name: filled from its claims once, at the first id asked about. A request may name
/// thousands of stores or files, and a token's claim may list thousands: filling every
/// rule again for each id would cost their product.
pub struct Listed<'p> {
    rules: &'p [StoreRule],
    kind: &'static str,
    what: &'static str,
    principal: &'p Principal,
    ids: OnceCell<Vec<HashSet<String>>>,
}

impl<'p> Listed<'p> {
    /// The rules of `data.vector_stores`: the retrieval stores the model may search.
    pub fn vector_stores(policy: &'p Policy, principal: &'p Principal) -> Listed<'p> {
        Listed::new(&policy.vector_stores, "vector_stores", "vector store", principal)
    }

    /// The rules of `data.files`: the provider-stored files the request may put before the
    /// model (a file id names one tenant's upload like a store id does).
    pub fn files(policy: &'p Policy, principal: &'p Principal) -> Listed<'p> {
        Listed::new(&policy.files, "files", "file", principal)
    }

    fn new(rules: &'p [StoreRule], kind: &'static str, what: &'static str, principal: &'p Principal) -> Listed<'p> {
        Listed {
            rules,
            kind,
            what,
            principal,
            ids: OnceCell::new(),
        }
    }

    /// The first rule whose ids, filled from the caller, include `id`; none →
    /// `data_boundary`.
    pub fn rule(&self, id: &str) -> Result<&'p StoreRule, Denial> {
        let ids = self.ids.get_or_init(|| {
            self.rules
                .iter()
                .map(|r| r.ids.iter().flat_map(|t| fill_each(t, self.principal)).collect())
                .collect()
        });
        self.rules
            .iter()
            .zip(ids)
            .find(|(_, ids)| ids.contains(id))
            .map(|(r, _)| r)
            .ok_or_else(|| {
                Denial::new(
                    Reason::DataBoundary,
                    format!("data.{}", self.kind),
                    format!("{} {} is outside the caller's data boundary", self.what, shown(id)),
                )
            })
    }
}

/// The rule whose URL prefix, filled from the caller, a remote MCP server the provider is
/// asked to call starts with; none → `data_boundary`.
pub fn mcp_server<'p>(policy: &'p Policy, principal: &Principal, url: &str) -> Result<&'p McpServerRule, Denial> {
    let outside = || {
        Denial::new(
            Reason::DataBoundary,
            "data.mcp_servers",
            "remote MCP server is outside the caller's data boundary",
        )
    };
    if leaves_its_prefix(url) {
        return Err(outside());
    }
    policy
        .mcp_servers
        .iter()
        .find(|r| fill(&r.url_prefix, principal).is_some_and(|prefix| url.starts_with(&prefix)))
        .ok_or_else(outside)
}

/// The rule naming an MCP prompt (`prompts/get`); none → `data_boundary`.
pub fn prompt<'p>(policy: &'p Policy, name: &str) -> Result<&'p PromptRule, Denial> {
    policy
        .prompts
        .iter()
        .find(|r| r.names.iter().any(|n| n.matches(name)))
        .ok_or_else(|| {
            Denial::new(
                Reason::DataBoundary,
                "data.prompts",
                format!("prompt {} is outside the caller's data boundary", shown(name)),
            )
        })
}

/// What one caller's scopes grant, remembered per intent (or data rule scope): judging a
/// long list asks the same few intents again for each item, and each asking reads every
/// scope the token holds, which may be hundreds.
pub struct Grants<'a> {
    policy: &'a Policy,
    principal: &'a Principal,
    known: RefCell<HashMap<String, bool>>,
}

impl<'a> Grants<'a> {
    pub fn new(policy: &'a Policy, principal: &'a Principal) -> Grants<'a> {
        Grants {
            policy,
            principal,
            known: RefCell::new(HashMap::new()),
        }
    }

    /// Whether the caller is granted `wanted` (see `Principal::grants`).
    pub fn grants(&self, wanted: &str) -> bool {
        if let Some(known) = self.known.borrow().get(wanted) {
            return *known;
        }
        let granted = self.principal.grants(self.policy, wanted);
        // Only the policy's intents and scopes are asked about: the memory stays small.
        self.known.borrow_mut().insert(wanted.to_string(), granted);
        granted
    }

    /// A tool the caller could call: catalogued, and its intent granted.
    pub fn usable(&self, name: &str) -> bool {
        self.policy.tools.get(name).is_some_and(|t| self.grants(&t.intent))
    }
}

/// May the caller see this item of an MCP list? A tool it may call, a prompt or resource
/// inside its data boundary with the rule's scope granted. A resource template is visible
/// when its fixed part (up to the first `{`) already lies inside a resource rule and what
/// follows cannot leave it: only simple expressions (`{name}`, which expand percent-encoded,
/// so never as a new path segment) and no dot segments or encoded separators around them. A
/// template whose variables could name another tenant's data stays hidden.
pub fn visible(policy: &Policy, principal: &Principal, listing: Listing, item: &Map<String, Value>) -> bool {
    shows(&Grants::new(policy, principal), listing, item)
}

/// `visible`, with what the caller is granted remembered across the items of one answer.
pub fn shows(grants: &Grants, listing: Listing, item: &Map<String, Value>) -> bool {
    let (policy, principal) = (grants.policy, grants.principal);
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let granted = |rule: &dyn DataRule| grants.grants(rule.scope());
    match listing {
        Listing::Tools => text("name").is_some_and(|n| grants.usable(n)),
        Listing::Prompts => text("name").is_some_and(|n| prompt(policy, n).is_ok_and(|r| granted(r))),
        Listing::Resources => text("uri").is_some_and(|u| resource(policy, principal, u).is_ok_and(|r| granted(r))),
        Listing::ResourceTemplates => text("uriTemplate").is_some_and(|t| {
            let fixed = t.split('{').next().unwrap_or_default();
            stays_put(t) && resource(policy, principal, fixed).is_ok_and(|r| granted(r))
        }),
        // Whose a task is lies in the host's shared data: the engine asks it.
        Listing::Tasks => false,
    }
}

/// A data rule matched: its scope must be granted, else `scope_missing` naming the rule.
pub fn data_scope(policy: &Policy, principal: &Principal, rule: &dyn DataRule) -> Result<(), Denial> {
    let scope = rule.scope();
    if principal.grants(policy, scope) {
        return Ok(());
    }
    let mut d = Denial::new(
        Reason::ScopeMissing,
        rule.rule(),
        format!("this data needs scope {scope:?}"),
    );
    d.required_scope = Some(scope.to_string());
    Err(d)
}

/// A URI template whose expressions are all simple and whose literal text has no dot
/// segment, encoded separator or other way out (`leaves_its_prefix`): however it is filled,
/// it names a URI below its fixed part.
fn stays_put(template: &str) -> bool {
    // The literal text twice: without the expressions (a dot beside one could become a
    // dot segment once filled) and with each filled (`{kind}/{name}` is no empty segment).
    let (mut literal, mut filled) = (String::new(), String::new());
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('{') {
        literal.push_str(before);
        filled.push_str(before);
        let Some((expression, tail)) = after.split_once('}') else {
            return false;
        };
        // Variable names (RFC 6570: name characters, dots only between them), expanded
        // percent-encoded in place or as query parameters (`{?q,lang}`, `{&page}`).
        let names = expression.strip_prefix(['?', '&']).unwrap_or(expression);
        let simple = names.split(',').all(|name| {
            name.split('.')
                .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        });
        if !simple {
            return false;
        }
        filled.push('x');
        rest = tail;
    }
    literal.push_str(rest);
    filled.push_str(rest);
    !leaves_its_prefix(&filled) && !dot_segments(&literal)
}

/// Whether a URI that passes a prefix test may reach something outside the prefix once a
/// server reads it: dot segments, encoded separators, whitespace or controls (URL parsers
/// drop tabs and newlines: `.\t.` is `..`), an encoded percent (`%252e` is `%2e` once
/// decoded).
fn leaves_its_prefix(uri: &str) -> bool {
    uri.chars().any(|c| c.is_whitespace() || c.is_control())
        || uri.contains("%25")
        || dot_segments(uri)
        || crate::request::encoded_separator(uri)
        || decodes_elsewhere(uri)
}

/// Ways a text that passes a prefix test becomes another once a server decodes or
/// normalises it: an empty segment after the scheme's (`acme//globex`: path joins read the
/// rest from the root), a needless percent-encoding (`%3b` is `;`, whose parameters servers
/// drop: `..%3b` is `..`), percent-encoded bytes that are no UTF-8 (an overlong `%c0%ae` is
/// `.` to lenient decoders), IIS's `%u002e`, characters normalisation turns into ASCII
/// (`‥`, `．`, `﹨`), as written or percent-encoded, and controls once decoded (`%00` ends a
/// path to file APIs, `.%09.` is `..` to a URL parser reading the decoded text) or a dot
/// segment once decoded (`..%20`, `.%E2%80%8B.`: see [`dot_segments`]).
fn decodes_elsewhere(text: &str) -> bool {
    let path = text.split_once("://").map_or(text, |(_, rest)| rest);
    let lower = text.to_ascii_lowercase();
    let iis = lower
        .as_bytes()
        .windows(6)
        .any(|w| w.starts_with(b"%u") && w.get(2..).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    let decoded = percent_decoded(text);
    path.contains("//")
        || crate::request::needless_encoding(text)
        || iis
        || text.chars().any(crate::request::compatibility_form)
        || match std::str::from_utf8(&decoded) {
            Ok(d) => {
                d.chars()
                    .any(|c| crate::request::compatibility_form(c) || c.is_control())
                    || dot_segments(d)
            }
            Err(_) => true,
        }
}

/// `text` with each `%XX` decoded to its byte (other bytes as they are).
pub(crate) fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A `.` or `..` segment, also as servers that drop `;` parameters (`..;x`), URL parsers
/// that drop tabs and newlines (`.\t.`), identifier mappings that drop characters Unicode
/// says to ignore (`.\u{200b}.`) and file systems that drop trailing spaces (`.. `, and
/// `..\u{a0}`, a space once normalised) read it; the last segment ends at a query or
/// fragment (`acme/..?` is `acme/..`). Those characters elsewhere (a zero-width joiner in
/// an emoji or a Persian word) make no dot segment.
fn dot_segments(uri: &str) -> bool {
    uri.split(['/', '\\']).any(|seg| {
        let read = seg.split([';', '?', '#']).next().unwrap_or("");
        // Most segments hold a letter: no dot segment, however read.
        if read.chars().any(char::is_alphanumeric) {
            return false;
        }
        let mut kept = read
            .chars()
            .filter(|c| !matches!(c, '\t' | '\n' | '\r') && !crate::request::default_ignorable(*c))
            .collect::<String>();
        kept.truncate(kept.trim_end_matches(char::is_whitespace).len());
        matches!(kept.as_str(), "." | "..")
    })
}

/// Like `fill`, but a template that is a single claim holding an array of strings
/// yields each of them (a token listing the stores its tenant owns).
fn fill_each(parts: &[TemplatePart], principal: &Principal) -> Vec<String> {
    if let [TemplatePart::Claim(c)] = parts {
        if let Some(Value::Array(items)) = principal.attribute(c).as_deref() {
            return items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                })
                .collect();
        }
    }
    fill(parts, principal).into_iter().collect()
}

/// The rule for `resources/read`: the URI must start with the rule's prefix filled with
/// the caller's claims; none → `data_boundary`.
pub fn resource<'p>(policy: &'p Policy, principal: &Principal, uri: &str) -> Result<&'p ResourceRule, Denial> {
    // Dot segments, plain or encoded, would let "docs://acme/../other/" pass a prefix test
    // on a server that decodes the URI before resolving it.
    if leaves_its_prefix(uri) {
        return Err(Denial::new(
            Reason::DataBoundary,
            "data.resources",
            "resource URI could leave its prefix once a server reads it (a dot or empty segment, an encoded separator or percent, a look-alike dot or slash)",
        ));
    }
    policy
        .resources
        .iter()
        .find(|r| fill(&r.uri_prefix, principal).is_some_and(|prefix| uri.starts_with(&prefix)))
        .ok_or_else(|| {
            Denial::new(
                Reason::DataBoundary,
                "data.resources",
                "resource is outside the caller's data boundary",
            )
        })
}

/// The rule a resource template lies under (`completion/complete` names one, to complete
/// its variables): one a list would show the caller, whose simple expressions cannot
/// leave the prefix once filled. Another (`{+path}`, `{/segments*}`, `{#x}`) expands
/// reserved characters or adds segments: completing it lists what lies elsewhere.
pub fn resource_template<'p>(
    policy: &'p Policy,
    principal: &Principal,
    template: &str,
) -> Result<&'p ResourceRule, Denial> {
    if !stays_put(template) {
        return Err(Denial::new(
            Reason::DataBoundary,
            "data.resources",
            "resource template could name URIs outside its prefix once filled (only simple {name} expressions stay put)",
        ));
    }
    resource(policy, principal, template)
}

/// Fills a template from the principal; `None` when a hole has no usable value, so a
/// missing claim never widens a boundary. Values containing `/` are refused for the same reason.
pub fn fill(parts: &[TemplatePart], principal: &Principal) -> Option<String> {
    let mut out = String::new();
    for p in parts {
        match p {
            TemplatePart::Literal(l) => out.push_str(l),
            TemplatePart::Claim(c) => {
                let v = match principal.attribute(c)?.as_ref() {
                    Value::String(s) => s.clone(),
                    // Only exact integers name something (see `same_value`).
                    Value::Number(n) if !n.is_f64() => n.to_string(),
                    _ => return None,
                };
                // A separator would move the boundary; a `%` would let a server that
                // decodes the filled part (`ac%6De` is `acme`) read another tenant's; a
                // `;` starts a segment parameter servers drop (`b;x` is `b` to Tomcat and
                // Spring); an invisible or compatibility character is dropped or mapped
                // by readers that normalise (`b\u{200b}` is `b`).
                if v.is_empty()
                    || v.contains(['/', '\\', '?', '#', '%', ';'])
                    || v.chars().any(|c| {
                        c.is_control() || crate::request::default_ignorable(c) || crate::request::compatibility_form(c)
                    })
                {
                    return None;
                }
                // In a URI's authority the host is what servers route by: `x@globex` is
                // user `x` at host globex, `globex:443` is globex, and IDNA maps
                // full-width letters onto ASCII ones. There a claim must be a plain name.
                let in_authority = out
                    .split_once("://")
                    .map(|(_, rest)| rest)
                    .or_else(|| out.strip_prefix("//"))
                    .is_some_and(|rest| !rest.contains(['/', '?', '#']));
                if in_authority
                    && !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
                {
                    return None;
                }
                out.push_str(&v);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::dot_segments;

    #[test]
    fn dot_segments_as_lenient_parsers_read_them() {
        for yes in [
            "a/../b", "a/./b", "..", "a\\..\\b", "a/.\t./b", "a/.\n/b", "a/..;x/b", "a/.;/b",
        ] {
            assert!(dot_segments(yes), "{yes:?}");
        }
        for no in ["a/..a/b", "a/.../b", "a/a../b", "a/.b", "", "a//b", "a/;../b"] {
            assert!(!dot_segments(no), "{no:?}");
        }
    }
}
