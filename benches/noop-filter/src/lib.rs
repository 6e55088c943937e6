//! The no-op rung of scripts/bench.sh, and a probe for profiling host crossings.
//!
//! With no configuration it is a no-op: an HTTP context per request that continues every
//! callback. Same SDK, same release profile and the same filter options as aigate (V8,
//! `allow_on_headers_stop_iteration`), so the difference between this rung and aigate's is
//! aigate's own work.
//!
//! With a configuration (a comma-separated list of steps) it performs, per request, the
//! host interactions aigate performs, without aigate's computation. `scripts/bench.sh
//! --profile` adds the steps one by one, so each one's cost inside Envoy can be read off:
//!
//! - `headers`    read the request headers once (`get_http_request_headers_bytes`)
//! - `hold`       pause at the headers, let the body buffer to end of stream, then continue
//! - `body`       read the whole buffered body once
//! - `time`       read the host clock twice (identity, audit)
//! - `metrics`    increment three counters and record a histogram value
//! - `log`        hand a 600-byte info line to the host log (aigate's audit line)
//! - `property`   set a 600-byte filter-state property (aigate's decision record)
//! - `stamp`      set a request header (the decision id, for the upstream)
//! - `reply`      set a response header (the decision id, for the client)

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default, Clone, Copy)]
struct Steps {
    headers: bool,
    hold: bool,
    body: bool,
    time: bool,
    metrics: bool,
    log: bool,
    property: bool,
    stamp: bool,
    reply: bool,
}

#[derive(Default)]
struct Probe {
    steps: Steps,
    counters: Vec<u32>,
    histogram: Option<u32>,
    line: String,
}

#[derive(Default)]
struct Root {
    probe: Rc<Probe>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let mut s = Steps::default();
        for step in text.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match step {
                "headers" => s.headers = true,
                "hold" => s.hold = true,
                "body" => s.body = true,
                "time" => s.time = true,
                "metrics" => s.metrics = true,
                "log" => s.log = true,
                "property" => s.property = true,
                "stamp" => s.stamp = true,
                "reply" => s.reply = true,
                _ => return false,
            }
        }
        let mut probe = Probe {
            steps: s,
            line: format!("{{\"type\":\"probe\",\"pad\":\"{}\"}}", "x".repeat(570)),
            ..Probe::default()
        };
        if s.metrics {
            for name in ["probe_a_total", "probe_b_total", "probe_c_total"] {
                if let Ok(id) = hostcalls::define_metric(MetricType::Counter, name) {
                    probe.counters.push(id);
                }
            }
            probe.histogram = hostcalls::define_metric(MetricType::Histogram, "probe_bytes").ok();
        }
        self.probe = Rc::new(probe);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            probe: Rc::clone(&self.probe),
            held: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    probe: Rc<Probe>,
    held: bool,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let s = self.probe.steps;
        if s.headers {
            let _ = self.get_http_request_headers_bytes();
        }
        if s.time {
            let _ = self.get_current_time();
        }
        if s.hold && !end_of_stream {
            self.held = true;
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.held {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.held = false;
        let p = Rc::clone(&self.probe);
        if p.steps.body {
            let _ = self.get_http_request_body(0, body_size);
        }
        if p.steps.metrics {
            for id in &p.counters {
                let _ = hostcalls::increment_metric(*id, 1);
            }
            if let Some(h) = p.histogram {
                let _ = hostcalls::record_metric(h, body_size as u64);
            }
        }
        if p.steps.time {
            let _ = self.get_current_time();
        }
        if p.steps.log {
            let _ = hostcalls::log(LogLevel::Info, &p.line);
        }
        if p.steps.property {
            self.set_property(vec!["probe_decision"], Some(p.line.as_bytes()));
        }
        if p.steps.stamp {
            self.set_http_request_header("x-probe-id", Some("0123456789abcdef0123456789abcdef"));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.probe.steps.reply {
            self.set_http_response_header("x-probe-id", Some("0123456789abcdef0123456789abcdef"));
        }
        Action::Continue
    }
}
