//! Judging what comes back. On LLM routes (`model_calls: judge`): the tool calls of a
//! model's answer, with the request's principal: scope, bindings and constraints, as for a
//! call the client sent. An external-impact call is only proposed there; its approval is
//! asked for when the client sends it back (the conversation carries it) or calls the tool.
//! On MCP routes (`lists: filter`, `answer_resources: withhold`, `tasks: bind`): the
//! server's answers, down to what the caller may use and see, the tasks they create bound
//! to the caller.

use super::{Call, Decision, Stage};
use crate::authz;
use crate::config::{AnswerResources, Lists, Mode, Protocol, Tasks};
use crate::decision::{Denial, Reason};
use crate::output::listing::{ListStream, Shown};
use crate::output::stream::Stream;
use crate::output::{self, Format};
use crate::policy::Policy;
use crate::request::llm::LlmCall;
use crate::request::mcp::Listing;
use crate::request::{Headers, Host};
use crate::tasks;
use serde_json::{Map, Value};

/// Whether the answer to this allowed request is judged. On MCP routes every answer is
/// read by its shape, whatever was asked: a list, a tool's result, a resource read, the
/// server's event streams (`GET`, which carry answers replayed after a dropped
/// connection), and whatever a server sends back to a POST of notifications or responses
/// alone (the `202` it owes them has no body, so it costs nothing; a body is held to the
/// caller's boundary like any other). Only with a principal: answers are held to the
/// caller's, and in monitor mode a request refused for its identity is forwarded without one.
pub fn judges_answer(policy: &Policy, d: &Decision) -> bool {
    d.principal.is_some() && policy.judges_answers(d.route)
}

/// The answer's decision, before judging: the request's route and identity.
fn answer_to(request: &Decision) -> Decision {
    Decision {
        stage: Stage::Answer,
        route: request.route,
        protocol: request.protocol,
        http_method: request.http_method.clone(),
        principal: request.principal.clone(),
        model: request.model.clone(),
        rpc_method: request.rpc_method.clone(),
        // An MCP answer refused is a JSON-RPC error to each request it answers.
        rpc_ids: request.rpc_ids.clone(),
        batch: request.batch,
        ..Decision::default()
    }
}

fn no_principal() -> Denial {
    Denial::new(Reason::InternalError, "engine", "an answer without a principal")
}

/// The decision on a model's answer. `calls` is what reading the answer gave (its calls,
/// or why it could not be read).
pub fn on_answer(policy: &Policy, request: &Decision, calls: Result<Vec<LlmCall>, Denial>) -> Decision {
    let mut d = answer_to(request);
    let Some(principal) = request.principal.as_ref() else {
        d.denial = Some(no_principal());
        return d;
    };
    let calls = match calls {
        Ok(calls) => calls,
        Err(denial) => {
            d.denial = Some(denial);
            return d;
        }
    };
    for c in calls {
        let mut call = Call::new(policy, c.name);
        let result = authz::tool_call(policy, principal, &call.tool, &c.arguments);
        call.allowed = result.is_ok();
        d.calls.push(call);
        if let Err(denial) = result {
            d.denial = Some(denial);
            break;
        }
    }
    d
}

