//! The release gate's lints: how a policy answers the three questions (what may the AI
//! see, what may it do, who is accountable). An error keeps a policy from being ready;
//! a warning is reported and does not block.

use crate::config::{Impact, Mode};
use crate::policy::{DataRule, ModelPattern, NamePattern, Pattern, PatternRef, Policy, Route, TokenSource};
use serde::Serialize;

/// Longest token lifetime that counts as short-lived (one hour).
pub const MAX_TOKEN_LIFETIME: u64 = 3600;
/// Longest approval max_age before a warning (fifteen minutes).
pub const MAX_APPROVAL_AGE: u64 = 900;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// Which of the three questions a lint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Question {
    See,
    Do,
    Accountable,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub lint: &'static str,
    pub level: Level,
    pub question: Question,
    pub message: String,
}

pub fn lint(p: &Policy) -> Vec<Finding> {
    let mut f = Vec::new();
    let mut add = |lint, level, question, message: String| {
        f.push(Finding {
            lint,
            level,
            question,
            message,
        })
    };
    use Level::{Error, Warning};
    use Question::{Accountable, Do, See};

    if p.mode == Mode::Monitor {
        add(
            "fail-closed",
            Error,
            Do,
            "mode is monitor: denials are only recorded, nothing is blocked".into(),
        );
    }
    if p.unmatched_allow {
        add(
            "fail-closed",
            Error,
            See,
            "unmatched: allow passes requests no route covers without judging them".into(),
        );
    }
    // A route at `/` that lets input past its own endpoint takes every path no earlier
    // route takes, whatever it is: `unmatched: allow` by another name.
    for r in p.routes.iter().filter(|r| r.prefix.trim_end_matches('/').is_empty()) {
        let passes =
            if r.protocol == crate::config::Protocol::Action && r.extra_input == crate::config::ExtraInput::Allow {
                "a REST action at \"/\" with extra_input: allow: every request no earlier route takes is judged \
             as its tool, whatever endpoint it reaches"
            } else if r.protocol.is_llm() && r.provider_state == crate::config::ProviderState::Allow {
                "an LLM route at \"/\" with provider_state: allow: every request no earlier route takes reaches \
             the upstream for any authenticated caller: any method but POST, and any path, passes unjudged \
             (a DELETE or GET of any endpoint), and a POST anywhere is judged only as a model request"
            } else {
                continue;
            };
        add("fail-closed", Error, Do, format!("route {:?} is {passes}", r.id));
    }
    for (level, message) in hidden_routes(p) {
        add("unreachable-routes", level, Do, message);
    }
    for (whose, kid) in published_keys(p) {
        add(
            "published-key",
            Error,
            Accountable,
            format!(
                "{whose} trusts {}: its private half is public, so anyone can sign with it",
                kid
            ),
        );
    }

    // A secret the gateway holds is in its configuration, which Envoy's /config_dump, an
    // Istio WasmPlugin or an Envoy Gateway policy shows to whoever can read those.
    if let Some(a) = &p.approval {
        if a.keys.algs().any(|alg| alg == crate::jws::Alg::Hs256) {
            add(
                "approval-keys",
                Warning,
                Accountable,
                "approval.jwks holds an HS256 secret: whoever reads the gateway's configuration (Envoy's \
                 /config_dump, the WasmPlugin or EnvoyExtensionPolicy resource) can sign approvals; give \
                 the approval service an EdDSA or ES256 key, whose public half is all the gateway needs"
                    .into(),
            );
        }
    }
    if matches!(p.identity.token, crate::policy::TokenSource::Jwt { forward: true, .. }) {
        add(
            "token-forwarding",
            Warning,
            See,
            "identity.jwt.forward is true: the caller's token reaches the upstream, which could replay \
             it against any service that accepts it; let the upstream trust the gateway instead"
                .into(),
        );
    }

    // Who is accountable: identity and owners.
    match p.identity.max_lifetime {
        None => add(
            "short-lived-tokens",
            Error,
            Accountable,
            "identity.max_token_lifetime_seconds is not set: long-lived tokens are accepted".into(),
        ),
        Some(s) if s > MAX_TOKEN_LIFETIME => add(
            "short-lived-tokens",
            Error,
            Accountable,
            format!("identity.max_token_lifetime_seconds is {s}: tokens should live at most {MAX_TOKEN_LIFETIME}s"),
        ),
        Some(_) => {}
    }
    // Every request is tied to the agent that sends it, not only to a user's token.
    if p.identity.workload.is_none() {
        add(
            "workload-identity",
            Error,
            Accountable,
            "identity.workload is not set: requests are not tied to a calling workload, so a user's \
             token works from any agent"
                .into(),
        );
    }
    if let Some(w) = &p.identity.workload {
        if w.trust_domains.is_empty() && w.claim.is_some() {
            add(
                "workload-identity",
                Warning,
                Accountable,
                "the workload is named by a token claim only: whoever holds a token brings its workload \
                 (and that workload's ceiling); identify workloads by mTLS (spiffe_trust_domains)"
                    .into(),
            );
        }
        if !w.trust_domains.is_empty() && w.claim.is_some() && !w.require_mtls {
            add(
                "workload-identity",
                Warning,
                Accountable,
                "a caller without a client certificate is identified by its token's workload claim: \
                 set identity.workload.require_mtls where every caller comes through the mesh"
                    .into(),
            );
        }
    }
    if p.ceilings.is_empty() {
        add(
            "workload-ceilings",
            Warning,
            Do,
            "no workload ceilings: an agent may use every scope its user's token holds".into(),
        );
    }
    // With several identity providers, each one trusted for every scope makes the weakest
    // (a partner's, an HS256 shared secret) as strong as the main one.
    if let crate::policy::TokenSource::Jwt { issuers, .. } = &p.identity.token {
        if issuers.len() > 1 {
            let limited = |i: &&crate::policy::Issuer| p.identity.issuer_scopes.iter().any(|(n, _)| *n == i.issuer);
            for i in issuers.iter().filter(|i| !limited(i)) {
                add(
                    "issuer-scopes",
                    Warning,
                    Do,
                    format!(
                        "issuer {:?} is one of several and may grant every scope: give it `scopes`",
                        i.issuer
                    ),
                );
            }
        }
    }
    let mcp = p.routes.iter().any(|r| r.protocol == crate::config::Protocol::Mcp);
    if mcp && p.identity.bind_session.is_none() {
        add(
            "session-bound",
            Warning,
            Accountable,
            "identity.bind_session is not set: a token is not bound to one MCP session".into(),
        );
    }
    if let TokenSource::Jwt { issuers, .. } = &p.identity.token {
        if issuers.iter().any(|i| i.audiences.iter().any(|a| a == "*")) {
            add(
                "token-audience",
                Error,
                Accountable,
                "an issuer accepts audience \"*\"".into(),
            );
        }
    }
    if p.identity.skew > 60 {
        add(
            "short-lived-tokens",
            Warning,
            Accountable,
            format!(
                "identity.clock_skew_seconds is {}: more than a minute of grace",
                p.identity.skew
            ),
        );
    }

    // What may it do: scopes, tools, approvals.
    let mut named: Vec<(&String, &Vec<Pattern>)> = p.scopes.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, patterns) in named {
        if patterns.iter().any(|x| matches!(x, Pattern::Any)) {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("scope {name:?} grants every intent (\"*\")"),
            );
        }
    }
    for c in &p.ceilings {
        if c.scopes.iter().any(|s| s == "*") {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("workload ceiling {:?} allows every scope (\"*\")", c.id),
            );
        }
        // A prefix that stops at the trust domain names no workload in particular.
        if let crate::policy::WorkloadMatch::Prefix(prefix) = &c.matcher {
            let rest = prefix.strip_prefix("spiffe://").unwrap_or(prefix);
            if rest.trim_end_matches('/').split('/').count() < 2 {
                add(
                    "workload-ceilings",
                    Warning,
                    Do,
                    format!(
                        "workload ceiling {:?} matches the prefix {prefix:?}: every workload of the trust domain \
                         gets its scopes; name a path (spiffe://domain/ns/agents/)",
                        c.id
                    ),
                );
            }
        }
    }
    for (issuer, scopes) in &p.identity.issuer_scopes {
        if scopes.iter().any(|s| s == "*") {
            add(
                "no-bare-star",
                Error,
                Do,
                format!("issuer {issuer:?} may grant every scope (\"*\")"),
            );
        }
    }
    let mut tools: Vec<_> = p.tools.values().collect();
    tools.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &tools {
        if t.impact == Impact::External {
            if t.owner.is_none() {
                add(
                    "external-owner",
                    Error,
                    Accountable,
                    format!("external-impact tool {:?} names no owner of its own", t.name),
                );
            }
            if p.approval.is_none() {
                add(
                    "external-approval",
                    Warning,
                    Do,
                    format!(
                        "external-impact tool {:?} can never run: no approval section to verify grants",
                        t.name
                    ),
                );
            }
        }
        // `/to/0` holds the first recipient to the rule and lets `/to/1` through.
        for ptr in t.constraints.iter().map(|(ptr, _)| ptr).filter(|ptr| ptr.has_index()) {
            add(
                "list-constraints",
                Warning,
                Do,
                format!(
                    "tool {:?} constrains {ptr}, one element of a list: the others pass unchecked; constrain the \
                     list itself and declare it with max_items, which applies the rules to every element",
                    t.name
                ),
            );
        }
        if t.impact != Impact::Read && t.bind.is_empty() {
            add(
                "bound-arguments",
                Warning,
                Do,
                format!(
                    "{} tool {:?} binds no argument to the caller (bind)",
                    crate::audit::impact_label(t.impact),
                    t.name
                ),
            );
        }
    }
    // Ceilings are checked against what the policy catalogues: an entry that grants none of
    // it is most likely a typo, and a tool that no ceiling allows can never be called.
    if !p.ceilings.is_empty() {
        let wanted: Vec<&str> = tools
            .iter()
            .map(|t| t.intent.as_str())
            .chain(p.data_rules().map(|r| r.scope()))
            .collect();
        for c in &p.ceilings {
            for entry in c.scopes.iter().filter(|s| *s != "*" && !p.scopes.contains_key(*s)) {
                let grants = wanted.iter().any(|w| p.scope_grants(entry, w));
                // A pattern may also stand for named scopes that carry models.
                let models = PatternRef::parse(entry).is_ok_and(|x| p.scope_models.keys().any(|m| x.matches(m)));
                if !grants && !models {
                    add(
                        "ceiling-scopes",
                        Warning,
                        Do,
                        format!(
                            "workload ceiling {:?} lists {entry:?}, which is no named scope and grants no intent of \
                             the tool catalogue nor any data rule's scope: if it is a typo, the calls it was meant \
                             to allow are scope_missing",
                            c.id
                        ),
                    );
                }
            }
        }
        for t in &tools {
            let allowed = p
                .ceilings
                .iter()
                .any(|c| c.scopes.iter().any(|s| p.scope_grants(s, &t.intent)));
            if !allowed {
                add(
                    "ceiling-tools",
                    Warning,
                    Do,
                    format!(
                        "tool {:?} (intent {:?}) is allowed by no workload ceiling: every call to it is scope_missing",
                        t.name, t.intent
                    ),
                );
            }
        }
    }
    if let Some(a) = &p.approval {
        if a.max_age > MAX_APPROVAL_AGE {
            add(
                "approval-max-age",
                Warning,
                Do,
                format!(
                    "approval.max_age_seconds is {}: grants should be used within minutes",
                    a.max_age
                ),
            );
        }
    }

    // What may it see: models and data.
    if p.models.iter().any(|m| matches!(m, ModelPattern::Any)) {
        add(
            "no-bare-star",
            Warning,
            See,
            "models.allow lets every caller use any model (\"*\")".into(),
        );
    }
    let mut scope_models: Vec<_> = p.scope_models.iter().collect();
    scope_models.sort_by(|a, b| a.0.cmp(b.0));
    for (name, models) in scope_models {
        if models.iter().any(|m| matches!(m, ModelPattern::Any)) {
            add(
                "no-bare-star",
                Warning,
                See,
                format!("scope {name:?} lets its holders use any model (\"*\")"),
            );
        }
    }
    // Route settings that let something through unjudged: one warning per route using one.
    type Applies = fn(&Policy, &crate::policy::Route) -> bool;
    let unjudged: [(&str, Question, Applies, &str); 9] = [
        (
            "provider-state",
            See,
            |_, r| r.provider_state == crate::config::ProviderState::Allow,
            "lets requests reach state the provider keeps (previous_response_id, conversation, \
             stored prompts and objects), which aigate cannot judge",
        ),
        (
            "action-extra-input",
            Do,
            |_, r| r.protocol == crate::config::Protocol::Action && r.extra_input == crate::config::ExtraInput::Allow,
            "passes a query string, a path below its prefix and non-JSON bodies unjudged: an upstream \
             that reads parameters from them acts on values aigate never saw",
        ),
        (
            "model-calls",
            Do,
            |_, r| r.protocol.is_llm() && r.model_calls == crate::config::ModelCalls::Pass,
            "passes the model's answers unread: a tool call the model was talked into reaches the \
             client unjudged",
        ),
        (
            "mcp-lists",
            See,
            |_, r| r.protocol == crate::config::Protocol::Mcp && r.lists == crate::config::Lists::Pass,
            "shows the agent every tool, prompt and resource the server lists, including those it \
             may not use",
        ),
        (
            "mcp-answer-resources",
            See,
            |_, r| {
                r.protocol == crate::config::Protocol::Mcp && r.answer_resources == crate::config::AnswerResources::Pass
            },
            "passes the resources a server links or embeds in its answers unread: another tenant's \
             data in a tool's result reaches the agent",
        ),
        (
            "mcp-tasks",
            See,
            |_, r| r.protocol == crate::config::Protocol::Mcp && r.tasks == crate::config::Tasks::Pass,
            "lets any caller follow, steer or cancel any task by its id: whoever learns another \
             caller's task id reads that caller's result, unless the server binds tasks itself",
        ),
        (
            "mcp-sessions",
            See,
            |_, r| r.protocol == crate::config::Protocol::Mcp && r.sessions == crate::config::Sessions::Pass,
            "lets any caller act in any MCP session by its id: whoever learns another caller's \
             Mcp-Session-Id answers what the server asked there or ends it, unless the server binds sessions itself",
        ),
        (
            "mcp-unknown-methods",
            Do,
            |_, r| {
                r.protocol == crate::config::Protocol::Mcp && r.unknown_methods == crate::config::UnknownMethods::Pass
            },
            "passes MCP methods aigate does not know unjudged: a server extension or a later \
             protocol revision's method may act or read data nobody checked",
        ),
        (
            "action-methods",
            Do,
            |_, r| r.protocol == crate::config::Protocol::Action && r.methods.is_empty(),
            "is a REST action for every method: a DELETE or PUT to its endpoint is judged as its one \
             tool, whatever the endpoint does with that method; list the methods it serves (methods)",
        ),
    ];
    for (lint, question, applies, finding) in unjudged {
        for r in p.routes.iter().filter(|r| applies(p, r)) {
            add(lint, Warning, question, format!("route {:?} {finding}", r.id));
        }
    }
    if p.hold == crate::config::Hold::Body {
        // Said as the policy says it: a policy without `hold` never chose `body`.
        let hold = if p.hold_given {
            "hold: body"
        } else {
            "hold defaults to body"
        };
        for r in p
            .routes
            .iter()
            .filter(|r| r.protocol == crate::config::Protocol::Action)
        {
            add(
                "action-hold-body",
                Warning,
                Do,
                format!(
                    "route {:?} is a REST action and the policy holds only the body ({hold}): its endpoint gets \
                     the request line before the verdict, and one that acts without reading the body acts on \
                     requests aigate then refuses; use hold: headers where the host allows it",
                    r.id
                ),
            );
        }
    }
    for r in p
        .mcp_servers
        .iter()
        .filter(|r| r.provider_calls == crate::config::ProviderCalls::Any)
    {
        add(
            "provider-calls",
            Warning,
            Do,
            format!(
                "remote MCP servers of data.mcp_servers {:?} may have their tools run by the model provider \
                 without asking: those calls are never judged",
                r.id
            ),
        );
    }
    for r in &p.prompts {
        if r.names
            .iter()
            .any(|n| matches!(n, NamePattern::Prefix(stem) if stem.is_empty()))
        {
            add(
                "no-bare-star",
                Warning,
                See,
                format!("{} opens every prompt of the server (\"*\")", r.rule()),
            );
        }
    }
    // Data a scope opens to every holder alike, whatever their tenant or customer.
    let shared = |parts: &[crate::policy::TemplatePart]| {
        !parts.iter().any(|t| matches!(t, crate::policy::TemplatePart::Claim(_)))
    };
    let resources = p
        .resources
        .iter()
        .filter(|r| shared(&r.uri_prefix))
        .map(|r| r as &dyn DataRule);
    let servers = p
        .mcp_servers
        .iter()
        .filter(|r| shared(&r.url_prefix))
        .map(|r| r as &dyn DataRule);
    for rule in resources.chain(servers) {
        add(
            "tenant-boundary",
            Warning,
            See,
            format!(
                "{} names no claim ({{tenant}}, …): every holder of scope {:?} reaches the same data, \
                 whoever they act for; fine for data shared by design",
                rule.rule(),
                rule.scope()
            ),
        );
    }
    for rule in p.data_rules() {
        if rule.owner().is_none() {
            add(
                "data-owner",
                Warning,
                Accountable,
                format!(
                    "{} names no owner: the route's or the default owner answers for its data",
                    rule.rule()
                ),
            );
        }
    }
    f
}

