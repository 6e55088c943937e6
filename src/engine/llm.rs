//! Judging an LLM API request (OpenAI Chat Completions and Responses, Anthropic
//! Messages) with the same principal, reasons and approvals as MCP: the model, the data
//! the provider is asked to reach, the tools offered to the model, and the tool calls
//! already in the conversation. Streaming requests are judged the same way: before
//! anything is forwarded.

use super::{Awaiting, Call, Decision};
use crate::approval::Gate;
use crate::authz::{self, shown};
use crate::config::{Impact, Protocol, ProviderCalls, ProviderState, ToolOffers};
use crate::decision::{Denial, Reason};
use crate::identity::Principal;
use crate::policy::Policy;
use crate::request::llm::{LlmCall, LlmRequest, McpServer, IN_CONVERSATION, IN_NAMESPACE, TOOL_SETTINGS};
use crate::request::{anthropic, openai_chat, openai_responses, splice, Headers, Host};
use std::collections::{HashMap, HashSet};

pub(super) fn judge(
    policy: &Policy,
    d: &mut Decision,
    protocol: Protocol,
    principal: &Principal,
    headers: &Headers,
    body: &[u8],
    host: &dyn Host,
) -> Result<(), Denial> {
    let req = match protocol {
        Protocol::OpenaiChat => openai_chat::parse(body, &policy.limits)?,
        Protocol::OpenaiResponses => openai_responses::parse(body, &policy.limits)?,
        Protocol::AnthropicMessages => anthropic::parse(body, &policy.limits)?,
        Protocol::Mcp | Protocol::Action => {
            return Err(Denial::new(Reason::InternalError, "engine", "not an LLM route"))
        }
    };
    d.model = Some(req.model.clone());
    d.stream = req.stream;
    authz::model(policy, principal, &req.model)?;
    for (model, place) in &req.other_models {
        authz::model(policy, principal, model).map_err(|mut denial| {
            denial.message = format!("{} (named in {place})", denial.message);
            denial
        })?;
    }
    let route = d.route.and_then(|i| policy.routes.get(i));
    // Whatever the route accepts of provider state: approving a call aigate cannot see
    // would let the provider run an action nobody judged.
    if req.approves_unseen {
        return Err(Denial::new(
            Reason::DataBoundary,
            "mcp_approval_response",
            "an mcp_approval_response approves a call whose mcp_approval_request is not in input \
             (the provider keeps it), so aigate cannot judge what it would run: send the request item in input",
        ));
    }
    if let (Some(state), Some(r)) = (req.provider_state.first(), route) {
        if r.provider_state == ProviderState::Deny {
            return Err(Denial::new(
                Reason::DataBoundary,
                format!("routes.{}.provider_state", r.id),
                format!("{state} continues state the provider keeps, which aigate cannot judge; this route does not allow it"),
            ));
        }
    }
    // Each distinct id once, in the order named: a body may repeat one many times.
    let (stores, files) = (
        authz::Listed::vector_stores(policy, principal),
        authz::Listed::files(policy, principal),
    );
    let mut seen = HashSet::new();
    for id in req.vector_stores.iter().filter(|id| seen.insert(id.as_str())) {
        d.use_data(policy, principal, stores.rule(id))?;
    }
    let mut seen = HashSet::new();
    for id in req.files.iter().filter(|id| seen.insert(id.as_str())) {
        d.use_data(policy, principal, files.rule(id))?;
    }
    for server in &req.mcp_servers {
        match server {
            McpServer::Url { url, asks } => {
                let rule = authz::mcp_server(policy, principal, url);
                // Calls the provider runs without asking are never seen: only where the
                // rule accepts that.
                if let Ok(r) = &rule {
                    if !asks && r.provider_calls == ProviderCalls::Approved {
                        return Err(Denial::new(
                            Reason::DataBoundary,
                            format!("data.mcp_servers.{}.provider_calls", r.id),
                            "the provider would run this MCP server's tools without asking, unseen by aigate: \
                             leave require_approval at \"always\" so each call comes back to be judged",
                        ));
                    }
                }
                d.use_data(policy, principal, rule)?;
            }
            McpServer::Connector(id) => {
                return Err(Denial::new(
                    Reason::DataBoundary,
                    "data.mcp_servers",
                    format!(
                        "MCP connector or tunnel {} has no URL inside the caller's data boundary",
                        shown(id)
                    ),
                ))
            }
        }
    }
    offers(policy, d, principal, &req, body, protocol)?;
    calls(policy, d, principal, headers, host, req.calls, req.approved_remote)
}