/// Which items of an MCP list, and which resources in an MCP answer, the caller of
/// `request` may see (all of either kind when the route passes them), and which tasks
/// (those created for it, bound to it as they are shown, unless the route passes tasks).
pub fn visible<'a>(
    policy: &'a Policy,
    request: &'a Decision,
    host: &'a dyn Host,
) -> impl Fn(Shown, &Map<String, Value>) -> bool + 'a {
    let route = request.route.and_then(|i| policy.routes.get(i));
    let lists_pass = route.is_some_and(|r| r.lists == Lists::Pass);
    let resources_pass = route.is_some_and(|r| r.answer_resources == AnswerResources::Pass);
    let tasks_pass = route.is_some_and(|r| r.tasks == Tasks::Pass);
    let route_id = route.map_or("", |r| r.id.as_str());
    // The caller's tasks, read once for a whole list, however long the server made it.
    let held = std::cell::OnceCell::new();
    // What the caller is granted, asked once per intent for a whole answer.
    let grants = request.principal.as_ref().map(|p| authz::Grants::new(policy, p));
    move |shown, item| {
        let (Some(p), Some(grants)) = (request.principal.as_ref(), grants.as_ref()) else {
            return false;
        };
        match shown {
            // Another caller's task is not shown even when lists pass: its id would let
            // this caller read its result on a route that passes tasks, and its status
            // message is the other caller's.
            Shown::Listed(Listing::Tasks) => {
                tasks_pass
                    || item
                        .get("taskId")
                        .and_then(Value::as_str)
                        .is_some_and(|id| held.get_or_init(|| tasks::held(host, route_id, p)).contains(id))
            }
            Shown::Listed(listing) => lists_pass || authz::shows(grants, listing, item),
            Shown::Resource => resources_pass || authz::shows(grants, Listing::Resources, item),
            // A task is bound to the caller of the request it answers. A GET's stream answers
            // no request: on it a server replays or pushes what it holds for the session,
            // whoever opened it, unless the session is bound to the token.
            Shown::Created => {
                tasks_pass
                    || ((request.http_method == "POST" || policy.identity.bind_session.is_some())
                        && tasks::bind(host, route_id, p, item, &policy.limits).is_ok())
            }
        }
    }
}

/// The decision on an MCP answer: allowed, with the count of list items and resources the
/// caller was not shown, or refused when it could not be read (with the count of what was
/// hidden of it before then: a stream refused part-way hid some of what it passed).
pub fn on_listing(request: &Decision, hidden: usize, refused: Option<Denial>) -> Decision {
    let mut d = answer_to(request);
    // The answer is the called tool's or the read resource's: its record names them, and
    // their owners answer for it.
    d.calls = request.calls.clone();
    d.data = request.data.clone();
    d.hidden = hidden;
    d.denial = match (refused, request.principal.is_some()) {
        (Some(denial), _) => Some(denial),
        (None, true) => None,
        (None, false) => Some(no_principal()),
    };
    d
}

/// Judges a whole JSON answer as the plugin does: its decision, and what the client gets
/// instead when it is refused (the provider's refusal, else its error JSON) or filtered
/// (the MCP list without the hidden items); `None` when it passes as it is.
pub fn whole_answer(
    policy: &Policy,
    request: &Decision,
    body: &[u8],
    decision_id: &str,
    host: &dyn Host,
) -> (Decision, Option<Vec<u8>>) {
    let error = |d: &Decision, denial: &Denial| crate::response::render(policy, d, denial, decision_id).body;
    let protocol = request.protocol.unwrap_or(Protocol::OpenaiChat);
    // An empty body carries no message to judge, and no client reads one from it (MCP's
    // `202` to notifications has none; the SDKs raise on an empty model answer): it
    // passes, whether it ends at the answer's head or after an empty piece.
    if body.is_empty() {
        let d = match protocol {
            Protocol::Mcp => on_listing(request, 0, None),
            _ => on_answer(policy, request, Ok(Vec::new())),
        };
        return (d, None);
    }
    if protocol == Protocol::Mcp {
        return match output::listing::filter(body, &policy.limits, &visible(policy, request, host)) {
            Ok(Some((filtered, hidden))) => (on_listing(request, hidden, None), Some(filtered)),
            Ok(None) => (on_listing(request, 0, None), None),
            Err(denial) => {
                let d = on_listing(request, 0, Some(denial.clone()));
                let e = error(&d, &denial);
                (d, Some(e))
            }
        };
    }
    let calls = output::calls(protocol, body, &policy.limits);
    let read_whole = calls.is_ok();
    let d = on_answer(policy, request, calls);
    let rewritten = d.denial.as_ref().map(|denial| {
        // An answer aigate could not read as the client will (a member spelled in another
        // case, which Go clients bind as the member itself) is not rewritten: the rewrite
        // would pass on what aigate never read. The client gets the provider's error.
        if !read_whole {
            return error(&d, denial);
        }
        let text = format!(
            "aigate: the model's tool call was refused: {} (reason: {}, decision: {decision_id})",
            denial.message,
            denial.reason.as_str()
        );
        output::refusal(protocol, body, &text, &policy.limits).unwrap_or_else(|| error(&d, denial))
    });
    (d, rewritten)
}

