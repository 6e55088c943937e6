//! The harness checked against a probe module (fixtures/probe) whose every behaviour is
//! chosen by the test, so each host rule is exercised independently of aigate.
//!
//! The probe is built for wasm32-wasip1 on first use, into `target/harness-fixtures`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use aigate_harness::{Action, HarnessError, Host, HostOptions, LogLevel, Phase, Plugin, Request, IMPORTS};

fn probe_wasm() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = dir.join("../../target/harness-fixtures");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--quiet",
                "--target",
                "wasm32-wasip1",
                "--manifest-path",
            ])
            .arg(dir.join("fixtures/probe/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("run cargo to build the probe module");
        assert!(status.success(), "building fixtures/probe for wasm32-wasip1 failed");
        target.join("wasm32-wasip1/release/probe.wasm")
    })
    .clone()
}

fn probe() -> Plugin {
    probe_with(HostOptions::default())
}

fn probe_with(options: HostOptions) -> Plugin {
    let p = Plugin::load_with(probe_wasm(), "{}", options).unwrap();
    assert!(p.configure_ok());
    p
}

fn req(cmds: &str) -> Request {
    Request::post("/p").header("x-probe", cmds).body(b"0123456789".to_vec())
}

#[test]
fn every_import_is_linked() {
    let p = probe();
    assert!(p.unknown_imports().is_empty(), "{:?}", p.unknown_imports());
    assert_eq!(IMPORTS.len(), 37);
}

#[test]
fn rejected_config_stops_requests() {
    let mut p = Plugin::load(probe_wasm(), "reject").unwrap();
    assert!(!p.configure_ok());
    assert!(matches!(p.request(req("")), Err(HarnessError::NotConfigured)));
}

#[test]
fn missing_module_says_how_to_build_it() {
    let err = Plugin::load("/nonexistent/aigate.wasm", "{}").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cargo build --release --target wasm32-wasip1"), "{msg}");
}

#[test]
fn configuration_is_readable_only_in_on_configure() {
    let p = probe();
    assert!(
        p.logs().iter().any(|l| l.message == "configured with 2 bytes"),
        "{:?}",
        p.logs()
    );
}

#[test]
fn same_metric_name_shares_one_stat() {
    let mut p = probe();
    let a = p.request(req("")).unwrap();
    let b = p.request(req("")).unwrap();
    assert_eq!(a.upstream_header("x-probe-count").as_deref(), Some("1"));
    assert_eq!(b.upstream_header("x-probe-count").as_deref(), Some("2"));
    assert_eq!(p.metric("probe_requests"), Some(2));
    assert_eq!(p.metric("wasmcustom.probe_requests"), Some(2));
    assert_eq!(p.histogram("probe_body_bytes"), Some(vec![10, 10]));
}

#[test]
fn header_mutations_reach_upstream_with_envoy_semantics() {
    let mut p = probe();
    let o = p
        .request(req("add,set-dup").header("x-dup", "first").header("x-dup", "second"))
        .unwrap();
    assert!(o.forwarded());
    let up = o.upstream.as_ref().unwrap();
    assert_eq!(up.headers.get_str("x-added").as_deref(), Some("1"));
    // setCopy replaces the first value only.
    assert_eq!(
        up.headers.get_all("x-dup"),
        vec![b"new".as_slice(), b"second".as_slice()]
    );
    assert_eq!(o.response_header("x-probe-resp").as_deref(), Some("1"));
    assert_eq!(up.body, b"0123456789");
}