/// Tools offered to the model: all usable, or per route `deny` the request or `strip` them.
/// Linear in the number of offers: a body may hold tens of thousands.
fn offers(
    policy: &Policy,
    d: &mut Decision,
    principal: &Principal,
    req: &LlmRequest,
    body: &[u8],
    protocol: Protocol,
) -> Result<(), Denial> {
    let grants = authz::Grants::new(policy, principal);
    let refused: Vec<bool> = req.offers.iter().map(|o| !grants.usable(&o.name)).collect();
    if !refused.contains(&true) {
        return Ok(());
    }
    let mut named = HashSet::new();
    for (o, _) in req.offers.iter().zip(&refused).filter(|(_, r)| **r) {
        if named.insert(o.name.as_str()) {
            d.refused_offers.push(o.name.clone());
        }
    }
    let route = d.route.and_then(|i| policy.routes.get(i));
    let rule = route.map_or_else(|| "tool_offers".to_string(), |r| format!("routes.{}.tool_offers", r.id));
    let refuse = |message: String| Err(Denial::new(Reason::ToolOfferDenied, rule.clone(), message));
    if route.map(|r| r.tool_offers) != Some(ToolOffers::Strip) {
        return refuse(format!(
            "the request offers the model tools this caller may not use: {}",
            listed(&d.refused_offers)
        ));
    }
    // The model itself is the offer (a search model): nothing to strip.
    if req.offers.iter().zip(&refused).any(|(o, r)| *r && o.list == "model") {
        return refuse(format!(
            "model {} searches the web on every request (a search model, or a router's :online variant of it \
             or of a model it may run instead), and this caller may not use web_search",
            shown(&req.model)
        ));
    }
    // A tool the conversation adds is part of its history: cutting it would change what
    // the model was told.
    if let Some((o, _)) = req
        .offers
        .iter()
        .zip(&refused)
        .find(|(o, r)| **r && (o.list == IN_CONVERSATION || o.list == IN_NAMESPACE))
    {
        return refuse(format!(
            "{} offers the model {}, which this caller may not use; it cannot be stripped from {}",
            if o.list == IN_NAMESPACE {
                "a namespace tool"
            } else {
                "the conversation"
            },
            shown(&o.name),
            if o.list == IN_NAMESPACE {
                "its namespace"
            } else {
                "the conversation"
            },
        ));
    }
    if let Some(n) = req.choice.names.iter().find(|n| named.contains(n.as_str())) {
        return refuse(format!("tool_choice names {}, which this caller may not use", shown(n)));
    }
    let stripped = strip(body, req, &refused).ok_or_else(|| {
        Denial::new(
            Reason::InternalError,
            "engine.strip",
            "could not rewrite the request body",
        )
    })?;
    // A forced choice whose list is gone cannot be served (which setting forced is not
    // recorded: either list emptied refuses it).
    if req.choice.forces && !stripped.emptied.is_empty() {
        return refuse(
            "tool_choice demands a tool call, but none of the offered tools is usable by this caller".into(),
        );
    }
    // Anthropic refuses a conversation holding tool_use blocks without tools to match.
    if protocol == Protocol::AnthropicMessages && stripped.emptied.contains(&"tools") && !req.calls.is_empty() {
        return refuse(
            "the conversation holds tool calls, which the provider refuses without tools, and none of the \
             offered tools is usable by this caller"
                .into(),
        );
    }
    d.rewrite = Some(stripped.body);
    Ok(())
}

fn listed(names: &[String]) -> String {
    const MAX: usize = 8;
    let mut s = names.iter().take(MAX).map(|n| shown(n)).collect::<Vec<_>>().join(", ");
    if names.len() > MAX {
        s.push_str(&format!(" and {} more", names.len() - MAX));
    }
    s
}

/// A request body with the refused offers cut out.
struct Stripped {
    body: Vec<u8>,
    /// The lists (`tools`, `functions`) that lost every element, and were dropped.
    emptied: Vec<&'static str>,
}