/// The rule an answer refused for how it reads (its framing, its labels) is filed under.
fn answer_rule(protocol: Protocol) -> &'static str {
    if protocol == Protocol::Mcp {
        "answer"
    } else {
        "model_calls"
    }
}

/// The decision on an answer refused before it was read: unreadable, too large, cut
/// short, or sending the client elsewhere.
pub fn refused_answer(policy: &Policy, request: &Decision, denial: Denial) -> Decision {
    match request.protocol {
        // The answer of the called tool (an MCP server's, a REST action's): its record
        // names the tool, and the tool's owner answers for it.
        Some(Protocol::Mcp | Protocol::Action) => on_listing(request, 0, Some(denial)),
        _ => on_answer(policy, request, Err(denial)),
    }
}

/// The status the client gets with an answer refused at its head (unreadable, or sending
/// the client elsewhere), in place of the upstream's: a JSON-RPC error answers MCP
/// requests (`200`); the server's own stream (`GET`), which answers no request, an answer
/// with no body to replace (`has_body` false) and a model's answer get `502`. An answer
/// refused once read keeps the status its head went out with.
pub fn head_refusal_status(request: &Decision, has_body: bool) -> u32 {
    let rpc = request.protocol == Some(Protocol::Mcp) && !request.rpc_ids.is_empty() && has_body;
    if rpc {
        200
    } else {
        502
    }
}

/// Why an answer read whole is refused for its size.
pub fn answer_too_large(policy: &Policy) -> Denial {
    Denial::new(
        Reason::BodyTooLarge,
        "limits.max_body_bytes",
        format!("the answer exceeds {} bytes", policy.limits.max_body_bytes),
    )
}