/// Routes that earlier routes hide (first match wins), judged with the engine's own
/// matching: an error for a route no request can reach (its requests are judged by
/// another route's rules: an external tool's endpoint reached as a read tool's), a warning
/// naming the methods and hosts another route takes from it.
fn hidden_routes(p: &Policy) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    for (i, route) in p.routes.iter().enumerate() {
        let earlier = p.routes.get(..i).unwrap_or_default();
        // Earlier routes taking every path of this one: its prefix is one of their paths.
        let covering: Vec<&Route> = earlier.iter().filter(|e| e.takes_path(&route.prefix)).collect();
        // The methods and hosts to try: this route's own, else those the covering routes
        // name plus `None`, any other.
        let methods: Vec<Option<&str>> = if route.methods.is_empty() {
            let mut named: Vec<&str> = covering
                .iter()
                .flat_map(|e| e.methods.iter().map(String::as_str))
                .collect();
            named.sort_unstable();
            named.dedup();
            named.into_iter().map(Some).chain([None]).collect()
        } else {
            route.methods.iter().map(|m| Some(m.as_str())).collect()
        };
        let hosts: Vec<Option<&str>> = match &route.host {
            Some(h) => vec![Some(h.as_str())],
            None => {
                let mut named: Vec<&str> = covering.iter().filter_map(|e| e.host.as_deref()).collect();
                named.sort_unstable();
                named.dedup();
                named.into_iter().map(Some).chain([None]).collect()
            }
        };
        let takes = |e: &Route, m: Option<&str>, h: Option<&str>| e.takes_method(m) && e.takes_host(h);
        let hidden = methods
            .iter()
            .all(|m| hosts.iter().all(|h| covering.iter().any(|e| takes(e, *m, *h))));
        if hidden && !covering.is_empty() {
            let by: Vec<String> = covering
                .iter()
                .filter(|e| methods.iter().any(|m| hosts.iter().any(|h| takes(e, *m, *h))))
                .map(|e| format!("{:?}", e.id))
                .collect();
            let tool = route
                .tool
                .as_ref()
                .and_then(|t| p.tools.get(t))
                .map(|t| {
                    format!(
                        ": the endpoint of {} tool {:?} is reached without its checks",
                        crate::audit::impact_label(t.impact),
                        t.name
                    )
                })
                .unwrap_or_default();
            out.push((
                Level::Error,
                format!(
                    "route {:?} is never reached: earlier route {} takes every request it matches (first match \
                     wins), so its requests are judged by that route's rules instead{tool}",
                    route.id,
                    by.join(" and ")
                ),
            ));
            continue;
        }
        for e in &covering {
            let taken: Vec<(Option<&str>, Option<&str>)> = methods
                .iter()
                .flat_map(|m| hosts.iter().map(move |h| (*m, *h)))
                .filter(|(m, h)| takes(e, *m, *h))
                .collect();
            if !taken.is_empty() {
                out.push((
                    Level::Warning,
                    format!(
                        "route {:?} is partly hidden by earlier route {:?} (first match wins): its {} go to that route",
                        route.id,
                        e.id,
                        requests(route, e)
                    ),
                ));
            }
        }
        // An earlier route at this prefix with a trailing `/` takes every path below it.
        if route.prefix.ends_with('/') {
            continue;
        }
        let below = format!("{}/", route.prefix);
        for e in earlier
            .iter()
            .filter(|e| !e.takes_path(&route.prefix) && e.takes_path(&below))
        {
            let taken = methods.iter().any(|m| hosts.iter().any(|h| takes(e, *m, *h)));
            if taken {
                out.push((
                    Level::Warning,
                    format!(
                        "route {:?} is partly hidden by earlier route {:?} (first match wins): its {} below {:?} go \
                         to that route, so it is reached only at {:?} itself",
                        route.id,
                        e.id,
                        requests(route, e),
                        route.prefix,
                        route.prefix
                    ),
                ));
            }
        }
    }
    out
}

