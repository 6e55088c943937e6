//! The compiled policy: immutable domain types built once from the operator's document.
//! Everything here is validated; request handling never re-checks configuration.

mod compile;
mod model;
pub mod resource_metadata;
mod scope;
mod secrets;

pub use compile::{compile, ConfigError};
pub use model::ModelPattern;
pub use scope::{Pattern, PatternRef};

use crate::config::{
    AnswerResources, ExtraInput, Hold, Impact, Lists, Mode, ModelCalls, Protocol, ProviderCalls, ProviderState, Tasks,
    ToolOffers, UnknownMethods,
};
use crate::jws::KeySet;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Policy {
    pub mode: Mode,
    pub hold: Hold,
    /// Whether the document set `hold` itself, rather than taking the default.
    pub hold_given: bool,
    pub default_owner: String,
    pub routes: Vec<Route>,
    pub unmatched_allow: bool,
    pub identity: IdentityPolicy,
    /// Named scopes → the intent patterns they grant.
    pub scopes: HashMap<String, Vec<Pattern>>,
    pub ceilings: Vec<Ceiling>,
    pub tools: HashMap<String, Tool>,
    pub resources: Vec<ResourceRule>,
    /// Models any caller may use on LLM routes.
    pub models: Vec<ModelPattern>,
    /// Named scope → further models its holders may use.
    pub scope_models: HashMap<String, Vec<ModelPattern>>,
    pub vector_stores: Vec<StoreRule>,
    pub files: Vec<StoreRule>,
    pub mcp_servers: Vec<McpServerRule>,
    pub prompts: Vec<PromptRule>,
    pub limits: Limits,
    pub approval: Option<ApprovalPolicy>,
    /// The key MCP session ids are sealed to their callers with (`sessions: bind`): the
    /// policy's `session_key`, or one the plugin makes for its proxy when the policy has
    /// none. `None` (the CLI, with no key given) takes a session as the caller's.
    pub session_seal: Option<crate::sessions::SealKey>,
    /// Hex SHA-256 of the configuration's RFC 8785 canonical form: names the policy in audit
    /// records, whatever spacing or key order the host delivered it in.
    pub hash: String,
}

#[derive(Debug)]
pub struct Route {
    pub id: String,
    pub prefix: String,
    /// Upper-case HTTP methods; empty = any.
    pub methods: Vec<String>,
    /// Lower-case host (without port); `None` = any.
    pub host: Option<String>,
    pub protocol: Protocol,
    pub owner: Option<String>,
    /// LLM routes: deny a request offering tools the caller may not use, or strip them.
    pub tool_offers: ToolOffers,
    /// `action` routes: the catalogued tool the endpoint is.
    pub tool: Option<String>,
    /// LLM routes: whether provider-kept state may be continued, read or deleted.
    pub provider_state: ProviderState,
    /// LLM routes: whether the tool calls in the model's answer are judged.
    pub model_calls: ModelCalls,
    /// MCP routes: whether list answers are filtered to what the caller may use.
    pub lists: Lists,
    /// MCP routes: whether resources in answers are held to the caller's data boundary.
    pub answer_resources: AnswerResources,
    /// MCP routes: whether each task is bound to the caller it was created for.
    pub tasks: Tasks,
    /// MCP routes: whether a session is its opener's alone (its id sealed to the caller).
    pub sessions: crate::config::Sessions,
    /// MCP routes: whether methods aigate does not know pass unjudged.
    pub unknown_methods: UnknownMethods,
    /// MCP routes: the OAuth protected resource metadata aigate serves for the endpoint.
    pub protected_resource: Option<resource_metadata::ProtectedResource>,
    /// `action` routes: whether a query string or a path below the prefix may pass unjudged.
    pub extra_input: ExtraInput,
}

#[derive(Debug)]
pub struct IdentityPolicy {
    pub token: TokenSource,
    pub subject_claim: String,
    pub tenant_claim: String,
    pub scopes_claim: String,
    pub workload: Option<WorkloadSource>,
    pub bind_session: Option<SessionBinding>,
    pub skew: u64,
    pub max_lifetime: Option<u64>,
    /// The scope ceilings of the issuers that set one, by `iss`. They apply to the token's
    /// claims whatever carried them (the CLI replays cases given as bare claims).
    pub issuer_scopes: Vec<(String, Vec<String>)>,
}

