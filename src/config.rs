//! The policy document as written by operators: the plugin configuration JSON and the
//! file `aigate check` reads. These are wire types only: strict (`deny_unknown_fields`),
//! with explicit defaults. `policy::compile` turns them into validated domain types.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// `enforce` (default) blocks denied requests; `monitor` only records them.
    #[serde(default)]
    pub mode: Mode,
    /// Owner named in audit records when neither the tool nor the route names one.
    pub default_owner: String,
    pub routes: Vec<RouteDoc>,
    /// What to do with a request no route matches: `deny` (default) or `allow`.
    #[serde(default)]
    pub unmatched: Unmatched,
    pub identity: IdentityDoc,
    /// Optional named scopes that grant several intents (role-style scopes).
    #[serde(default)]
    pub scopes: BTreeMap<String, ScopeDoc>,
    /// Workload ceilings: the most a workload may ever do, whatever its token says.
    #[serde(default)]
    pub workloads: Vec<WorkloadDoc>,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolDoc>,
    /// Models every caller of an LLM route may use (more per scope: `scopes.<name>.models`).
    #[serde(default)]
    pub models: ModelsDoc,
    #[serde(default)]
    pub data: DataDoc,
    #[serde(default)]
    pub limits: LimitsDoc,
    #[serde(default)]
    pub approval: Option<ApprovalDoc>,
    /// How the plugin holds a request while it decides (see README "Envoy"); `body` when
    /// not given.
    #[serde(default, deserialize_with = "given")]
    pub hold: Option<Hold>,
    /// The key sealing MCP session ids to their callers (`sessions: bind`), base64url, at
    /// least 32 bytes: the same on every replica, so a session opened through one is
    /// accepted by the others. Without it each proxy makes its own.
    #[serde(default)]
    pub session_key: Option<String>,
    /// Keys that sealed sessions before `session_key` replaced them: they still open the
    /// sessions they sealed, never seal new ones, so a key is rotated without every
    /// client losing its session at once.
    #[serde(default)]
    pub retired_session_keys: Vec<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Monitor,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    #[default]
    Deny,
    Allow,
}

/// A member that may be left out but, when present, must hold a value (`null` is refused
/// as it was before the member became optional).
fn given<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `body` (default): continue headers, hold the body until the verdict; works on every
/// host. `headers`: pause at headers too; needs Envoy's `allow_on_headers_stop_iteration`.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    #[default]
    Body,
    Headers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDoc {
    pub id: String,
    pub prefix: String,
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub host: Option<String>,
    pub protocol: Protocol,
    #[serde(default)]
    pub owner: Option<String>,
    /// LLM routes: what to do when the request offers the model tools the caller may not
    /// use. Default `deny`.
    #[serde(default)]
    pub tool_offers: Option<ToolOffers>,
    /// `action` routes: the catalogued tool this REST endpoint is (its intent, impact,
    /// owner, constraints and bindings apply; the JSON body is the arguments).
    #[serde(default)]
    pub tool: Option<String>,
    /// LLM routes: may a request reach state the provider keeps: continue it (Responses
    /// `previous_response_id`, `conversation`, a stored `prompt`) or, without a body, read
    /// or delete a stored response, completion or batch? Default `deny`.
    #[serde(default)]
    pub provider_state: Option<ProviderState>,
    /// LLM routes: are the tool calls in the model's answer judged before the client sees
    /// them? Default `judge`.
    #[serde(default)]
    pub model_calls: Option<ModelCalls>,
    /// `action` routes: may the request carry input outside its JSON body (a query string,
    /// a path below the prefix)? Default `deny`: aigate judges only the body.
    #[serde(default)]
    pub extra_input: Option<ExtraInput>,
    /// MCP routes: do the answers to `tools/list`, `resources/list`,
    /// `resources/templates/list` and `prompts/list` show only what the caller may use?
    /// Default `filter`.
    #[serde(default)]
    pub lists: Option<Lists>,
    /// MCP routes: are resources in answers (a tool result's `resource_link` or embedded
    /// resource, a resource read's contents, a prompt's embedded resource) held to the
    /// caller's data boundary? Default `withhold`.
    #[serde(default)]
    pub answer_resources: Option<AnswerResources>,
    /// MCP routes: may a caller follow (`tasks/get`, `tasks/result`, `tasks/update`,
    /// `tasks/cancel`, `tasks/list`, task notifications) only the tasks the server created
    /// for it? Default `bind`.
    #[serde(default)]
    pub tasks: Option<Tasks>,
    /// MCP routes: is a session (`Mcp-Session-Id`) the server opens for a caller that
    /// caller's alone? Default `bind`.
    #[serde(default)]
    pub sessions: Option<Sessions>,
    /// MCP routes: may a request use a JSON-RPC method aigate does not know (a later
    /// protocol revision's, a server's own extension)? Default `deny`.
    #[serde(default)]
    pub unknown_methods: Option<UnknownMethods>,
    /// MCP routes: the OAuth protected resource metadata (RFC 9728) aigate serves for this
    /// endpoint and points its 401 and 403 challenges at, so OAuth-capable MCP clients find
    /// the authorization server. Default: none.
    #[serde(default)]
    pub protected_resource: Option<ProtectedResourceDoc>,
}