/// The requests of `route` that `earlier` also takes, by method and host: `GET, DELETE
/// requests on host api.example.com`.
fn requests(route: &Route, earlier: &Route) -> String {
    let methods: Vec<&str> = match (route.methods.is_empty(), earlier.methods.is_empty()) {
        (_, true) => Vec::new(),
        (true, false) => earlier.methods.iter().map(String::as_str).collect(),
        (false, false) => route
            .methods
            .iter()
            .filter(|m| earlier.methods.contains(m))
            .map(String::as_str)
            .collect(),
    };
    let mut s = if methods.is_empty() {
        "requests".to_string()
    } else {
        format!("{} requests", methods.join(", "))
    };
    if let (None, Some(h)) = (&route.host, &earlier.host) {
        s.push_str(&format!(" on host {h}"));
    }
    s
}

/// Keys published with their private half: the examples of the JOSE RFCs and of common
/// tools. A policy that trusts one accepts whatever anyone signs with it: sample keys
/// copied into a deployment are a classic way for a token check to become no check.
/// Only keys a policy can hold are listed: the RFCs' P-521 keys (RFC 7515 A.4, RFC 7520
/// §3.1–3.2) and their keys under 32 bytes (RFC 7517 A.3's AES key, jwt.io's old
/// `your-256-bit-secret`) are refused by the policy itself.
const PUBLISHED_KEYS: [(&str, &str); 12] = [
    (
        "the Ed25519 example key of RFC 8037 (appendix A)",
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
    ),
    (
        "the HMAC example key of RFC 7515 (appendix A.1)",
        r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#,
    ),
    (
        "the RSA example key of RFC 7515 (appendix A.2)",
        r#"{"kty":"RSA","e":"AQAB","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"}"#,
    ),
    (
        "the P-256 example key of RFC 7515 (appendix A.3)",
        r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
    ),
    (
        "the RSA example key of RFC 7517 (appendix A.1, kid 2011-04-29)",
        r#"{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#,
    ),
    (
        "the P-256 example key of RFC 7517 (appendix A.1 and A.2, kid 1)",
        r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#,
    ),
    (
        "the P-256 example key of RFC 7518 (appendix C, the sender's)",
        r#"{"kty":"EC","crv":"P-256","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}"#,
    ),
    (
        "the P-256 example key of RFC 7518 (appendix C, the recipient's)",
        r#"{"kty":"EC","crv":"P-256","x":"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ","y":"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck"}"#,
    ),
    (
        "the RSA example key of RFC 7520 (sections 3.3 and 3.4, bilbo.baggins@hobbiton.example)",
        r#"{"kty":"RSA","e":"AQAB","n":"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"}"#,
    ),
    (
        "the HMAC example key of RFC 7520 (section 3.5)",
        r#"{"kty":"oct","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}"#,
    ),
    (
        "the AES example key of RFC 7520 (section 3.6)",
        r#"{"kty":"oct","k":"AAPapAv4LbFbiVawEjagUBluYqN5rhna-8nuldDvOx8"}"#,
    ),
    (
        "jwt.io's default HS256 secret",
        // base64url of "a-string-secret-at-least-256-bits-long"
        r#"{"kty":"oct","k":"YS1zdHJpbmctc2VjcmV0LWF0LWxlYXN0LTI1Ni1iaXRzLWxvbmc"}"#,
    ),
];