impl IdentityPolicy {
    /// Whether tokens come from more than one identity provider, so that a subject name
    /// alone does not say who it is. Behind jwt_authn the providers are Envoy's: unknown
    /// here, taken as one.
    pub fn several_issuers(&self) -> bool {
        matches!(&self.token, TokenSource::Jwt { issuers, .. } | TokenSource::Vouched { issuers } if issuers.len() > 1)
    }
}

#[derive(Debug)]
pub enum TokenSource {
    /// `Bearer` token in `header`, verified here against the issuers' keys; the upstream
    /// gets the header only when `forward` says so.
    Jwt {
        header: String,
        issuers: Vec<Issuer>,
        forward: bool,
    },
    /// Payload already verified by Envoy's jwt_authn, read from dynamic metadata.
    JwtAuthn { namespace: String, payload_key: String },
    /// A token payload taken as signed (the CLI's replay of bare `claims`), standing in
    /// for a token of `Jwt`: its issuer and audience are still held to `issuers`, as a
    /// signed token's would be. Never built from a policy document.
    Vouched { issuers: Vec<Issuer> },
}

impl TokenSource {
    /// Label value for `aigate_identity_total{source}`.
    pub fn label(&self) -> &'static str {
        match self {
            TokenSource::Jwt { .. } | TokenSource::Vouched { .. } => "jwt",
            TokenSource::JwtAuthn { .. } => "jwt_authn",
        }
    }
}

#[derive(Debug)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySet,
}

#[derive(Debug)]
pub struct WorkloadSource {
    pub trust_domains: Vec<String>,
    /// Claim path split on `.` (e.g. `act.sub`).
    pub claim: Option<Vec<String>>,
    pub require_mtls: bool,
}

#[derive(Debug)]
pub struct SessionBinding {
    pub claim: String,
    /// Lower-case header name.
    pub header: String,
}

#[derive(Debug)]
pub struct Ceiling {
    pub id: String,
    pub matcher: WorkloadMatch,
    pub scopes: Vec<String>,
}

#[derive(Debug)]
pub enum WorkloadMatch {
    Exact(String),
    Prefix(String),
}

#[derive(Debug)]
pub struct Tool {
    pub name: String,
    pub intent: String,
    pub impact: Impact,
    pub owner: Option<String>,
    pub constraints: Vec<(ArgPath, Constraint)>,
    /// (argument, claim name)
    pub bind: Vec<(ArgPath, String)>,
    /// (mirror header name without `Mcp-Param-`, argument it mirrors): what the tool's
    /// schema declares with `x-mcp-header`.
    pub param_headers: Vec<(String, ArgPath)>,
}

/// An argument named by a JSON pointer (RFC 6901), split into its reference tokens once,
/// when the policy is compiled, rather than on every call judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgPath {
    text: String,
    tokens: Vec<String>,
}

impl ArgPath {
    /// `pointer` as written in the policy; the compiler has checked that it starts with '/'.
    pub fn new(pointer: &str) -> ArgPath {
        let tokens = pointer
            .split('/')
            .skip(1)
            // `~1` first: `~01` names the key `~1`, not `/`.
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        ArgPath {
            text: pointer.to_string(),
            tokens,
        }
    }