/// How the answer to `request` is read, from its head: whole as JSON, or event by event;
/// else why it cannot be read, so that it is refused before its body arrives. The head's
/// `content-type`, `content-encoding` and `content-length` are looked at, nothing else.
pub fn answer_format(policy: &Policy, request: &Decision, head: &Headers) -> Result<Format, Denial> {
    let protocol = request.protocol.unwrap_or(Protocol::OpenaiChat);
    let rule = answer_rule(protocol);
    // Given twice, a label is read one way here (the host's first value) and another by
    // a client that joins the values or takes the last.
    let (encoding, label) = (head.one("content-encoding"), head.one("content-type"));
    let repeated = encoding.is_err() || label.is_err();
    let encoded = encoding
        .ok()
        .flatten()
        .is_some_and(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity"));
    let label = label.ok().flatten();
    let format = match (encoded || repeated, label) {
        (true, _) => None,
        // A model asked for a whole answer is read as JSON when it is labelled as a
        // stream or not at all: the SDKs parse such a body as JSON regardless.
        (false, label) if protocol.is_llm() && !request.stream => match label.map(output::format) {
            None | Some(Some(_)) => Some(Format::Json),
            Some(None) => None,
        },
        (false, label) => label.and_then(output::format),
    };
    // A whole answer declared larger than aigate reads is refused while its status can
    // still change (the head goes on before the body arrives).
    let declared_too_large = || {
        head.text("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > policy.limits.max_body_bytes as u64)
    };
    match format {
        Some(Format::Json) if declared_too_large() => Err(answer_too_large(policy)),
        Some(format) => Ok(format),
        None if repeated => Err(Denial::new(
            Reason::BodyMalformed,
            rule,
            "the answer gives its content type or encoding more than once: clients may read it differently",
        )),
        None if encoded => Err(Denial::new(
            Reason::EncodingUnsupported,
            rule,
            "the answer is compressed, so aigate cannot judge it",
        )),
        None if label.is_some_and(|l| !crate::media::utf8_charset(l)) => Err(Denial::new(
            Reason::EncodingUnsupported,
            rule,
            "the answer declares a character set other than UTF-8, which clients would decode into other text than aigate read",
        )),
        None => Err(Denial::new(
            Reason::BodyMalformed,
            rule,
            "the answer is neither JSON nor an event stream, so aigate cannot judge it",
        )),
    }
}

/// What ends a judged stream: `rest` (its held or unfinished events) when it is allowed
/// or only watched, else one error event in the protocol's shape carrying the provider's
/// error JSON (as a denied request gets it), which the SDKs raise.
pub fn stream_end(policy: &Policy, d: &Decision, rest: Vec<u8>, decision_id: &str) -> Vec<u8> {
    match (&d.denial, policy.mode) {
        (Some(denial), Mode::Enforce) => output::error_event(
            d.protocol.unwrap_or(Protocol::OpenaiChat),
            &crate::response::render(policy, d, denial, decision_id).body,
        ),
        _ => rest,
    }
}

/// Judges an answer that arrives at once, its head and then its whole body in one piece,
/// as the plugin judges it: read as its head says ([`answer_format`]), a whole JSON answer
/// by [`whole_answer`], a model's stream event by event ([`Stream`]), an MCP server's
/// stream message by message ([`ListStream`]). The decision, and what the client gets in
/// its place: the refusal or error JSON, the stream as rewritten (for a refused model
/// stream, the events that passed and then the error event), the list without what is
/// hidden; `None` when the answer reaches the client as it is (always so in monitor mode).
pub fn answer_at_once(
    policy: &Policy,
    request: &Decision,
    head: &Headers,
    body: &[u8],
    decision_id: &str,
    host: &dyn Host,
) -> (Decision, Option<Vec<u8>>) {
    let enforce = policy.mode == Mode::Enforce;
    let error = |d: &Decision| {
        d.denial
            .as_ref()
            .map(|denial| crate::response::render(policy, d, denial, decision_id).body)
    };
    let format = match answer_format(policy, request, head) {
        Ok(format) => format,
        Err(denial) => {
            let d = refused_answer(policy, request, denial);
            let e = error(&d).filter(|_| enforce);
            return (d, e);
        }
    };
    let protocol = request.protocol.unwrap_or(Protocol::OpenaiChat);
    let (d, out, tail) = match format {
        Format::Json if body.len() > policy.limits.max_body_bytes => {
            let d = refused_answer(policy, request, answer_too_large(policy));
            let e = error(&d).filter(|_| enforce);
            return (d, e);
        }
        Format::Json => {
            let (d, rewritten) = whole_answer(policy, request, body, decision_id, host);
            return (d, rewritten.filter(|_| enforce));
        }
        Format::EventStream if protocol == Protocol::Mcp => {
            let keep = visible(policy, request, host);
            let mut stream = ListStream::new(&policy.limits, enforce);
            let out = stream.feed(body, &keep);
            let (hidden, refused, rest) = stream.finish(&keep);
            let d = on_listing(request, hidden, refused);
            let tail = stream_end(policy, &d, rest, decision_id);
            (d, out, tail)
        }
        Format::EventStream => {
            let mut stream = Stream::new(protocol, &policy.limits, enforce);
            let out = stream.feed(body);
            let finished = stream.finish();
            let d = on_answer(policy, request, finished.calls);
            let tail = stream_end(policy, &d, finished.held, decision_id);
            (d, out, tail)
        }
    };
    // What passed as the events came (rewritten, or as they were), then how it ends.
    let mut reply = out.unwrap_or_else(|| body.to_vec());
    reply.extend_from_slice(&tail);
    let changed = reply != body;
    (d, changed.then_some(reply))
}
