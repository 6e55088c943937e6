//! Document → `Policy`, naming the JSON path of every error.

use super::*;
use crate::config::{self, ConstraintDoc, PolicyDoc, Unmatched};
use sha2::{Digest, Sha256};
use std::fmt;

/// A configuration error at a JSON path such as `tools.send_email.constraints./to.max`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Parses and validates a policy document. All semantic errors are reported, not just the first.
pub fn compile(bytes: &[u8]) -> Result<Policy, Vec<ConfigError>> {
    // Strict parse first: duplicate keys in a policy are as suspicious as in a request.
    let value = crate::json::parse(bytes, 64).map_err(|e| {
        let message = match e {
            // The policy is no request body: say what is not UTF-8.
            crate::json::JsonError::NotUtf8 => "the policy is not UTF-8 text (JSON is UTF-8)".to_string(),
            e => e.to_string(),
        };
        vec![ConfigError {
            path: String::new(),
            message,
        }]
    })?;
    // The hash of the canonical form (RFC 8785), so a policy that Istio or Envoy Gateway
    // re-serialises (key order, spacing, number spelling) keeps the hash the release gate
    // reported; a document without one (an integer beyond 2^53) is hashed as written.
    let hash = match crate::digest::canonical_json(&value) {
        Ok(canonical) => hex(&Sha256::digest(canonical.as_bytes())),
        Err(_) => hex(&Sha256::digest(bytes)),
    };
    let doc: PolicyDoc = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // serde names a missing field in its message, at the path of the object lacking
        // it (none at the top level): the field's own path says where it belongs.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        vec![match missing {
            Some(field) if path == "." => ConfigError {
                path: field.to_string(),
                message: "is required".into(),
            },
            Some(field) => ConfigError {
                path: format!("{path}.{field}"),
                message: "is required".into(),
            },
            None => ConfigError { path, message },
        }]
    })?;
    let mut c = Checker::default();
    let policy = c.policy(doc, hash);
    if c.errors.is_empty() {
        Ok(policy)
    } else {
        Err(c.errors)
    }
}

/// Headers that HTTP, MCP or aigate itself give a meaning (lower case); the policy's own
/// headers must be others. `authorization` is the caller's credential, `mcp-*` MCP's own
/// (`mcp-session-id` may carry the session it binds).
const RESERVED_HEADERS: [&str; 17] = [
    "host",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "te",
    "connection",
    "upgrade",
    "cookie",
    "x-aigate-decision-id",
    "x-forwarded-host",
    "x-host",
    "forwarded",
];

