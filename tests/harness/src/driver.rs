//! One HTTP stream through the plugin, in Envoy's order:
//! context create → request headers → body chunks → trailers → (upstream or local reply)
//! response headers → response body → trailers → log → done → delete.
//!
//! The flow-control rules are Envoy's HTTP filter manager and wasm filter
//! (`source/extensions/common/wasm/context.cc`):
//! - a header map is handed out only until its callback returns `Continue`;
//! - `StopIteration` from request headers holds the headers; without
//!   `allow_on_headers_stop_iteration` it also withholds body callbacks (the request hangs);
//! - `StopIterationAndBuffer` from a body callback accumulates chunks: the next callback
//!   sees the whole buffer; `Continue` forwards it;
//! - buffering past the buffer limit makes Envoy answer 413 itself;
//! - `proxy_send_local_response` takes effect when the callback returns, ends request
//!   processing, and the reply then passes through the plugin's response callbacks.

use wasmtime::Val;

use crate::abi::{Action, Phase, StreamType};
use crate::error::HarnessError;
use crate::headers::HeaderMap;
use crate::plugin::Plugin;
use crate::request::{Callback, LocalReply, Outcome, Request, Response, Upstream};
use crate::state::{BodySlot, Deferred, MapSlot, Stream, VmPhase};

/// Where each direction of the stream stands.
#[derive(Default)]
struct Flow {
    outcome: Outcome,
    /// Request headers are held by the plugin (not yet forwarded).
    req_headers_held: bool,
    /// Envoy withholds body/trailer callbacks (StopAll* from headers).
    req_blocked: bool,
    /// The plugin asked Envoy to buffer the request body.
    req_buffering: bool,
    req_trailers_held: bool,
    /// Response side, same meaning.
    resp_started: bool,
    resp_headers_held: bool,
    resp_buffering: bool,
    resp_trailers_held: bool,
    response: Option<Response>,
    /// A local reply (plugin's or host's) ended request processing.
    replied: bool,
    reset: bool,
}

fn i32v(v: usize) -> Val {
    Val::I32(v as i32)
}

pub(crate) fn run(plugin: &mut Plugin, request: Request) -> Result<Outcome, HarnessError> {
    let ctx = plugin.next_context_id;
    plugin.next_context_id += 1;
    let (calls_before, guest_before, logs_mark, anomalies_mark, fuel_before, fuel_by_export_before) = {
        let s = plugin.store.data();
        (
            s.host_calls_snapshot(),
            s.guest_calls.clone(),
            s.logs.len(),
            s.anomalies.len(),
            s.fuel_used,
            s.fuel_by_export.clone(),
        )
    };
    {
        let state = plugin.store.data_mut();
        state.stream = Some(Stream::new(ctx, request.headers.clone(), request.property_map()));
        state.phase = VmPhase::Stream;
        state.active_context = ctx;
    }
    let mut flow = Flow::default();
    flow.outcome.context_id = ctx;
    let result = drive(plugin, ctx, &request, &mut flow);

    let state = plugin.store.data_mut();
    let stream = state.stream.take();
    state.phase = VmPhase::Idle;
    state.active_context = plugin.root_context_id;
    result?;

    let state = plugin.store.data();
    let mut outcome = flow.outcome;
    outcome.response = flow.response;
    outcome.reset = flow.reset;
    outcome.logs = state.logs[logs_mark..].to_vec();
    outcome.anomalies = state.anomalies[anomalies_mark..].to_vec();
    outcome.host_calls = diff(&state.host_calls_snapshot(), &calls_before);
    outcome.guest_calls = diff(&state.guest_calls, &guest_before);
    outcome.fuel = state.fuel_used - fuel_before;
    outcome.fuel_by_export = diff(&state.fuel_by_export, &fuel_by_export_before);
    if let Some(s) = stream {
        outcome.filter_state = s.filter_state;
        outcome.body_bytes_written = s.body_bytes_written;
    }
    Ok(outcome)
}