    /// The value the pointer names in `doc`, as `serde_json::Value::pointer` finds it: an
    /// array index is decimal digits without a sign or leading zeros.
    pub fn find<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        match self.locate(doc) {
            Located::Found(v) => Some(v),
            Located::Absent | Located::Blocked(_) | Located::Respelled(_) => None,
        }
    }

    /// Where the pointer leads in `doc`, telling an absent member (an object without the
    /// key, an index past the end, a `null` on the way) from a path that runs into a value
    /// of another shape (a string, a number, an array given a member name): a server that
    /// decodes an object sent as a JSON string would act on values the pointer never saw.
    pub fn locate<'a>(&self, doc: &'a Value) -> Located<'a> {
        let mut at = doc;
        for (depth, token) in self.tokens.iter().enumerate() {
            let next = match at {
                // Go's encoding/json and ASP.NET Core bind a member whatever its case, and
                // pydantic's camelCase aliases read `customerId` for `customer_id` (before
                // it, when both are sent): a member spelled so is the argument to them,
                // unseen by a pointer, whether or not the pointer's own spelling is there too.
                Value::Object(map) => {
                    let other = map
                        .keys()
                        .find(|k| k.as_str() != token && crate::json::same_argument_name(k, token));
                    if let Some(k) = other {
                        return Located::Respelled(k.clone());
                    }
                    map.get(token)
                }
                Value::Array(items) => {
                    let canonical = !token.starts_with('+') && (token == "0" || !token.starts_with('0'));
                    match token.parse::<usize>().ok().filter(|_| canonical) {
                        Some(i) => items.get(i),
                        None => return Located::Blocked(self.prefix(depth)),
                    }
                }
                Value::Null => None,
                _ => return Located::Blocked(self.prefix(depth)),
            };
            match next {
                Some(v) => at = v,
                None => return Located::Absent,
            }
        }
        Located::Found(at)
    }

    /// Whether a step of the pointer is an array index (`/to/0`): it reaches one element.
    pub fn has_index(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The pointer to the value the first `depth` tokens reach.
    fn prefix(&self, depth: usize) -> String {
        self.text.split('/').take(depth + 1).collect::<Vec<_>>().join("/")
    }
}

/// What an [`ArgPath`] finds in a document.
#[derive(Debug, PartialEq)]
pub enum Located<'a> {
    Found(&'a Value),
    Absent,
    /// The value at this pointer is not an object or array the rest of the path can enter.
    Blocked(String),
    /// A member on the way is present under another spelling (this key: another case, or
    /// `_` and `-` added or left out) that servers binding names loosely read as it.
    Respelled(String),
}

impl std::fmt::Display for ArgPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Default)]
pub struct Constraint {
    pub required: bool,
    pub max: Option<f64>,
    pub min: Option<f64>,
    pub one_of: Option<Vec<Value>>,
    pub max_length: Option<usize>,
    pub prefix_in: Option<Vec<String>>,
    pub suffix_in: Option<Vec<String>>,
    pub max_items: Option<usize>,
}

#[derive(Debug)]
pub struct ResourceRule {
    pub id: String,
    /// The prefix split into literal text and `{claim}` holes.
    pub uri_prefix: Vec<TemplatePart>,
    pub scope: String,
    pub owner: Option<String>,
}

/// Retrieval stores (vector store ids), or provider-stored files (file ids), a scope opens.
#[derive(Debug)]
pub struct StoreRule {
    /// `vector_stores` or `files`: the list under `data` the rule is in.
    pub kind: &'static str,
    pub id: String,
    /// Each id: literal text and `{claim}` holes.
    pub ids: Vec<Vec<TemplatePart>>,
    pub scope: String,
    pub owner: Option<String>,
}

/// Remote MCP servers (by URL prefix) a model provider may call on the caller's behalf.
#[derive(Debug)]
pub struct McpServerRule {
    pub id: String,
    pub url_prefix: Vec<TemplatePart>,
    pub scope: String,
    pub owner: Option<String>,
    /// Whether the provider may run the server's tools without asking first.
    pub provider_calls: ProviderCalls,
}

/// MCP prompts (`prompts/get`, by name) a scope opens.
#[derive(Debug)]
pub struct PromptRule {
    pub id: String,
    pub names: Vec<NamePattern>,
    pub scope: String,
    pub owner: Option<String>,
}

/// A prompt name: exact, every name with a prefix (`support_*`), or any (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    Exact(String),
    Prefix(String),
}

impl NamePattern {
    pub fn parse(s: &str) -> NamePattern {
        match s.strip_suffix('*') {
            Some(stem) => NamePattern::Prefix(stem.to_string()),
            None => NamePattern::Exact(s.to_string()),
        }
    }

    /// A prefix (`support_*`) covers names that continue it within one path segment: a
    /// server keeping prompts as files would read `support_/../admin_console` as another
    /// prompt. `*` alone covers every name.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(e) => e == name,
            NamePattern::Prefix(p) if p.is_empty() => true,
            NamePattern::Prefix(p) => name.strip_prefix(p.as_str()).is_some_and(|rest| {
                !rest.contains(['/', '\\', '%'])
                    && !rest.contains("..")
                    && !rest.chars().any(crate::request::compatibility_form)
            }),
        }
    }
}