/// Letters that show as nothing: the Hangul fillers.
const INVISIBLE_LETTERS: [char; 4] = ['\u{115f}', '\u{1160}', '\u{3164}', '\u{ffa0}'];

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn non_empty(&mut self, path: &str, s: &str) {
        if s.trim().is_empty() {
            self.err(path, "must not be empty");
        }
    }

    /// An owner, when named, must name someone: an empty one answers for nothing.
    fn owner(&mut self, path: &str, owner: &Option<String>) {
        if let Some(o) = owner {
            self.someone(&format!("{path}.owner"), o);
        }
    }

    /// A name a reader of the audit log can see: blank and invisible text (a zero-width
    /// space, a word joiner) looks named in a review and answers for nothing.
    fn someone(&mut self, path: &str, s: &str) {
        if s.trim().is_empty() {
            self.err(path, "must not be empty");
        } else if !s
            .chars()
            .any(|c| c.is_alphanumeric() && !INVISIBLE_LETTERS.contains(&c))
        {
            self.err(path, "must name someone: it holds no letter or digit");
        }
    }

    /// The approval service and the identity providers must be distinct authorities: an
    /// approval grant must never pass as an access token, and whoever can sign access
    /// tokens must not be able to sign approvals. Issuers are compared without a trailing
    /// `/`, keys by their RFC 7638 thumbprint (whatever their kid).
    fn apart(&mut self, approval: &ApprovalPolicy, issuers: &[Issuer]) {
        let bare = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
        if issuers.iter().any(|i| bare(&i.issuer) == bare(&approval.issuer)) {
            self.err(
                "approval.issuer",
                "must differ from every identity.jwt issuer: an approval grant must never pass as an access token",
            );
        }
        for (k, (_, print)) in approval.keys.thumbprints().enumerate() {
            let shared = issuers.iter().find(|i| i.keys.thumbprints().any(|(_, p)| p == print));
            if let Some(i) = shared {
                self.err(
                    format!("approval.jwks.keys[{k}]"),
                    format!(
                        "is also a key of identity issuer {:?}: whoever signs access tokens could sign approvals",
                        i.issuer
                    ),
                );
            }
        }
    }

    /// The headers the policy names (the token's, the session's, the grants') are each
    /// one thing: a header carrying two (a grant read from `Authorization`) would be read
    /// as both, and one HTTP, MCP or aigate gives its own meaning would never carry it.
    fn headers_apart(&mut self, identity: &IdentityPolicy, approval: Option<&ApprovalPolicy>) {
        let mut named: Vec<(&str, &str)> = Vec::new();
        if let TokenSource::Jwt { header, .. } = &identity.token {
            named.push(("identity.jwt.header", header));
        }
        if let Some(b) = &identity.bind_session {
            named.push(("identity.bind_session.header", &b.header));
        }
        if let Some(a) = approval {
            named.push(("approval.header", &a.header));
        }
        // CGI-style servers read `_` as `-`: `x_tok` and `x-tok` are one header to them.
        let dashed = |h: &str| h.replace('_', "-");
        for (i, (path, header)) in named.iter().enumerate() {
            if let Some((other, _)) = named.iter().take(i).find(|(_, h)| dashed(h) == dashed(header)) {
                self.err(*path, format!("is also {other}: one header cannot carry both"));
            }
            let header = dashed(header);
            let reserved = RESERVED_HEADERS
                .iter()
                .chain(&crate::engine::METHOD_OVERRIDES)
                .chain(&crate::engine::PATH_OVERRIDES)
                .any(|r| *r == header)
                || header.starts_with("x-envoy-")
                || header.starts_with("mcp-")
                    && (*path != "identity.bind_session.header" || header != "mcp-session-id")
                || header == "authorization" && *path != "identity.jwt.header";
            if reserved {
                self.err(
                    *path,
                    format!("{header:?} already means something else (HTTP, MCP or aigate)"),
                );
            }
        }
    }

    /// No HMAC secret of the policy may be a public key of the policy (the classic
    /// algorithm confusion, set up in the configuration instead of forged in a header).
    fn secrets_apart(&mut self, doc: &PolicyDoc) {
        let mut sets: Vec<(String, &serde_json::Value)> = Vec::new();
        if let Some(jwt) = &doc.identity.jwt {
            for (i, iss) in jwt.issuers.iter().enumerate() {
                sets.push((format!("identity.jwt.issuers[{i}].jwks"), &iss.jwks));
            }
        }
        if let Some(a) = &doc.approval {
            sets.push(("approval.jwks".to_string(), &a.jwks));
        }
        for (path, message) in super::secrets::made_of_public_keys(&sets) {
            self.err(path, message);
        }
    }

    /// A prefix a request path can match: paths with a query, a fragment, `;` parameters
    /// or what `request::path_problem` refuses never reach route matching, so such a
    /// prefix would be a route that silently never applies.
    fn route_prefix(&mut self, path: &str, prefix: &str) {
        if !prefix.starts_with('/') {
            return self.err(path, "must start with '/'");
        }
        let problem = if prefix.contains(['?', '#']) {
            Some("contains a query or fragment")
        } else if prefix.contains(';') {
            Some("contains ';' (segment parameters are ignored when matching)")
        } else {
            crate::request::path_problem(prefix)
        };
        if let Some(p) = problem {
            self.err(path, format!("{p}: no request path can match it"));
        }
    }

    /// A host a request's authority can match: the port and one trailing dot are dropped
    /// from the request's before comparing, so a host written with either never matches.
    fn route_host(&mut self, path: &str, host: &str) {
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.trim().is_empty() || host.contains(['/', ' ', '@']) {
            self.err(path, "must be a host name");
        } else if host.contains(':') && !bracketed {
            self.err(path, "must not carry a port (ports are ignored when matching)");
        } else if host.ends_with('.') {
            self.err(path, "must not end with '.' (a trailing dot is ignored when matching)");
        } else if host.contains(['*', '?']) {
            self.err(
                path,
                "is matched exactly, not as a pattern: name each host in a route of its own",
            );
        }
    }

    fn pattern(&mut self, path: &str, s: &str) -> Option<Pattern> {
        Pattern::parse(s).map_err(|m| self.err(path, m)).ok()
    }

    /// What every data rule must have: an id to be named by, and the scope that opens it.
    fn data_rule(&mut self, path: &str, id: &str, scope: &str, owner: &Option<String>) {
        self.non_empty(&format!("{path}.id"), id);
        self.owner(path, owner);
        self.pattern(&format!("{path}.scope"), scope);
    }

    fn policy(&mut self, doc: PolicyDoc, hash: String) -> Policy {
        self.someone("default_owner", &doc.default_owner);
        self.secrets_apart(&doc);
        let metadata: Vec<_> = doc.routes.iter().map(|r| r.protected_resource.clone()).collect();
        let mut routes = self.routes(doc.routes);
        let identity = self.identity(doc.identity);
        self.resource_metadata(&mut routes, metadata, &identity);
        let mut scopes = HashMap::new();
        let mut scope_models = HashMap::new();
        for (name, s) in doc.scopes {
            let path = format!("scopes.{name}");
            if name.contains('*') || name.trim().is_empty() {
                self.err(&path, "a named scope must be a plain name");
            }
            if s.grants.is_empty() && s.models.is_empty() {
                self.err(format!("{path}.grants"), "must grant at least one intent or model");
            }
            let grants = s
                .grants
                .iter()
                .enumerate()
                .filter_map(|(i, g)| self.pattern(&format!("{path}.grants[{i}]"), g))
                .collect();
            if !s.models.is_empty() {
                scope_models.insert(name.clone(), self.models(&format!("{path}.models"), &s.models));
            }
            scopes.insert(name, grants);
        }
        let models = self.models("models.allow", &doc.models.allow);
        if let Some(i) = routes.iter().position(|r| r.protocol.is_llm()) {
            if models.is_empty() && scope_models.is_empty() {
                self.err(
                    format!("routes[{i}].protocol"),
                    "LLM routes need a model allow-list: models.allow or scopes.<name>.models ([\"*\"] allows any)",
                );
            }
        }
        let ceilings = self.ceilings(doc.workloads, &scopes);
        let tools = self.tools(doc.tools);
        for (i, r) in routes.iter().enumerate() {
            if let Some(t) = r.tool.as_ref().filter(|t| !tools.contains_key(*t)) {
                self.err(
                    format!("routes[{i}].tool"),
                    format!("{t:?} is not in the tool catalogue"),
                );
            }
        }
        let resources = self.resources(doc.data.resources);
        let vector_stores = self.stores("vector_stores", doc.data.vector_stores);
        let files = self.stores("files", doc.data.files);
        let mcp_servers = self.mcp_servers(doc.data.mcp_servers);
        let prompts = self.prompts(doc.data.prompts);
        let limits = self.limits(doc.limits);
        let approval = doc.approval.and_then(|a| self.approval(a));
        if let (Some(a), TokenSource::Jwt { issuers, .. }) = (&approval, &identity.token) {
            self.apart(a, issuers);
        }
        self.headers_apart(&identity, approval.as_ref());
        let session_seal = self.session_keys(doc.session_key.as_deref(), doc.retired_session_keys);
        Policy {
            mode: doc.mode,
            hold: doc.hold.unwrap_or_default(),
            hold_given: doc.hold.is_some(),
            default_owner: doc.default_owner,
            routes,
            unmatched_allow: doc.unmatched == Unmatched::Allow,
            identity,
            scopes,
            ceilings,
            tools,
            resources,
            models,
            scope_models,
            vector_stores,
            files,
            mcp_servers,
            prompts,
            limits,
            approval,
            session_seal,
            hash,
        }
    }

    /// The configured keys sealing MCP sessions: `session_key`, and the keys it replaced,
    /// which open what they sealed. Each base64url (no padding), at least 256 bits; at most
    /// four retired, as a seal no key opens is tried against each.
    fn session_keys(&mut self, key: Option<&str>, retired: Vec<String>) -> Option<crate::sessions::SealKey> {
        const MOST_RETIRED: usize = 4;
        let Some(key) = key else {
            if !retired.is_empty() {
                self.err(
                    "retired_session_keys",
                    "needs session_key: retired keys open the sessions they sealed, the current key seals new ones",
                );
            }
            return None;
        };
        let current = self.session_key("session_key".into(), key);
        if retired.len() > MOST_RETIRED {
            self.err(
                "retired_session_keys",
                format!("at most {MOST_RETIRED} keys: drop those whose sessions have ended"),
            );
        }
        let mut opening = Vec::new();
        for (i, k) in retired.iter().enumerate() {
            let path = format!("retired_session_keys[{i}]");
            match self.session_key(path.clone(), k) {
                Some(bytes) if Some(&bytes) == current.as_ref() || opening.contains(&bytes) => {
                    self.err(path, "repeats a key given before it")
                }
                Some(bytes) => opening.push(bytes),
                None => {}
            }
        }
        Some(crate::sessions::SealKey::new(current?).with_retired(opening))
    }

    /// One key of `session_key` or `retired_session_keys`, at `path`.
    fn session_key(&mut self, path: String, key: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key) {
            Ok(bytes) if bytes.len() >= 32 => Some(bytes),
            Ok(_) => {
                self.err(path, "must hold at least 32 bytes (43 base64url characters)");
                None
            }
            Err(_) => {
                self.err(path, "must be base64url without padding");
                None
            }
        }
    }

    /// Each MCP route's protected resource metadata, its authorization servers defaulting
    /// to the token issuers. Two routes cannot serve one well-known path.
    fn resource_metadata(
        &mut self,
        routes: &mut [Route],
        docs: Vec<Option<config::ProtectedResourceDoc>>,
        identity: &IdentityPolicy,
    ) {
        let issuers: Vec<String> = match &identity.token {
            TokenSource::Jwt { issuers, .. } => issuers.iter().map(|i| i.issuer.clone()).collect(),
            _ => Vec::new(),
        };
        let mut served: Vec<String> = Vec::new();
        for (i, (route, doc)) in routes.iter_mut().zip(docs).enumerate() {
            let Some(doc) = doc.filter(|_| route.protocol == Protocol::Mcp) else {
                continue;
            };
            match crate::policy::resource_metadata::compile(&doc, &issuers) {
                Ok(m) if served.contains(&m.path) => self.err(
                    format!("routes[{i}].protected_resource.resource"),
                    format!("another route already serves {}", m.path),
                ),
                Ok(m) => {
                    served.push(m.path.clone());
                    route.protected_resource = Some(m);
                }
                Err((field, message)) => self.err(format!("routes[{i}].protected_resource.{field}"), message),
            }
        }
    }

    fn routes(&mut self, docs: Vec<config::RouteDoc>) -> Vec<Route> {
        if docs.is_empty() {
            self.err("routes", "at least one route is required");
        }
        let mut ids = Vec::new();
        docs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("routes[{i}]");
                self.non_empty(&format!("{path}.id"), &r.id);
                self.owner(&path, &r.owner);
                if ids.contains(&r.id) {
                    self.err(format!("{path}.id"), format!("duplicate route id {:?}", r.id));
                }
                ids.push(r.id.clone());
                self.route_prefix(&format!("{path}.prefix"), &r.prefix);
                if let Some(h) = &r.host {
                    self.route_host(&format!("{path}.host"), h);
                }
                let methods = r
                    .methods
                    .iter()
                    .enumerate()
                    .map(|(j, m)| {
                        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                            self.err(format!("{path}.methods[{j}]"), "not an HTTP method");
                        }
                        m.to_ascii_uppercase()
                    })
                    .collect();
                if r.tool_offers.is_some() && !r.protocol.is_llm() {
                    self.err(format!("{path}.tool_offers"), "applies only to LLM routes");
                }
                if r.provider_state.is_some() && !r.protocol.is_llm() {
                    self.err(format!("{path}.provider_state"), "applies only to LLM routes");
                }
                if r.model_calls.is_some() && !r.protocol.is_llm() {
                    self.err(format!("{path}.model_calls"), "applies only to LLM routes");
                }
                if r.extra_input.is_some() && r.protocol != Protocol::Action {
                    self.err(format!("{path}.extra_input"), "applies only to action routes");
                }
                if r.lists.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.lists"), "applies only to MCP routes");
                }
                if r.answer_resources.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.answer_resources"), "applies only to MCP routes");
                }
                if r.tasks.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.tasks"), "applies only to MCP routes");
                }
                if r.sessions.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.sessions"), "applies only to MCP routes");
                }
                if r.unknown_methods.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.unknown_methods"), "applies only to MCP routes");
                }
                if r.protected_resource.is_some() && r.protocol != Protocol::Mcp {
                    self.err(format!("{path}.protected_resource"), "applies only to MCP routes");
                }
                match (&r.tool, r.protocol) {
                    (None, Protocol::Action) => {
                        self.err(format!("{path}.tool"), "an action route names its catalogued tool");
                    }
                    (Some(_), p) if p != Protocol::Action => {
                        self.err(format!("{path}.tool"), "applies only to action routes");
                    }
                    _ => {}
                }
                Route {
                    id: r.id,
                    prefix: r.prefix,
                    methods,
                    host: r.host.map(|h| h.to_ascii_lowercase()),
                    protocol: r.protocol,
                    owner: r.owner,
                    tool_offers: r.tool_offers.unwrap_or_default(),
                    tool: r.tool,
                    provider_state: r.provider_state.unwrap_or_default(),
                    model_calls: r.model_calls.unwrap_or_default(),
                    lists: r.lists.unwrap_or_default(),
                    answer_resources: r.answer_resources.unwrap_or_default(),
                    tasks: r.tasks.unwrap_or_default(),
                    sessions: r.sessions.unwrap_or_default(),
                    unknown_methods: r.unknown_methods.unwrap_or_default(),
                    extra_input: r.extra_input.unwrap_or_default(),
                    // Compiled once the identity's issuers are known (`resource_metadata`).
                    protected_resource: None,
                }
            })
            .collect()
    }

    fn identity(&mut self, doc: config::IdentityDoc) -> IdentityPolicy {
        let issuer_scopes = match (&doc.source, &doc.jwt) {
            (config::TokenSource::Jwt, Some(jwt)) => jwt
                .issuers
                .iter()
                .filter_map(|i| Some((i.issuer.clone(), i.scopes.clone()?)))
                .collect(),
            _ => Vec::new(),
        };
        let token = match doc.source {
            config::TokenSource::Jwt => {
                if doc.jwt_authn.is_some() {
                    self.err("identity.jwt_authn", "set only when identity.source is \"jwt_authn\"");
                }
                match doc.jwt {
                    Some(jwt) => self.jwt(jwt),
                    None => {
                        self.err("identity.jwt", "required when identity.source is \"jwt\"");
                        TokenSource::Jwt {
                            header: String::new(),
                            issuers: Vec::new(),
                            forward: false,
                        }
                    }
                }
            }
            config::TokenSource::JwtAuthn => {
                if doc.jwt.is_some() {
                    self.err("identity.jwt", "set only when identity.source is \"jwt\"");
                }
                match doc.jwt_authn {
                    Some(j) => {
                        self.non_empty("identity.jwt_authn.payload_key", &j.payload_key);
                        self.non_empty("identity.jwt_authn.namespace", &j.namespace);
                        TokenSource::JwtAuthn {
                            namespace: j.namespace,
                            payload_key: j.payload_key,
                        }
                    }
                    None => {
                        self.err("identity.jwt_authn", "required when identity.source is \"jwt_authn\"");
                        TokenSource::JwtAuthn {
                            namespace: String::new(),
                            payload_key: String::new(),
                        }
                    }
                }
            }
        };
        self.non_empty("identity.claims.subject", &doc.claims.subject);
        self.non_empty("identity.claims.tenant", &doc.claims.tenant);
        self.non_empty("identity.claims.scopes", &doc.claims.scopes);
        let workload = doc.workload.map(|w| {
            for (i, td) in w.spiffe_trust_domains.iter().enumerate() {
                if td.is_empty() || td.contains('/') || td.contains(':') {
                    self.err(
                        format!("identity.workload.spiffe_trust_domains[{i}]"),
                        "a trust domain is a bare name such as \"example.org\"",
                    );
                }
            }
            if w.spiffe_trust_domains.is_empty() && w.claim.is_none() {
                self.err("identity.workload", "name spiffe_trust_domains, a claim, or both");
            }
            if w.require_mtls && w.spiffe_trust_domains.is_empty() {
                self.err(
                    "identity.workload.require_mtls",
                    "needs spiffe_trust_domains to trust a peer",
                );
            }
            let claim = w.claim.map(|c| {
                let parts: Vec<String> = c.split('.').map(str::to_string).collect();
                if parts.iter().any(String::is_empty) {
                    self.err("identity.workload.claim", "not a claim path");
                }
                parts
            });
            WorkloadSource {
                trust_domains: w.spiffe_trust_domains,
                claim,
                require_mtls: w.require_mtls,
            }
        });
        let bind_session = doc.bind_session.map(|b| {
            self.non_empty("identity.bind_session.claim", &b.claim);
            self.header_name("identity.bind_session.header", &b.header);
            SessionBinding {
                claim: b.claim,
                header: b.header.to_ascii_lowercase(),
            }
        });
        if doc.max_token_lifetime_seconds == Some(0) {
            self.err("identity.max_token_lifetime_seconds", "must be positive");
        }
        if doc.clock_skew_seconds > 300 {
            self.err(
                "identity.clock_skew_seconds",
                "more than 300 seconds of skew defeats expiry",
            );
        }
        IdentityPolicy {
            issuer_scopes,
            token,
            subject_claim: doc.claims.subject,
            tenant_claim: doc.claims.tenant,
            scopes_claim: doc.claims.scopes,
            workload,
            bind_session,
            skew: doc.clock_skew_seconds,
            max_lifetime: doc.max_token_lifetime_seconds,
        }
    }

    fn header_name(&mut self, path: &str, h: &str) {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            self.err(path, "not an HTTP header name");
        }
    }

    fn jwt(&mut self, jwt: config::JwtDoc) -> TokenSource {
        self.header_name("identity.jwt.header", &jwt.header);
        if jwt.issuers.is_empty() {
            self.err("identity.jwt.issuers", "at least one issuer is required");
        }
        let mut seen = Vec::new();
        let issuers = jwt
            .issuers
            .into_iter()
            .enumerate()
            .filter_map(|(i, iss)| {
                let path = format!("identity.jwt.issuers[{i}]");
                self.non_empty(&format!("{path}.issuer"), &iss.issuer);
                if seen.contains(&iss.issuer) {
                    self.err(format!("{path}.issuer"), "duplicate issuer");
                }
                seen.push(iss.issuer.clone());
                if iss.audiences.is_empty() || iss.audiences.iter().any(String::is_empty) {
                    self.err(format!("{path}.audiences"), "name at least one non-empty audience");
                }
                for (j, s) in iss.scopes.iter().flatten().enumerate() {
                    self.pattern(&format!("{path}.scopes[{j}]"), s);
                }
                let keys = KeySet::from_jwks(&iss.jwks)
                    .map_err(|m| self.err(format!("{path}.jwks"), m))
                    .ok()?;
                Some(Issuer {
                    issuer: iss.issuer,
                    audiences: iss.audiences,
                    keys,
                })
            })
            .collect();
        TokenSource::Jwt {
            header: jwt.header.to_ascii_lowercase(),
            issuers,
            forward: jwt.forward,
        }
    }

    fn ceilings(&mut self, docs: Vec<config::WorkloadDoc>, named: &HashMap<String, Vec<Pattern>>) -> Vec<Ceiling> {
        docs.into_iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let path = format!("workloads[{i}]");
                self.non_empty(&format!("{path}.id"), &w.id);
                for (j, s) in w.scopes.iter().enumerate() {
                    if !named.contains_key(s) {
                        self.pattern(&format!("{path}.scopes[{j}]"), s);
                    }
                }
                let matcher = match (w.exact, w.match_prefix) {
                    (Some(e), None) if !e.is_empty() => WorkloadMatch::Exact(e),
                    // A prefix ends at a delimiter, or spiffe://example.org/ns/agents would
                    // also cover spiffe://example.org/ns/agents-untrusted/…
                    (None, Some(p)) if p.ends_with(['/', ':', '.', '-', '_', '@']) => WorkloadMatch::Prefix(p),
                    (None, Some(p)) if !p.is_empty() => {
                        self.err(
                            format!("{path}.match_prefix"),
                            format!("{p:?} must end with a delimiter ('/', ':', '.', '-', '_' or '@'), as in \"spiffe://example.org/ns/agents/\""),
                        );
                        return None;
                    }
                    _ => {
                        self.err(&path, "set exactly one of \"match\" or \"match_prefix\" (non-empty)");
                        return None;
                    }
                };
                Some(Ceiling {
                    id: w.id,
                    matcher,
                    scopes: w.scopes,
                })
            })
            .collect()
    }

    fn tools(&mut self, docs: std::collections::BTreeMap<String, config::ToolDoc>) -> HashMap<String, Tool> {
        docs.into_iter()
            .map(|(name, t)| {
                let path = format!("tools.{name}");
                self.owner(&path, &t.owner);
                if name.is_empty() {
                    self.err(&path, "tool name must not be empty");
                }
                if let Some(Pattern::Prefix(_) | Pattern::Any) = self.pattern(&format!("{path}.intent"), &t.intent) {
                    self.err(format!("{path}.intent"), "an intent is a plain name, not a wildcard");
                }
                let constraints = t
                    .constraints
                    .into_iter()
                    .map(|(ptr, c)| {
                        let cpath = format!("{path}.constraints.{ptr}");
                        self.pointer(&cpath, &ptr);
                        (ArgPath::new(&ptr), self.constraint(&cpath, c))
                    })
                    .collect();
                let bind = t
                    .bind
                    .into_iter()
                    .map(|(ptr, claim)| {
                        let bpath = format!("{path}.bind.{ptr}");
                        self.pointer(&bpath, &ptr);
                        self.non_empty(&bpath, &claim);
                        (ArgPath::new(&ptr), claim)
                    })
                    .collect();
                let param_headers = self.param_headers(&path, t.param_headers);
                let tool = Tool {
                    name: name.clone(),
                    intent: t.intent,
                    impact: t.impact,
                    owner: t.owner,
                    constraints,
                    bind,
                    param_headers,
                };
                (name, tool)
            })
            .collect()
    }

    /// A tool's `x-mcp-header` declarations, held to what MCP asks of them: names that are
    /// HTTP tokens (RFC 9110), unique in any case, each mirroring one argument.
    fn param_headers(
        &mut self,
        path: &str,
        docs: std::collections::BTreeMap<String, String>,
    ) -> Vec<(String, ArgPath)> {
        let mut seen: Vec<String> = Vec::new();
        docs.into_iter()
            .map(|(header, ptr)| {
                let hpath = format!("{path}.param_headers.{header}");
                let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
                if header.is_empty() || !header.bytes().all(token) {
                    self.err(
                        &hpath,
                        "a mirror header name is an HTTP token (letters, digits and !#$%&'*+-.^_`|~), as in \"Region\"",
                    );
                } else if seen.iter().any(|s| s.eq_ignore_ascii_case(&header)) {
                    self.err(
                        &hpath,
                        "mirror header names are compared in any case, and this one is declared twice",
                    );
                }
                self.pointer(&hpath, &ptr);
                seen.push(header.clone());
                (header, ArgPath::new(&ptr))
            })
            .collect()
    }

    fn pointer(&mut self, path: &str, ptr: &str) {
        if !ptr.starts_with('/') {
            self.err(path, "argument paths are JSON pointers and start with '/'");
        }
    }

    fn constraint(&mut self, path: &str, c: ConstraintDoc) -> Constraint {
        if let (Some(min), Some(max)) = (c.min, c.max) {
            if min > max {
                self.err(path, "min is greater than max");
            }
        }
        let any = c.max.is_some()
            || c.min.is_some()
            || c.one_of.is_some()
            || c.max_length.is_some()
            || c.prefix_in.is_some()
            || c.suffix_in.is_some()
            || c.max_items.is_some();
        if !any && !c.required {
            self.err(path, "a constraint must restrict something");
        }
        for (field, list) in [("prefix_in", &c.prefix_in), ("suffix_in", &c.suffix_in)] {
            if let Some(l) = list {
                if l.is_empty() || l.iter().any(String::is_empty) {
                    self.err(format!("{path}.{field}"), "list non-empty strings");
                }
            }
        }
        // A URL prefix ending at its host also covers `https://api.corp.com.evil.io/` and
        // `https://api.corp.com@evil.io/`: like a route's `url_prefix`, it must name a path.
        for (i, p) in c.prefix_in.iter().flatten().enumerate() {
            let authority = p.split_once("://").map(|(_, rest)| rest);
            if authority.is_some_and(|rest| !rest.contains(['/', '?', '#'])) {
                self.err(
                    format!("{path}.prefix_in[{i}]"),
                    format!(
                        "{p:?} ends at its host, so it also covers other hosts that start alike: end it with \"/\""
                    ),
                );
            }
        }
        // `@domain` holds an address to a domain, which must be one.
        for (i, x) in c.suffix_in.iter().flatten().enumerate() {
            let domain = x.strip_prefix('@');
            let name = |d: &str| {
                d.split('.')
                    .all(|label| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            };
            if domain.is_some_and(|d| !name(d)) {
                self.err(
                    format!("{path}.suffix_in[{i}]"),
                    format!("{x:?} names no mail domain: write \"@\" and a domain in ASCII labels (punycode for an international one), such as \"@corp.example\""),
                );
            }
        }
        if c.one_of.as_ref().is_some_and(Vec::is_empty) {
            self.err(format!("{path}.enum"), "must list at least one value");
        }
        Constraint {
            required: c.required,
            max: c.max,
            min: c.min,
            one_of: c.one_of,
            max_length: c.max_length,
            prefix_in: c.prefix_in,
            suffix_in: c.suffix_in,
            max_items: c.max_items,
        }
    }

    fn resources(&mut self, docs: Vec<config::ResourceRuleDoc>) -> Vec<ResourceRule> {
        docs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("data.resources[{i}]");
                self.data_rule(&path, &r.id, &r.scope, &r.owner);
                let uri_prefix = match parse_template(&r.uri_prefix) {
                    Ok(parts) => parts,
                    Err(m) => {
                        self.err(format!("{path}.uri_prefix"), m);
                        Vec::new()
                    }
                };
                self.holes_closed(&format!("{path}.uri_prefix"), &uri_prefix);
                if !r.uri_prefix.contains(':') {
                    self.err(
                        format!("{path}.uri_prefix"),
                        "must include a URI scheme, as in \"docs://{tenant}/\"",
                    );
                }
                ResourceRule {
                    id: r.id,
                    uri_prefix,
                    scope: r.scope,
                    owner: r.owner,
                }
            })
            .collect()
    }

    fn models(&mut self, path: &str, list: &[String]) -> Vec<ModelPattern> {
        list.iter()
            .enumerate()
            .filter_map(|(i, m)| {
                ModelPattern::parse(m)
                    .map_err(|e| self.err(format!("{path}[{i}]"), e))
                    .ok()
            })
            .collect()
    }

    fn template(&mut self, path: &str, s: &str) -> Vec<TemplatePart> {
        parse_template(s).unwrap_or_else(|m| {
            self.err(path, m);
            Vec::new()
        })
    }

    /// `data.vector_stores` or `data.files` (`kind`): ids by exact text or claim template.
    fn stores(&mut self, kind: &'static str, docs: Vec<config::VectorStoreRuleDoc>) -> Vec<StoreRule> {
        docs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("data.{kind}[{i}]");
                self.data_rule(&path, &r.id, &r.scope, &r.owner);
                if r.ids.is_empty() {
                    self.err(format!("{path}.ids"), "list at least one id or template");
                }
                let ids = r
                    .ids
                    .iter()
                    .enumerate()
                    .map(|(j, id)| {
                        let ipath = format!("{path}.ids[{j}]");
                        self.non_empty(&ipath, id);
                        // Provider ids hold no `*`: one here is a pattern meant, which an
                        // exact match would silently never honour.
                        if id.contains('*') {
                            self.err(
                                &ipath,
                                format!(
                                    "ids are matched exactly, so {id:?} would only match an id spelled with '*': \
                                     list the ids, or template one with a claim, as in \"vs_{{tenant}}\""
                                ),
                            );
                        }
                        self.template(&ipath, id)
                    })
                    .collect();
                StoreRule {
                    kind,
                    id: r.id,
                    ids,
                    scope: r.scope,
                    owner: r.owner,
                }
            })
            .collect()
    }

    fn prompts(&mut self, docs: Vec<config::PromptRuleDoc>) -> Vec<PromptRule> {
        docs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("data.prompts[{i}]");
                self.data_rule(&path, &r.id, &r.scope, &r.owner);
                if r.names.is_empty() {
                    self.err(format!("{path}.names"), "list at least one prompt name");
                }
                for (j, n) in r.names.iter().enumerate() {
                    let npath = format!("{path}.names[{j}]");
                    if n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control()) {
                        self.err(&npath, format!("{n:?} is not a prompt name"));
                    } else if n.trim_end_matches('*').contains('*') || n.ends_with("**") {
                        self.err(&npath, "a wildcard may only end a name, as in \"support_*\"");
                    }
                }
                PromptRule {
                    id: r.id,
                    names: r.names.iter().map(|n| NamePattern::parse(n)).collect(),
                    scope: r.scope,
                    owner: r.owner,
                }
            })
            .collect()
    }

    fn mcp_servers(&mut self, docs: Vec<config::McpServerRuleDoc>) -> Vec<McpServerRule> {
        docs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let path = format!("data.mcp_servers[{i}]");
                self.data_rule(&path, &r.id, &r.scope, &r.owner);
                let upath = format!("{path}.url_prefix");
                let url_prefix = self.template(&upath, &r.url_prefix);
                self.holes_closed(&upath, &url_prefix);
                // The prefix must pin scheme and host, or `https://mcp.example.com` would
                // also cover `https://mcp.example.com.evil.net`.
                let pinned = ["https://", "http://"].iter().any(|scheme| {
                    r.url_prefix
                        .strip_prefix(scheme)
                        .is_some_and(|rest| rest.find('/').is_some_and(|slash| slash > 0))
                });
                if !pinned {
                    self.err(
                        upath,
                        "must be an http(s) URL with a path, as in \"https://mcp.example.com/{tenant}/\"",
                    );
                }
                McpServerRule {
                    id: r.id,
                    url_prefix,
                    scope: r.scope,
                    owner: r.owner,
                    provider_calls: r.provider_calls,
                }
            })
            .collect()
    }

    fn limits(&mut self, l: config::LimitsDoc) -> Limits {
        if l.max_body_bytes == 0 || l.max_body_bytes > 64 * 1024 * 1024 {
            self.err("limits.max_body_bytes", "must be between 1 and 67108864");
        }
        if l.max_json_depth < 4 || l.max_json_depth > super::MAX_JSON_DEPTH {
            self.err(
                "limits.max_json_depth",
                format!("must be between 4 and {}", super::MAX_JSON_DEPTH),
            );
        }
        if l.max_batch_size == 0 || l.max_batch_size > 1024 {
            self.err("limits.max_batch_size", "must be between 1 and 1024");
        }
        if l.max_task_seconds == 0 || l.max_task_seconds > super::MAX_TASK_SECONDS {
            self.err(
                "limits.max_task_seconds",
                format!("must be between 1 and {}", super::MAX_TASK_SECONDS),
            );
        }
        // A caller's tasks share a bucket of the record with those of 1 in 64 callers: at
        // most an eighth of it each, so that no one caller fills it for the others.
        let most = crate::ledger::BUCKET_CAPACITY / 8;
        if l.max_tasks_per_caller == 0 || l.max_tasks_per_caller > most {
            self.err(
                "limits.max_tasks_per_caller",
                format!(
                    "must be between 1 and {most} (a caller's tasks share a bucket of {} with other callers)",
                    crate::ledger::BUCKET_CAPACITY
                ),
            );
        }
        Limits {
            max_body_bytes: l.max_body_bytes,
            max_json_depth: l.max_json_depth,
            max_batch_size: l.max_batch_size,
            max_task_seconds: l.max_task_seconds,
            max_tasks_per_caller: l.max_tasks_per_caller,
        }
    }

    fn approval(&mut self, a: config::ApprovalDoc) -> Option<ApprovalPolicy> {
        self.header_name("approval.header", &a.header);
        self.non_empty("approval.issuer", &a.issuer);
        self.non_empty("approval.audience", &a.audience);
        if a.max_age_seconds == 0 || a.max_age_seconds > crate::approval::MAX_AGE_CEILING {
            self.err(
                "approval.max_age_seconds",
                format!(
                    "must be between 1 and {} (a day): an approval is for an action about to happen",
                    crate::approval::MAX_AGE_CEILING
                ),
            );
        }
        if a.restart_overlap_seconds > crate::approval::MAX_AGE_CEILING {
            self.err(
                "approval.restart_overlap_seconds",
                format!(
                    "must be at most {} (a day): set it to how long an older Envoy process keeps serving \
                     (--parent-shutdown-time-s)",
                    crate::approval::MAX_AGE_CEILING
                ),
            );
        }
        if let Some(url) = &a.request_url {
            if let Err(m) = parse_template(url) {
                self.err("approval.request_url", m);
            }
        }
        let keys = KeySet::from_jwks(&a.jwks)
            .map_err(|m| self.err("approval.jwks", m))
            .ok()?;
        Some(ApprovalPolicy {
            header: a.header.to_ascii_lowercase(),
            issuer: a.issuer,
            audience: a.audience,
            keys,
            max_age: a.max_age_seconds,
            restart_overlap: a.restart_overlap_seconds,
            request_url: a.request_url,
        })
    }
}