fn diff(
    now: &std::collections::BTreeMap<String, u64>,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    now.iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn stream(plugin: &mut Plugin) -> &mut Stream {
    // `run` installs the stream before `drive` and removes it after.
    #[allow(clippy::expect_used)]
    plugin
        .store
        .data_mut()
        .stream
        .as_mut()
        .expect("stream installed by run()")
}

fn drive(plugin: &mut Plugin, ctx: u32, request: &Request, flow: &mut Flow) -> Result<(), HarnessError> {
    let root = plugin.root_context_id;
    plugin.call("proxy_on_context_create", &[i32v(ctx as usize), i32v(root as usize)])?;

    request_path(plugin, ctx, request, flow)?;

    if flow.reset {
        // Stream reset: no response.
    } else if flow.replied {
        // The local reply went through the response path already.
    } else if upstream_complete(flow) {
        let up = &request.upstream;
        encode_response(
            plugin,
            ctx,
            flow,
            up.headers.clone(),
            &up.body_chunks,
            up.trailers.clone(),
            up.cut,
        )?;
    } else {
        flow.outcome.stalled = true;
    }
    if flow.resp_started && flow.response.is_none() && !flow.reset {
        flow.outcome.stalled = true;
    }

    // Access log: final request and response headers, read-only.
    {
        let s = stream(plugin);
        for slot in [
            &mut s.request_headers,
            &mut s.request_trailers,
            &mut s.response_headers,
            &mut s.response_trailers,
        ] {
            slot.live = false;
        }
        s.request_body = BodySlot::default();
        s.response_body = BodySlot::default();
        s.access_log_phase = true;
    }
    plugin.call("proxy_on_log", &[i32v(ctx as usize)])?;
    stream(plugin).access_log_phase = false;
    flow.outcome.done = plugin
        .call("proxy_on_done", &[i32v(ctx as usize)])?
        .is_none_or(|r| r != 0);
    plugin.call("proxy_on_delete", &[i32v(ctx as usize)])?;
    Ok(())
}

fn upstream_complete(flow: &Flow) -> bool {
    flow.outcome.upstream.as_ref().is_some_and(|u| u.complete)
}

/// Calls one HTTP callback and records what it returned.
fn callback(
    plugin: &mut Plugin,
    phase: Phase,
    export: &str,
    args: &[Val],
    size: usize,
    end_of_stream: bool,
    flow: &mut Flow,
) -> Result<Action, HarnessError> {
    let raw = plugin.call(export, args)?.unwrap_or(0);
    let action = Action::decode(phase, raw);
    flow.outcome.callbacks.push(Callback {
        phase,
        size,
        end_of_stream,
        action,
    });
    Ok(action)
}

fn request_path(plugin: &mut Plugin, ctx: u32, request: &Request, flow: &mut Flow) -> Result<(), HarnessError> {
    let has_body = !request.body_chunks.is_empty();
    let has_trailers = request.trailers.is_some();

    // Headers.
    let n = {
        let s = stream(plugin);
        s.request_headers.live = true;
        s.end_of_stream = !has_body && !has_trailers;
        s.request_headers.map.len()
    };
    let eos = !has_body && !has_trailers;
    let action = callback(
        plugin,
        Phase::RequestHeaders,
        "proxy_on_request_headers",
        &[i32v(ctx as usize), i32v(n), i32v(eos as usize)],
        n,
        eos,
        flow,
    )?;
    match action {
        a if !a.is_stop() => forward_request_headers(plugin, flow),
        Action::StopIteration if plugin.options.allow_on_headers_stop_iteration => {
            flow.req_headers_held = true;
        }
        _ => {
            // StopIteration without allow_on_headers_stop_iteration is turned into
            // StopAllIterationAndWatermark; StopAll* withhold body and trailers.
            flow.req_headers_held = true;
            flow.req_blocked = true;
        }
    }
    if eos && !flow.req_headers_held {
        mark_request_complete(flow);
    }
    if after_callback(plugin, ctx, flow)? {
        return Ok(());
    }

    // Body.
    let chunks = request.body_chunks.len();
    for (i, chunk) in request.body_chunks.iter().enumerate() {
        if flow.req_blocked {
            break;
        }
        let eos = i + 1 == chunks && !has_trailers;
        let size = {
            let buffering = flow.req_buffering;
            let s = stream(plugin);
            let current = s.request_body.data.len();
            if buffering && current + chunk.len() > plugin_limit(plugin) {
                None
            } else {
                let s = stream(plugin);
                if buffering {
                    s.request_body.data.extend_from_slice(chunk);
                } else {
                    s.request_body.data = chunk.clone();
                }
                s.request_body.visible = true;
                s.end_of_stream = eos;
                Some(s.request_body.data.len())
            }
        };
        let Some(size) = size else {
            // Envoy's buffer filter limit: 413 from the host, through the encoder filters.
            let reply = LocalReply {
                status: 413,
                details: "request_payload_too_large".to_owned(),
                body: b"Payload Too Large".to_vec(),
                headers: Vec::new(),
                grpc_status: -1,
            };
            flow.outcome.host_reply = Some(reply.clone());
            return send_local_reply(plugin, ctx, flow, reply);
        };
        let action = callback(
            plugin,
            Phase::RequestBody,
            "proxy_on_request_body",
            &[i32v(ctx as usize), i32v(size), i32v(eos as usize)],
            size,
            eos,
            flow,
        )?;
        match action {
            Action::StopIterationAndBuffer | Action::StopIterationAndWatermark => {
                flow.req_buffering = true;
            }
            Action::StopIterationNoBuffer => {
                // The filter took the data: it is not forwarded.
                flow.req_buffering = false;
                let s = stream(plugin);
                s.request_body = BodySlot::default();
            }
            _ => {
                flow.req_buffering = false;
                forward_request_body(plugin, flow);
                if eos {
                    mark_request_complete(flow);
                }
            }
        }
        if after_callback(plugin, ctx, flow)? {
            return Ok(());
        }
    }

    // Trailers.
    if let Some(trailers) = &request.trailers {
        if flow.req_blocked {
            return Ok(());
        }
        let n = trailers.len();
        {
            let s = stream(plugin);
            s.request_trailers = MapSlot {
                map: trailers.clone(),
                live: true,
                present: true,
            };
            s.end_of_stream = true;
        }
        let action = callback(
            plugin,
            Phase::RequestTrailers,
            "proxy_on_request_trailers",
            &[i32v(ctx as usize), i32v(n)],
            n,
            true,
            flow,
        )?;
        if action.is_stop() {
            flow.req_trailers_held = true;
        } else {
            forward_request_trailers(plugin, flow);
        }
        after_callback(plugin, ctx, flow)?;
    }
    Ok(())
}

fn plugin_limit(plugin: &Plugin) -> usize {
    plugin.options.buffer_limit_bytes
}

fn upstream(flow: &mut Flow) -> &mut Upstream {
    flow.outcome.upstream.get_or_insert_with(Upstream::default)
}

fn forward_request_headers(plugin: &mut Plugin, flow: &mut Flow) {
    let s = stream(plugin);
    s.request_headers.live = false;
    let headers = s.request_headers.map.clone();
    upstream(flow).headers = headers;
    flow.req_headers_held = false;
}

/// Releases the buffered (or current) body chunk upstream, headers first if still held.
fn forward_request_body(plugin: &mut Plugin, flow: &mut Flow) {
    if flow.req_headers_held {
        forward_request_headers(plugin, flow);
    }
    let s = stream(plugin);
    let data = std::mem::take(&mut s.request_body.data);
    s.request_body.visible = false;
    upstream(flow).body.extend_from_slice(&data);
}

fn forward_request_trailers(plugin: &mut Plugin, flow: &mut Flow) {
    forward_request_body(plugin, flow);
    let s = stream(plugin);
    s.request_trailers.live = false;
    let trailers = s.request_trailers.map.clone();
    upstream(flow).trailers = Some(trailers);
    flow.req_trailers_held = false;
    flow.req_buffering = false;
    mark_request_complete(flow);
}

fn mark_request_complete(flow: &mut Flow) {
    upstream(flow).complete = true;
}

/// Applies what Envoy defers until the VM call returns. Returns true when request
/// processing is over (local reply sent or stream reset).
fn after_callback(plugin: &mut Plugin, ctx: u32, flow: &mut Flow) -> Result<bool, HarnessError> {
    let deferred = std::mem::take(&mut stream(plugin).deferred);
    let mut reply = None;
    for d in deferred {
        match d {
            Deferred::LocalReply(r) => {
                flow.outcome.local_reply_calls += 1;
                if reply.is_none() && flow.outcome.local_reply.is_none() {
                    reply = Some(r);
                }
            }
            Deferred::Continue(t) => {
                flow.outcome.continue_calls.push(t);
                if t == StreamType::HttpRequest && !flow.replied {
                    resume_request(plugin, flow);
                } else if t == StreamType::HttpResponse {
                    resume_response(plugin, flow);
                }
            }
            Deferred::Close(t) => {
                flow.outcome.close_calls.push(t);
                if matches!(t, StreamType::HttpRequest | StreamType::HttpResponse) {
                    flow.reset = true;
                }
            }
        }
    }
    if flow.reset {
        return Ok(true);
    }
    if let Some(r) = reply {
        if flow.resp_started {
            plugin
                .store
                .data_mut()
                .anomaly("proxy_send_local_response during the response path (not modelled)");
            return Ok(false);
        }
        flow.outcome.local_reply = Some(r.clone());
        send_local_reply(plugin, ctx, flow, r)?;
        return Ok(true);
    }
    Ok(flow.replied)
}

fn resume_request(plugin: &mut Plugin, flow: &mut Flow) {
    flow.req_blocked = false;
    if flow.req_headers_held {
        forward_request_headers(plugin, flow);
    }
    if flow.req_buffering {
        flow.req_buffering = false;
        forward_request_body(plugin, flow);
        if stream(plugin).end_of_stream {
            mark_request_complete(flow);
        }
    }
    if flow.req_trailers_held {
        forward_request_trailers(plugin, flow);
    }
}

fn resume_response(plugin: &mut Plugin, flow: &mut Flow) {
    if flow.resp_headers_held {
        release_response_headers(plugin, flow);
    }
    if flow.resp_buffering {
        flow.resp_buffering = false;
        release_response_body(plugin, flow);
    }
}

/// Envoy `Utility::prepareLocalReply`: `:status`, the plugin's headers (added), then
/// `content-length` and a `text/plain` content type unless one was given; a bodiless reply
/// has neither. The reply then passes through the encoder filters, this plugin included.
fn send_local_reply(plugin: &mut Plugin, ctx: u32, flow: &mut Flow, reply: LocalReply) -> Result<(), HarnessError> {
    flow.replied = true;
    let mut headers = HeaderMap::new();
    headers.add(":status", reply.status.to_string());
    for (k, v) in &reply.headers {
        headers.add(k, v);
    }
    if reply.body.is_empty() {
        headers.remove("content-length");
        headers.remove("content-type");
    } else {
        headers.set("content-length", reply.body.len().to_string());
        if !headers.contains("content-type") {
            headers.set("content-type", "text/plain");
        }
    }
    // Request-side maps are no longer handed out.
    {
        let s = stream(plugin);
        s.request_headers.live = false;
        s.request_trailers.live = false;
        s.request_body = BodySlot::default();
    }
    let body = if reply.body.is_empty() {
        Vec::new()
    } else {
        vec![reply.body.clone()]
    };
    encode_response(plugin, ctx, flow, headers, &body, None, false)
}

fn encode_response(
    plugin: &mut Plugin,
    ctx: u32,
    flow: &mut Flow,
    headers: HeaderMap,
    body_chunks: &[Vec<u8>],
    trailers: Option<HeaderMap>,
    cut: bool,
) -> Result<(), HarnessError> {
    flow.resp_started = true;
    let trailers = trailers.filter(|_| !cut);
    let has_body = !body_chunks.is_empty();
    let has_trailers = trailers.is_some();
    let n = headers.len();
    let eos = !has_body && !has_trailers && !cut;
    {
        let s = stream(plugin);
        s.response_headers = MapSlot {
            map: headers,
            live: true,
            present: true,
        };
        s.end_of_stream = eos;
    }
    let action = callback(
        plugin,
        Phase::ResponseHeaders,
        "proxy_on_response_headers",
        &[i32v(ctx as usize), i32v(n), i32v(eos as usize)],
        n,
        eos,
        flow,
    )?;
    if action.is_stop() {
        flow.resp_headers_held = true;
    } else {
        release_response_headers(plugin, flow);
    }
    if after_callback(plugin, ctx, flow)? && flow.reset {
        return Ok(());
    }

    let chunks = body_chunks.len();
    for (i, chunk) in body_chunks.iter().enumerate() {
        let eos = i + 1 == chunks && !has_trailers && !cut;
        let size = {
            let buffering = flow.resp_buffering;
            let s = stream(plugin);
            if buffering {
                s.response_body.data.extend_from_slice(chunk);
            } else {
                s.response_body.data = chunk.clone();
            }
            s.response_body.visible = true;
            s.end_of_stream = eos;
            s.response_body.data.len()
        };
        let action = callback(
            plugin,
            Phase::ResponseBody,
            "proxy_on_response_body",
            &[i32v(ctx as usize), i32v(size), i32v(eos as usize)],
            size,
            eos,
            flow,
        )?;
        match action {
            Action::StopIterationAndBuffer | Action::StopIterationAndWatermark => {
                flow.resp_buffering = true;
            }
            Action::StopIterationNoBuffer => {
                flow.resp_buffering = false;
                stream(plugin).response_body = BodySlot::default();
            }
            _ => {
                flow.resp_buffering = false;
                release_response_body(plugin, flow);
            }
        }
        if after_callback(plugin, ctx, flow)? && flow.reset {
            return Ok(());
        }
    }

    if let Some(trailers) = trailers {
        let n = trailers.len();
        {
            let s = stream(plugin);
            s.response_trailers = MapSlot {
                map: trailers,
                live: true,
                present: true,
            };
            s.end_of_stream = true;
        }
        let action = callback(
            plugin,
            Phase::ResponseTrailers,
            "proxy_on_response_trailers",
            &[i32v(ctx as usize), i32v(n)],
            n,
            true,
            flow,
        )?;
        if action.is_stop() {
            flow.resp_trailers_held = true;
        } else {
            // Continuing at trailers releases what was buffered, then the trailers.
            release_response_body(plugin, flow);
            flow.resp_buffering = false;
            let s = stream(plugin);
            s.response_trailers.live = false;
            let t = s.response_trailers.map.clone();
            if let Some(r) = flow.response.as_mut() {
                r.trailers = Some(t);
            }
        }
        if after_callback(plugin, ctx, flow)? && flow.reset {
            return Ok(());
        }
    }
    let complete = !flow.resp_headers_held && !flow.resp_buffering && !flow.resp_trailers_held;
    if !complete {
        // The client never gets a complete response.
        flow.response = None;
    }
    Ok(())
}

fn release_response_headers(plugin: &mut Plugin, flow: &mut Flow) {
    let s = stream(plugin);
    s.response_headers.live = false;
    let headers = s.response_headers.map.clone();
    let status = headers.get_str(":status").and_then(|v| v.parse().ok()).unwrap_or(0);
    flow.response = Some(Response {
        status,
        headers,
        body: Vec::new(),
        trailers: None,
    });
    flow.resp_headers_held = false;
}

fn release_response_body(plugin: &mut Plugin, flow: &mut Flow) {
    if flow.resp_headers_held {
        release_response_headers(plugin, flow);
    }
    let s = stream(plugin);
    let data = std::mem::take(&mut s.response_body.data);
    s.response_body.visible = false;
    if let Some(r) = flow.response.as_mut() {
        r.body.extend_from_slice(&data);
    }
}