/// Whether `path` is `prefix` or below it, whole segments only. Letters compare without
/// case: Express, ASP.NET and IIS route `/Api/Refunds` to `/api/refunds`, so it is judged
/// as that route rather than passed as no route at all.
fn under_prefix(path: &str, prefix: &str) -> bool {
    let (Some(head), Some(rest)) = (path.as_bytes().get(..prefix.len()), path.as_bytes().get(prefix.len()..)) else {
        return false;
    };
    head.eq_ignore_ascii_case(prefix.as_bytes())
        && (rest.is_empty() || prefix.ends_with('/') || rest.first() == Some(&b'/'))
}

/// The path as routed by servers that drop `;` parameters from segments (Tomcat, Spring,
/// Jetty: `/api/refunds;jsessionid=1` is `/api/refunds`).
fn without_segment_parameters(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(';') {
        return std::borrow::Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path.split('/').map(|seg| seg.split(';').next().unwrap_or("")).collect();
    std::borrow::Cow::Owned(segments.join("/"))
}

/// What every data rule has: the rule named in decisions, the scope that opens it and
/// the owner accountable for the data behind it.
pub trait DataRule {
    /// The rule's path in decisions and audit records, e.g. `data.resources.tenant-docs`.
    fn rule(&self) -> String;
    fn scope(&self) -> &str;
    fn owner(&self) -> Option<&str>;
}

macro_rules! data_rule {
    ($t:ty, $kind:literal) => {
        impl DataRule for $t {
            fn rule(&self) -> String {
                format!(concat!("data.", $kind, ".{}"), self.id)
            }
            fn scope(&self) -> &str {
                &self.scope
            }
            fn owner(&self) -> Option<&str> {
                self.owner.as_deref()
            }
        }
    };
}

data_rule!(ResourceRule, "resources");
impl DataRule for StoreRule {
    fn rule(&self) -> String {
        format!("data.{}.{}", self.kind, self.id)
    }
    fn scope(&self) -> &str {
        &self.scope
    }
    fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }
}
data_rule!(McpServerRule, "mcp_servers");
data_rule!(PromptRule, "prompts");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Claim(String),
}

/// The deepest JSON nesting `limits.max_json_depth` may allow: serde_json's own recursion
/// guard, kept as a backstop, refuses a 128th nested container, so a limit of 128 would
/// be 127 in fact.
pub const MAX_JSON_DEPTH: usize = 127;
/// The longest a task may stay bound to its caller (`limits.max_task_seconds`): 30 days.
pub const MAX_TASK_SECONDS: u64 = 30 * 86_400;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_batch_size: usize,
    pub max_task_seconds: u64,
    pub max_tasks_per_caller: usize,
}

#[cfg(test)]
impl Limits {
    /// The parsers' unit tests: a batch limit small enough to reach.
    pub fn for_tests() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_json_depth: 16,
            max_batch_size: 4,
            max_task_seconds: 86_400,
            max_tasks_per_caller: 128,
        }
    }
}

#[derive(Debug)]
pub struct ApprovalPolicy {
    pub header: String,
    pub issuer: String,
    pub audience: String,
    pub keys: KeySet,
    pub max_age: u64,
    /// Seconds after the record of used grants began during which issued grants are
    /// refused: an older process may still accept them.
    pub restart_overlap: u64,
    pub request_url: Option<String>,
}

impl Route {
    /// Whether the route takes requests for `path` (its query already dropped).
    pub fn takes_path(&self, path: &str) -> bool {
        under_prefix(&without_segment_parameters(path), &self.prefix)
    }

    /// Whether the route takes requests with `method`; `None` stands for a method no
    /// route names, which only a route for every method takes.
    pub fn takes_method(&self, method: Option<&str>) -> bool {
        self.methods.is_empty() || method.is_some_and(|m| self.methods.iter().any(|x| x == m))
    }

    /// Whether the route takes requests for `host` (a port and a trailing dot ignored);
    /// `None` stands for a host no route names, which only a route for every host takes.
    pub fn takes_host(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(mine), Some(h)) => mine.eq_ignore_ascii_case(bare_host(h)),
            (Some(_), None) => false,
        }
    }
}