#[test]
fn local_reply_passes_through_response_callbacks() {
    let mut p = probe();
    let o = p.request(req("reply")).unwrap();
    assert_eq!(o.status(), Some(418));
    assert!(o.upstream.is_none());
    let reply = o.local_reply.as_ref().unwrap();
    assert_eq!(reply.header("x-probe").as_deref(), Some("r"));
    let resp = o.response.as_ref().unwrap();
    assert_eq!(resp.headers.get_str("x-probe-resp").as_deref(), Some("1"));
    assert_eq!(
        resp.headers.get_all("content-type"),
        vec![b"application/json".as_slice()]
    );
    assert_eq!(resp.headers.get_str("content-length").as_deref(), Some("2"));
    assert_eq!(resp.body, b"{}");
    assert_eq!(o.local_reply_calls, 1);
    // No body callback after the reply.
    assert!(o.actions(Phase::RequestBody).is_empty());
    assert_eq!(o.action(Phase::ResponseHeaders), Some(Action::Continue));
}

#[test]
fn a_trap_is_an_error_and_fails_the_vm() {
    let mut p = probe();
    let err = p.request(req("panic")).unwrap_err();
    assert!(matches!(err, HarnessError::Trap { .. }), "{err}");
    assert!(err.to_string().contains("probe was asked to panic"), "{err}");
    assert!(matches!(p.request(req("")), Err(HarnessError::VmFailed(_))));
    assert!(p.failure().is_some());
}

#[test]
fn body_is_buffered_across_chunks() {
    let mut p = probe();
    let o = p.request(req("").chunked(3)).unwrap();
    assert_eq!(
        o.actions(Phase::RequestBody),
        vec![
            Action::StopIterationAndBuffer,
            Action::StopIterationAndBuffer,
            Action::StopIterationAndBuffer,
            Action::Continue
        ]
    );
    let sizes: Vec<usize> = o
        .callbacks
        .iter()
        .filter(|c| c.phase == Phase::RequestBody)
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, vec![3, 6, 9, 10]);
    assert_eq!(p.histogram("probe_body_bytes"), Some(vec![10]));
    assert_eq!(o.upstream.as_ref().unwrap().body, b"0123456789");
    assert_eq!(o.host_call("proxy_get_buffer_bytes"), 1);
}

#[test]
fn unbuffered_chunks_are_seen_one_by_one() {
    let mut p = probe();
    let o = p.request(req("no-buffer").chunked(4)).unwrap();
    let sizes: Vec<usize> = o
        .callbacks
        .iter()
        .filter(|c| c.phase == Phase::RequestBody)
        .map(|c| c.size)
        .collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    assert_eq!(p.histogram("probe_body_bytes"), Some(vec![4, 4, 2]));
    assert_eq!(o.upstream.as_ref().unwrap().body, b"0123456789");
}

#[test]
fn body_can_be_replaced() {
    let mut p = probe();
    let o = p.request(req("replace-body").chunked(4)).unwrap();
    assert_eq!(o.upstream.as_ref().unwrap().body, b"replaced");
}

#[test]
fn request_headers_are_gone_after_continue() {
    // Envoy clears request_headers_ once headers return Continue: a later write is
    // BadArgument, which the SDK turns into a panic.
    let mut p = probe();
    let err = p.request(req("late-header")).unwrap_err();
    assert!(err.is_trap(), "{err}");
    assert!(
        p.anomalies()
            .iter()
            .any(|a| a.contains("proxy_replace_header_map_value")),
        "{:?}",
        p.anomalies()
    );
}

#[test]
fn paused_headers_stay_writable_with_allow_on_headers_stop_iteration() {
    let mut p = probe_with(HostOptions {
        allow_on_headers_stop_iteration: true,
        ..HostOptions::default()
    });
    let o = p.request(req("pause,late-header").chunked(4)).unwrap();
    assert_eq!(o.action(Phase::RequestHeaders), Some(Action::StopIteration));
    assert!(o.forwarded(), "{o:?}");
    assert_eq!(o.upstream_header("x-late").as_deref(), Some("10"));
}

#[test]
fn paused_headers_without_the_option_hang() {
    let mut p = probe();
    let o = p.request(req("pause")).unwrap();
    assert!(o.stalled);
    assert!(o.response.is_none());
    assert!(o.actions(Phase::RequestBody).is_empty());
}