/// The body without the refused tools. Everything else keeps its bytes. A list left with
/// no tool goes, with the settings providers refuse without it (`tool_choice` and
/// `parallel_tool_calls` with `tools`, `function_call` with `functions`).
fn strip(body: &[u8], req: &LlmRequest, refused: &[bool]) -> Option<Stripped> {
    // Per list (or member), the indexes to cut: one pass over the offers.
    let mut removals: HashMap<&str, Vec<usize>> = HashMap::new();
    for (o, _) in req.offers.iter().zip(refused).filter(|(_, r)| **r) {
        removals.entry(o.list).or_default().push(o.index);
    }
    let members = splice::members(body)?;
    let mut cuts = Vec::new();
    let mut drop = vec![false; members.len()];
    let mut emptied = Vec::new();
    for (m, drop) in members.iter().zip(drop.iter_mut()) {
        let list = match m.key.as_str() {
            "tools" => "tools",
            "functions" => "functions",
            // A member that is one offer by itself (`web_search_options`) goes whole.
            key => {
                *drop = removals.contains_key(key);
                continue;
            }
        };
        // `"tools": null` offers nothing: it is dropped like an emptied list.
        let null = body.get(m.value.0..m.value.1) == Some(b"null".as_slice());
        let elements = if null {
            Vec::new()
        } else {
            splice::elements(body, m.value)?
        };
        let mut remove = vec![false; elements.len()];
        for i in removals.get(list).into_iter().flatten() {
            if let Some(r) = remove.get_mut(*i) {
                *r = true;
            }
        }
        if remove.iter().all(|r| *r) {
            *drop = true;
            emptied.push(list);
        } else {
            cuts.extend(splice::cuts(&elements, &remove));
        }
    }
    for (m, drop) in members.iter().zip(drop.iter_mut()) {
        *drop |= TOOL_SETTINGS
            .iter()
            .any(|(setting, list)| m.key == *setting && emptied.contains(list));
    }
    let spans: Vec<splice::Span> = members.iter().map(|m| (m.start, m.value.1)).collect();
    cuts.extend(splice::cuts(&spans, &drop));
    Some(Stripped {
        body: splice::apply(body, cuts)?,
        emptied,
    })
}

/// Tool calls in the conversation are judged like MCP calls: a conversation cannot
/// smuggle in an action the caller may not take. Every call is held to scope, bindings
/// and constraints on every request. An external-impact call of the latest turn is
/// happening now: its grant must be fresh and is consumed. One of an earlier turn was
/// approved when it was new, so its grant must come along (genuine, for exactly that call)
/// but is not consumed again; the client decides which turn is latest, so an invented
/// later turn cannot make an unapproved action history. Only latest calls are recorded
/// (and counted), plus a denied one.
///
/// A grant for a call the client ran is spent at the conversation gate: the same action
/// may have spent it at the action gate when it ran through aigate. A remote MCP call the
/// request approves runs now, at the provider: its grant is spent at the action gate, so
/// one grant cannot run an action both there and through an MCP or REST route.
fn calls(
    policy: &Policy,
    d: &mut Decision,
    principal: &Principal,
    headers: &Headers,
    host: &dyn Host,
    calls: Vec<LlmCall>,
    approved_remote: Vec<LlmCall>,
) -> Result<(), Denial> {
    let mut pending = Vec::new();
    for c in calls {
        let tool = match authz::tool_call(policy, principal, &c.name, &c.arguments) {
            Ok(tool) => tool,
            Err(denial) => {
                d.calls.push(Call::new(policy, c.name));
                return Err(denial);
            }
        };
        if !c.latest {
            if tool.impact == Impact::External {
                pending.push(Awaiting::recall(tool, c.arguments));
            }
            continue;
        }
        let mut call = Call::new(policy, c.name);
        call.allowed = tool.impact != Impact::External;
        call.awaiting_grant = !call.allowed;
        d.calls.push(call);
        if tool.impact == Impact::External {
            pending.push(Awaiting::claim(d, tool, c.arguments, Gate::Conversation));
        }
    }
    for c in approved_remote {
        if let Some(tool) = super::judge_call(policy, d, principal, c.name, &c.arguments)? {
            pending.push(Awaiting::claim(d, tool, c.arguments, Gate::Action));
        }
    }
    super::claim_grants(policy, d, principal, headers, host, pending)
}