impl Policy {
    /// Whether a route binds MCP sessions to their callers (`sessions: bind`).
    pub fn binds_sessions(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.protocol == Protocol::Mcp && r.sessions == crate::config::Sessions::Bind)
    }

    /// The protected resource metadata a decision's route publishes, if any.
    pub fn resource_metadata(&self, route: Option<usize>) -> Option<&resource_metadata::ProtectedResource> {
        route
            .and_then(|i| self.routes.get(i))
            .and_then(|r| r.protected_resource.as_ref())
    }

    /// The MCP route whose protected resource metadata `path` asks for, on its host.
    pub fn metadata_route(&self, host: &str, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.protected_resource.as_ref().is_some_and(|m| m.path == path) && r.takes_host(Some(host)))
    }

    /// Index of the first route matching method, host and path prefix.
    pub fn route(&self, method: &str, host: &str, path: &str) -> Option<usize> {
        let path = without_segment_parameters(path);
        self.routes
            .iter()
            .position(|r| under_prefix(&path, &r.prefix) && r.takes_method(Some(method)) && r.takes_host(Some(host)))
    }

    /// Does scope `held` (as written in a token or a ceiling) grant `wanted` (an intent or
    /// a resource scope)? Named scopes grant their patterns; other scopes are patterns.
    pub fn scope_grants(&self, held: &str, wanted: &str) -> bool {
        match self.scopes.get(held) {
            Some(patterns) => patterns.iter().any(|p| p.matches(wanted)),
            None => PatternRef::parse(held).is_ok_and(|p| p.matches(wanted)),
        }
    }

    /// The ceiling for a workload: exact match first, else the longest matching prefix.
    pub fn ceiling(&self, workload: &str) -> Option<&Ceiling> {
        self.ceilings
            .iter()
            .find(|c| matches!(&c.matcher, WorkloadMatch::Exact(w) if w == workload))
            .or_else(|| {
                self.ceilings
                    .iter()
                    .filter_map(|c| match &c.matcher {
                        WorkloadMatch::Prefix(p) if workload.starts_with(p.as_str()) => Some((p.len(), c)),
                        _ => None,
                    })
                    .max_by_key(|(len, _)| *len)
                    .map(|(_, c)| c)
            })
    }

    /// Every data rule: resources, prompts, retrieval stores, files, remote MCP servers.
    pub fn data_rules(&self) -> impl Iterator<Item = &dyn DataRule> {
        let resources = self.resources.iter().map(|r| r as &dyn DataRule);
        let prompts = self.prompts.iter().map(|r| r as &dyn DataRule);
        let stores = self.vector_stores.iter().map(|r| r as &dyn DataRule);
        let files = self.files.iter().map(|r| r as &dyn DataRule);
        let servers = self.mcp_servers.iter().map(|r| r as &dyn DataRule);
        resources.chain(prompts).chain(stores).chain(files).chain(servers)
    }

    /// Does this route forward rewritten bodies (LLM tools stripped)?
    pub fn strips_tools(&self, route: Option<usize>) -> bool {
        route
            .and_then(|i| self.routes.get(i))
            .is_some_and(|r| r.protocol.is_llm() && r.tool_offers == ToolOffers::Strip)
    }

    /// Does this route judge answers: the tool calls of a model's (LLM routes), the lists,
    /// resources and created tasks of an MCP server's (MCP routes)?
    pub fn judges_answers(&self, route: Option<usize>) -> bool {
        route
            .and_then(|i| self.routes.get(i))
            .is_some_and(|r| match r.protocol {
                Protocol::Mcp => {
                    r.lists == Lists::Filter
                        || r.answer_resources == AnswerResources::Withhold
                        || r.tasks == Tasks::Bind
                }
                p => p.is_llm() && r.model_calls == ModelCalls::Judge,
            })
    }

    /// Does any route bind MCP tasks to their callers?
    pub fn binds_tasks(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.protocol == Protocol::Mcp && r.tasks == Tasks::Bind)
    }

    pub fn owner_for<'a>(&'a self, tool: Option<&'a Tool>, data: Option<&'a str>, route: Option<&'a Route>) -> &'a str {
        tool.and_then(|t| t.owner.as_deref())
            .or(data)
            .or_else(|| route.and_then(|r| r.owner.as_deref()))
            .unwrap_or(&self.default_owner)
    }
}