#[test]
fn envoy_answers_413_past_the_buffer_limit() {
    let mut p = probe_with(HostOptions {
        buffer_limit_bytes: 5,
        ..HostOptions::default()
    });
    let o = p.request(req("").chunked(3)).unwrap();
    assert_eq!(o.status(), Some(413));
    assert!(o.host_reply.is_some());
    assert_eq!(o.response_header("x-probe-resp").as_deref(), Some("1"));
}

#[test]
fn shared_data_cas_is_envoys() {
    let host = Host::new();
    let mut w1 = Plugin::load_on(&host, probe_wasm(), "{}", HostOptions::default()).unwrap();
    let w2 = Plugin::load_on(&host, probe_wasm(), "{}", HostOptions::default()).unwrap();
    let o = w1.request(req("cas")).unwrap();
    assert_eq!(o.upstream_header("x-probe-cas").as_deref(), Some("true/true/v1"));
    let (value, cas) = w2.shared_data("k").unwrap();
    assert_eq!(value, b"v1");
    assert!(w2.set_shared_data("k", b"x", cas.wrapping_add(1)).is_err());
    w2.set_shared_data("k", b"x", cas).unwrap();
    assert_eq!(host.shared_data("k").unwrap().0, b"x");
    assert_eq!(host.metric("probe_requests"), Some(1));
}

#[test]
fn properties_and_filter_state() {
    let mut p = probe();
    let o = p
        .request(req("prop").property(&["connection", "uri_san_peer_certificate"], "spiffe://example.org/a"))
        .unwrap();
    assert_eq!(
        o.upstream_header("x-probe-san").as_deref(),
        Some("spiffe://example.org/a")
    );
    assert_eq!(o.property(&["probe_state"]), Some(b"set".as_slice()));
}

#[test]
fn clock_is_the_tests() {
    let mut p = probe();
    p.set_time_secs(1_000);
    let o = p.request(req("time")).unwrap();
    assert_eq!(o.upstream_header("x-probe-time").as_deref(), Some("1000"));
}

#[test]
fn access_log_sees_final_headers_and_logs_are_collected() {
    let mut p = probe();
    let o = p.request(req("log")).unwrap();
    assert!(o
        .logs
        .iter()
        .any(|l| l.level == LogLevel::Warn && l.message == "probe log"));
    assert!(
        o.logs.iter().any(|l| l.message == "log path=/p status=200"),
        "{:?}",
        o.logs
    );
    assert!(o.logs.iter().all(|l| l.context_id == o.context_id));
}

#[test]
fn trailers_can_be_edited() {
    let mut p = probe();
    let o = p.request(req("trailer-header").trailers([("x-t", "1")])).unwrap();
    let t = o.upstream.as_ref().unwrap().trailers.clone().unwrap();
    assert_eq!(t.get_str("x-trailer-added").as_deref(), Some("1"));
    assert_eq!(t.get_str("x-t").as_deref(), Some("1"));
}

#[test]
fn host_calls_are_counted_per_request() {
    let mut p = probe();
    let o = p.request(req("")).unwrap();
    assert_eq!(o.host_call("proxy_get_header_map_pairs"), 1);
    assert_eq!(o.host_call("proxy_increment_metric"), 1);
    assert_eq!(o.host_call("proxy_get_metric"), 1);
    assert_eq!(o.host_call("proxy_replace_header_map_value"), 2); // request + response header
    assert_eq!(o.host_call("proxy_get_buffer_bytes"), 1);
    assert_eq!(o.host_call("proxy_define_metric"), 0);
    assert_eq!(o.guest_calls.get("proxy_on_request_headers"), Some(&1));
    assert_eq!(o.guest_calls.get("proxy_on_delete"), Some(&1));
    assert!(p.host_calls()["proxy_define_metric"] >= 3);
}