/// Splits `docs://{tenant}/x` into literal and `{claim}` parts.
impl Checker {
    /// A prefix's `{claim}` must be closed by a `/` (or `?`, `#`) later in the prefix, which
    /// no filled value may contain: `docs://{tenant}` filled for `acme` would also cover
    /// `docs://acme-corp/…`, while `docs://{tenant}/` covers acme's documents only.
    fn holes_closed(&mut self, path: &str, parts: &[TemplatePart]) {
        for (i, part) in parts.iter().enumerate() {
            let TemplatePart::Claim(name) = part else { continue };
            let closed = parts.iter().skip(i + 1).any(|p| match p {
                TemplatePart::Literal(l) => l.contains(['/', '?', '#']),
                TemplatePart::Claim(_) => false,
            });
            if !closed {
                self.err(
                    path,
                    format!(
                        "{{{name}}} must be followed by a '/' later in the prefix, as in \"docs://{{{name}}}/\": \
                         otherwise the prefix filled for one value also covers longer values (acme → acme-corp)"
                    ),
                );
            }
        }
    }
}

pub fn parse_template(s: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let (lit, after) = rest.split_at(open);
        if lit.contains('}') {
            return Err(format!("unbalanced '}}' in {s:?}"));
        }
        if !lit.is_empty() {
            parts.push(TemplatePart::Literal(lit.to_string()));
        }
        let after = after.get(1..).unwrap_or("");
        let close = after.find('}').ok_or_else(|| format!("unclosed '{{' in {s:?}"))?;
        let (name, tail) = after.split_at(close);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!("{{{name}}} is not a claim name"));
        }
        parts.push(TemplatePart::Claim(name.to_string()));
        rest = tail.get(1..).unwrap_or("");
    }
    if rest.contains('}') {
        return Err(format!("unbalanced '}}' in {s:?}"));
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