/// A request's authority as routes compare it: without its port, and without the one
/// trailing dot of a fully qualified name (`admin.example.com.` is the same host to
/// resolvers and Envoy's virtual hosts, and must not slip past a host-scoped route).
pub(crate) fn bare_host(host: &str) -> &str {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::ArgPath;
    use serde_json::json;

    #[test]
    fn argument_paths_find_what_json_pointers_find() {
        let doc = json!({"a": {"b": [10, {"c": 1}]}, "x/y": 2, "m~n": 3, "~1": 4, "": {"": 5},
                         "list": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]});
        for p in [
            "/a",
            "/a/b",
            "/a/b/0",
            "/a/b/1/c",
            "/a/b/2",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/-",
            "/x~1y",
            "/m~0n",
            "/~01",
            "/",
            "//",
            "/list/10",
            "/list/010",
            "/list/1e1",
            "/missing",
            "/a/b/0/deeper",
        ] {
            assert_eq!(ArgPath::new(p).find(&doc), doc.pointer(p), "{p}");
        }
        assert_eq!(ArgPath::new("/x~1y").to_string(), "/x~1y", "shown as written");
    }

    #[test]
    fn a_path_through_a_value_of_another_shape_is_blocked_not_absent() {
        use super::Located;
        let doc = json!({"payment": "{\"amount\": 5000}", "to": ["a@x"], "none": null, "obj": {}});
        let at = |p: &str| ArgPath::new(p).locate(&doc);
        assert_eq!(at("/payment/amount"), Located::Blocked("/payment".into()));
        assert_eq!(at("/to/domain"), Located::Blocked("/to".into()));
        assert_eq!(at("/to/0/x"), Located::Blocked("/to/0".into()));
        assert_eq!(at("/missing/amount"), Located::Absent);
        assert_eq!(at("/obj/amount"), Located::Absent);
        assert_eq!(
            at("/none/amount"),
            Located::Absent,
            "null is no object: nothing below it"
        );
        assert_eq!(at("/to/5"), Located::Absent);
        assert_eq!(at("/to/0"), Located::Found(&json!("a@x")));
    }

    #[test]
    fn a_member_spelled_another_way_is_respelled_at_any_step() {
        use super::Located;
        let at = |p: &str, doc: serde_json::Value| ArgPath::new(p).locate(&doc).clone_key();
        let respelled = |k: &str| Some(k.to_string());
        // Alone, or beside the pointer's own spelling (pydantic prefers the alias).
        assert_eq!(
            at("/customer_id", json!({"customerId": "c-9"})),
            respelled("customerId")
        );
        assert_eq!(
            at("/customer_id", json!({"customer_id": "c-1", "customerId": "c-9"})),
            respelled("customerId")
        );
        assert_eq!(
            at("/customer_id", json!({"customerId": "c-9", "customer_id": "c-1"})),
            respelled("customerId")
        );
        assert_eq!(
            at("/customer_id", json!({"customer-id": "c-9"})),
            respelled("customer-id")
        );
        assert_eq!(
            at("/customerId", json!({"customer_id": "c-9"})),
            respelled("customer_id")
        );
        assert_eq!(at("/order/customer_id", json!({"Order": {}})), respelled("Order"));
        assert_eq!(
            at(
                "/order/customer_id",
                json!({"order": {"customer_id": "c-1", "CustomerID": "c-9"}})
            ),
            respelled("CustomerID")
        );
        assert_eq!(
            at("/lines/0/sku_code", json!({"lines": [{"skuCode": "x"}]})),
            respelled("skuCode")
        );
        // Other members, and the pointer's own spelling alone, are what they were.
        assert_eq!(at("/customer_id", json!({"customer_id": "c-1", "customer": "x"})), None);
        assert_eq!(
            ArgPath::new("/customer_id").locate(&json!({"customer_id": "c-1"})),
            Located::Found(&json!("c-1"))
        );
    }

    impl super::Located<'_> {
        fn clone_key(&self) -> Option<String> {
            match self {
                super::Located::Respelled(k) => Some(k.clone()),
                _ => None,
            }
        }
    }
}