/// An MCP endpoint as an OAuth protected resource.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResourceDoc {
    /// The endpoint's canonical URL, as clients dial it (`https://gateway.example.com/mcp`):
    /// the audience its tokens are issued for.
    pub resource: String,
    /// Where clients get tokens. Default: the policy's token issuers.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes a client may ask for. Default: not listed.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// `deny` MCP methods aigate does not know (`tool_unknown`: what they do cannot be
/// judged), or `pass` them unjudged.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownMethods {
    #[default]
    Deny,
    Pass,
}

/// An action's arguments are its JSON body; a query string or a path below the route's
/// prefix would be input aigate never judges, read by an upstream that merges parameters.
/// `deny` refuses such requests (`argument_violation`), `allow` passes that input unjudged.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExtraInput {
    #[default]
    Deny,
    Allow,
}

/// `filter` MCP lists down to what the caller may use, or `pass` them as the server sent them.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Lists {
    #[default]
    Filter,
    Pass,
}

/// `bind` each MCP task to the caller it was created for, so no other caller can follow,
/// steer or cancel it, or `pass` task requests unjudged (the server binds them).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Tasks {
    #[default]
    Bind,
    Pass,
}

/// `bind` each MCP session to the caller it was opened for (the session id the client
/// sees is sealed to it), or `pass` session ids as the server gives them.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Sessions {
    #[default]
    Bind,
    Pass,
}

/// `withhold` the resources in an MCP answer that lie outside the caller's data boundary,
/// or `pass` them as the server sent them.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AnswerResources {
    #[default]
    Withhold,
    Pass,
}

/// `judge` the tool calls a model answers with (scope, bindings, constraints) before the
/// client can run them, or `pass` the answer unread.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelCalls {
    #[default]
    Judge,
    Pass,
}

/// Provider-kept conversation state is invisible to aigate: `deny` refuses requests that
/// continue it (`data_boundary`), `allow` lets them through judged on what they carry.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderState {
    #[default]
    Deny,
    Allow,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Mcp,
    OpenaiChat,
    OpenaiResponses,
    AnthropicMessages,
    /// A REST endpoint that is one tool: the route names it, the body is its arguments.
    Action,
}

impl Protocol {
    /// A model API (as opposed to a tool protocol).
    pub fn is_llm(self) -> bool {
        matches!(
            self,
            Protocol::OpenaiChat | Protocol::OpenaiResponses | Protocol::AnthropicMessages
        )
    }
}

/// `deny` the request, or `strip` the offered tools the caller may not use.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ToolOffers {
    #[default]
    Deny,
    Strip,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityDoc {
    /// Where the subject's token comes from: `jwt` (verified here) or `jwt_authn` (Envoy).
    pub source: TokenSource,
    #[serde(default)]
    pub jwt: Option<JwtDoc>,
    #[serde(default)]
    pub jwt_authn: Option<JwtAuthnDoc>,
    #[serde(default)]
    pub claims: ClaimsDoc,
    #[serde(default)]
    pub workload: Option<WorkloadSourceDoc>,
    #[serde(default)]
    pub bind_session: Option<BindSessionDoc>,
    /// Tolerance for `exp`/`nbf`/`iat` against the host clock.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u64,
    /// Refuse tokens whose `exp - iat` exceeds this (just-in-time credentials).
    #[serde(default)]
    pub max_token_lifetime_seconds: Option<u64>,
}