/// Each of [`PUBLISHED_KEYS`] with its RFC 7638 thumbprint.
fn published_prints() -> Vec<(&'static str, String)> {
    PUBLISHED_KEYS
        .iter()
        .filter_map(|(name, jwk)| {
            let jwk: serde_json::Value = serde_json::from_str(jwk).ok()?;
            let set = crate::jws::KeySet::from_jwks(&serde_json::json!({ "keys": [jwk] })).ok()?;
            let print = set.thumbprints().next()?.1.to_string();
            Some((*name, print))
        })
        .collect()
}

/// (who trusts it, which published key) for every identity or approval key that is one
/// of [`PUBLISHED_KEYS`], compared by RFC 7638 thumbprint.
fn published_keys(p: &Policy) -> Vec<(String, String)> {
    let known = published_prints();
    let mut sets: Vec<(String, &crate::jws::KeySet)> = Vec::new();
    if let TokenSource::Jwt { issuers, .. } = &p.identity.token {
        sets.extend(
            issuers
                .iter()
                .map(|i| (format!("identity issuer {:?}", i.issuer), &i.keys)),
        );
    }
    if let Some(a) = &p.approval {
        sets.push(("the approval service".to_string(), &a.keys));
    }
    let mut out = Vec::new();
    for (whose, set) in sets {
        for (kid, print) in set.thumbprints() {
            if let Some((name, _)) = known.iter().find(|(_, k)| k == print) {
                let key = kid.map_or_else(|| (*name).to_string(), |kid| format!("key {kid:?}, {name}"));
                out.push((whose.clone(), key));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_published_key_is_one_a_policy_can_hold() {
        // A key the policy's JWKS parser refuses would drop out of the lint unseen.
        let prints = super::published_prints();
        assert_eq!(prints.len(), super::PUBLISHED_KEYS.len(), "{prints:?}");
        let mut unique: Vec<&String> = prints.iter().map(|(_, p)| p).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), prints.len(), "a key is listed twice");
    }
}