fn default_skew() -> u64 {
    30
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    Jwt,
    JwtAuthn,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtDoc {
    /// Header carrying `Bearer <token>`; default `authorization`.
    #[serde(default = "default_auth_header")]
    pub header: String,
    pub issuers: Vec<IssuerDoc>,
    /// Whether the upstream also gets the caller's token; default `false`: it is removed.
    #[serde(default)]
    pub forward: bool,
}

fn default_auth_header() -> String {
    "authorization".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerDoc {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Inline JWKS (`{"keys": [...]}`).
    pub jwks: Value,
    /// The scopes this issuer may grant (named scopes or patterns), a ceiling like a
    /// workload's; absent, it may grant every scope.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthnDoc {
    /// `payload_in_metadata` name used in the jwt_authn provider.
    pub payload_key: String,
    /// Dynamic metadata namespace; default `envoy.filters.http.jwt_authn`.
    #[serde(default = "default_jwt_authn_ns")]
    pub namespace: String,
}

fn default_jwt_authn_ns() -> String {
    "envoy.filters.http.jwt_authn".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsDoc {
    pub subject: String,
    pub tenant: String,
    pub scopes: String,
}

impl Default for ClaimsDoc {
    fn default() -> Self {
        ClaimsDoc {
            subject: "sub".into(),
            tenant: "tenant".into(),
            scopes: "scope".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSourceDoc {
    /// SPIFFE trust domains accepted from the mTLS peer certificate's URI SAN.
    #[serde(default)]
    pub spiffe_trust_domains: Vec<String>,
    /// Claim naming the workload when there is no mTLS peer: `azp`, `client_id`, `act.sub`.
    #[serde(default)]
    pub claim: Option<String>,
    /// Refuse requests without a trusted mTLS peer, even when `claim` could name a workload:
    /// a stolen token cannot bring its workload along from outside the mesh.
    #[serde(default)]
    pub require_mtls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindSessionDoc {
    pub claim: String,
    #[serde(default = "default_session_header")]
    pub header: String,
}

fn default_session_header() -> String {
    "mcp-session-id".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeDoc {
    /// Intents (exact, or `prefix.*`) this scope grants.
    #[serde(default)]
    pub grants: Vec<String>,
    /// Models (exact, or with a trailing `*`) holders of this scope may use on LLM routes.
    #[serde(default)]
    pub models: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelsDoc {
    /// Model patterns: exact (`gpt-4o`), prefix (`claude-sonnet-4*`) or `*` (any).
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadDoc {
    pub id: String,
    /// Exact workload identity (SPIFFE ID or client id).
    #[serde(default, rename = "match")]
    pub exact: Option<String>,
    /// Workload identity prefix, e.g. `spiffe://example.org/ns/agents/`.
    #[serde(default)]
    pub match_prefix: Option<String>,
    /// The ceiling: scope patterns this workload may ever use.
    pub scopes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDoc {
    pub intent: String,
    pub impact: Impact,
    #[serde(default)]
    pub owner: Option<String>,
    /// Argument constraints keyed by JSON pointer into the call's arguments.
    #[serde(default)]
    pub constraints: BTreeMap<String, ConstraintDoc>,
    /// Argument pointer → claim name: the argument must equal the caller's claim.
    #[serde(default)]
    pub bind: BTreeMap<String, String>,
    /// MCP mirror header name (the tool schema's `x-mcp-header`, sent as `Mcp-Param-{name}`)
    /// → the argument it mirrors, by JSON pointer.
    #[serde(default)]
    pub param_headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Read,
    Write,
    External,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConstraintDoc {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default, rename = "enum")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default)]
    pub max_length: Option<usize>,
    #[serde(default)]
    pub prefix_in: Option<Vec<String>>,
    #[serde(default)]
    pub suffix_in: Option<Vec<String>>,
    #[serde(default)]
    pub max_items: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataDoc {
    #[serde(default)]
    pub resources: Vec<ResourceRuleDoc>,
    /// Retrieval stores a model may search (OpenAI `file_search.vector_store_ids`).
    #[serde(default)]
    pub vector_stores: Vec<VectorStoreRuleDoc>,
    /// Files stored at the provider that a request may put before the model (OpenAI
    /// `file_id`s of content parts and code-interpreter containers, Anthropic `file`
    /// sources and container uploads). Same shape as `vector_stores`.
    #[serde(default)]
    pub files: Vec<VectorStoreRuleDoc>,
    /// Remote MCP servers a model provider may call for the caller (OpenAI `mcp` tools,
    /// Anthropic `mcp_servers`).
    #[serde(default)]
    pub mcp_servers: Vec<McpServerRuleDoc>,
    /// MCP prompts (`prompts/get`) a caller may fetch.
    #[serde(default)]
    pub prompts: Vec<PromptRuleDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRuleDoc {
    pub id: String,
    /// Prompt names, each exact or ending in `*` (every name with that prefix; `*` alone:
    /// every prompt).
    pub names: Vec<String>,
    pub scope: String,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorStoreRuleDoc {
    pub id: String,
    /// Store (or file) ids, each exact or a claim template (`{kb_store}`, `vs_{tenant}`); a
    /// template that is one claim holding an array of strings allows each of them.
    pub ids: Vec<String>,
    pub scope: String,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerRuleDoc {
    pub id: String,
    /// URL prefix with claim templates, e.g. `https://mcp.example.com/{tenant}/`.
    pub url_prefix: String,
    pub scope: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// May the provider run this server's tools without asking the client first? Default
    /// `approved`: only when every call comes back for approval (and is judged then).
    #[serde(default)]
    pub provider_calls: ProviderCalls,
}

/// Calls a model provider makes to a remote MCP server for the caller: `approved` only
/// when the provider asks before each (OpenAI `require_approval: "always"`), so aigate
/// judges the approval; `any` also lets it run them unseen (Anthropic's MCP connector,
/// `require_approval: "never"`).
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderCalls {
    #[default]
    Approved,
    Any,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRuleDoc {
    pub id: String,
    /// URI prefix; `{tenant}`, `{subject}`, `{workload}` or `{<claim>}` are filled from the caller.
    pub uri_prefix: String,
    /// Scope (pattern) that grants reading these resources.
    pub scope: String,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsDoc {
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    pub max_batch_size: usize,
    /// Longest an MCP task stays bound to its caller, whatever lifetime (`ttl`) the server
    /// gives it; then the caller can no longer follow it.
    pub max_task_seconds: u64,
    /// Most MCP tasks one caller may hold bound at once: a caller creating tasks without
    /// end fills its own share of the record, not every caller's.
    pub max_tasks_per_caller: usize,
}

impl Default for LimitsDoc {
    fn default() -> Self {
        LimitsDoc {
            max_body_bytes: 1024 * 1024,
            max_json_depth: 32,
            max_batch_size: 32,
            max_task_seconds: 86_400,
            max_tasks_per_caller: 128,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDoc {
    /// Header carrying the grant; default `x-aigate-approval`.
    #[serde(default = "default_approval_header")]
    pub header: String,
    pub issuer: String,
    pub audience: String,
    pub jwks: Value,
    /// Grants older than this (by `iat`) are refused.
    #[serde(default = "default_approval_max_age")]
    pub max_age_seconds: u64,
    /// How long after this gateway's record of used grants begins an older Envoy process
    /// (hot restart) or listener (drain) may still accept grants; issued meanwhile, they
    /// are refused here. 0 (the default): no overlap is guarded.
    #[serde(default)]
    pub restart_overlap_seconds: u64,
    /// Where a client sends a human to approve: `{tool}`, `{digest}`, `{subject}` are filled in.
    #[serde(default)]
    pub request_url: Option<String>,
}

fn default_approval_header() -> String {
    "x-aigate-approval".into()
}

fn default_approval_max_age() -> u64 {
    300
}
