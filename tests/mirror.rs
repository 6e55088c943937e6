//! Engine table tests: MCP's mirror headers (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`,
//! protocol revision 2026-07-28) must say what the body says, or the request is refused
//! `400 body_malformed`, rule `mcp.mirror`, with the JSON-RPC error MCP servers give it.

mod common;

use aigate::decision::Reason;
use aigate::engine::Decision;
use aigate::request::mirror;
use aigate::response;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

const ORDER: &str = "get_order";

/// Headers added to the caller's: (name, value), in order.
type Extra = Vec<(&'static str, &'static str)>;

fn order() -> Value {
    call(ORDER, json!({"customer_id": "c-42", "order_id": "o-1"}))
}

fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method})
}

/// The caller's request headers plus `extra`, in order (a name may repeat).
fn with(w: &World, extra: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    let mut h = w.headers(Some(&w.token(json!({}))));
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_vec())));
    h
}

fn decide_bytes(w: &World, extra: &[(&str, &[u8])], body: &Value) -> Decision {
    w.decide(&with(w, extra), Some(body))
}

fn decide(w: &World, extra: &[(&str, &str)], body: &Value) -> Decision {
    let extra: Vec<(&str, &[u8])> = extra.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    decide_bytes(w, &extra, body)
}

/// Refused by the mirror check: reason, rule, the protocol's code, a message naming the
/// header and what the body says.
fn assert_mirror_refusal(d: &Decision, header: &str, body_says: &str, row: &str) {
    let denial = d.denial.as_ref().unwrap_or_else(|| panic!("{row}: allowed"));
    assert_eq!(
        (denial.reason, denial.rule.as_str(), denial.jsonrpc_code),
        (Reason::BodyMalformed, "mcp.mirror", Some(-32020)),
        "{row}: {denial:?}"
    );
    assert!(denial.message.contains(header), "{row}: {}", denial.message);
    assert!(denial.message.contains(body_says), "{row}: {}", denial.message);
}

#[test]
fn headers_that_say_what_the_body_says_pass() {
    // Tasks left to the server here: whose a task is, is judged in tests/tasks.rs.
    let w = World::with(|p| p["routes"][0]["tasks"] = json!("pass"));
    // "docs://acme/café" in UTF-8, as the sentinel carries a value that is not plain ASCII.
    let cafe = "=?base64?ZG9jczovL2FjbWUvY2Fmw6k=?=";
    let rows: Vec<(&str, Extra, Value)> = vec![
        ("no mirror headers", vec![], order()),
        (
            "tools/call",
            vec![("mcp-method", "tools/call"), ("mcp-name", "get_order")],
            order(),
        ),
        // Names compared exactly, whatever the header's name case.
        (
            "header names in any case",
            vec![("Mcp-Method", "tools/call"), ("MCP-NAME", "get_order")],
            order(),
        ),
        (
            "a non-ASCII URI comes as a sentinel",
            vec![("mcp-method", "resources/read"), ("mcp-name", cafe)],
            rpc("resources/read", json!({"uri": "docs://acme/café"})),
        ),
        (
            "resources/subscribe",
            vec![("mcp-name", "docs://acme/handbook")],
            rpc("resources/subscribe", json!({"uri": "docs://acme/handbook"})),
        ),
        (
            "resources/unsubscribe",
            vec![("mcp-name", "docs://acme/handbook")],
            rpc("resources/unsubscribe", json!({"uri": "docs://acme/handbook"})),
        ),
        (
            "prompts/get",
            vec![("mcp-method", "prompts/get"), ("mcp-name", "support_reply")],
            rpc("prompts/get", json!({"name": "support_reply"})),
        ),
        (
            "a task by its id",
            vec![("mcp-method", "tasks/get"), ("mcp-name", "task-7")],
            rpc("tasks/get", json!({"taskId": "task-7"})),
        ),
        (
            "a method without a target",
            vec![("mcp-method", "tools/list")],
            rpc("tools/list", json!({})),
        ),
        (
            "a notification",
            vec![("mcp-method", "notifications/initialized")],
            notification("notifications/initialized"),
        ),
        (
            "an argument mirrored",
            vec![("mcp-method", "tools/call"), ("mcp-param-order", "o-1")],
            order(),
        ),
        (
            "a batch whose every message agrees",
            vec![("mcp-method", "tools/call"), ("mcp-name", "get_order")],
            json!([order(), {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "get_order", "arguments": {"customer_id": "c-42"}}}]),
        ),
    ];
    for (row, extra, body) in rows {
        let d = decide(&w, &extra, &body);
        assert!(d.allowed(), "{row}: {:?}", d.denial);
    }
}

#[test]
fn headers_that_disagree_with_the_body_are_refused() {
    let w = World::new();
    let rows: Vec<(&str, Extra, Value, &str, &str)> = vec![
        (
            "another method",
            vec![("mcp-method", "tools/list")],
            order(),
            "Mcp-Method",
            "the body's method \"tools/call\"",
        ),
        (
            "another tool",
            vec![("mcp-method", "tools/call"), ("mcp-name", "send_email")],
            order(),
            "Mcp-Name",
            "the body's tool name \"get_order\"",
        ),
        (
            "case matters",
            vec![("mcp-name", "Get_Order")],
            order(),
            "Mcp-Name",
            "the body's tool name \"get_order\"",
        ),
        (
            "another resource",
            vec![("mcp-name", "docs://acme/handbook")],
            rpc("resources/read", json!({"uri": "docs://acme/pricing"})),
            "Mcp-Name",
            "the body's params.uri of resources/read",
        ),
        (
            "another prompt",
            vec![("mcp-name", "support_reply")],
            rpc("prompts/get", json!({"name": "support_escalation"})),
            "Mcp-Name",
            "the body's prompt name \"support_escalation\"",
        ),
        (
            "a sentinel of another name",
            vec![("mcp-name", "=?base64?c8OpbmRfZW1haWw=?=")],
            order(),
            "Mcp-Name",
            "the body's tool name \"get_order\"",
        ),
        (
            "a target on a method that names none",
            vec![("mcp-name", "send_email")],
            rpc("tools/list", json!({})),
            "Mcp-Name",
            "the body's method \"tools/list\" names none",
        ),
        (
            "a target its method's body does not give",
            vec![("mcp-name", "docs://acme/handbook")],
            rpc("resources/unsubscribe", json!({})),
            "Mcp-Name",
            "gives no params.uri",
        ),
        (
            "a method on a response",
            vec![("mcp-method", "tools/call")],
            json!({"jsonrpc": "2.0", "id": 4, "result": {}}),
            "Mcp-Method",
            "the body is a response",
        ),
        (
            "a notification's method",
            vec![("mcp-method", "notifications/cancelled")],
            notification("notifications/initialized"),
            "Mcp-Method",
            "the body's method \"notifications/initialized\"",
        ),
        (
            "an argument on a call without arguments",
            vec![("mcp-param-region", "eu")],
            call(ORDER, json!({})),
            "\"mcp-param-region\"",
            "has no argument of that value",
        ),
        (
            "an argument value the call does not give",
            vec![("mcp-param-order", "o-2")],
            order(),
            "\"mcp-param-order\"",
            "has no argument of that value",
        ),
        (
            "an argument on a method that takes none",
            vec![("mcp-param-region", "eu")],
            rpc("tools/list", json!({})),
            "\"mcp-param-region\"",
            "the body's method \"tools/list\" is no tools/call",
        ),
    ];
    for (row, extra, body, header, says) in rows {
        assert_mirror_refusal(&decide(&w, &extra, &body), header, says, row);
    }
}

#[test]
fn values_without_one_reading_are_refused() {
    let w = World::new();
    let rows: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "base64 that does not decode",
            "mcp-name",
            b"=?base64?Z2V0X29yZGVy*?=".to_vec(),
        ),
        ("padding missing", "mcp-name", b"=?base64?Y2Fmw6k?=".to_vec()),
        (
            "non-canonical trailing bits",
            "mcp-name",
            b"=?base64?Y2Fmw6l=?=".to_vec(),
        ),
        ("not UTF-8 once decoded", "mcp-name", b"=?base64?/w==?=".to_vec()),
        ("markers that overlap", "mcp-name", b"=?base64?=".to_vec()),
        // A name that goes plain, wrapped anyway: Envoy's RBAC matching "get_order" (or
        // denying "refund_order") would not see it, while the server decodes it.
        ("a plain name wrapped", "mcp-name", b"=?base64?Z2V0X29yZGVy?=".to_vec()),
        // Raw UTF-8 is "ordér" to one reader and "ordÃ©r" to one reading Latin-1.
        ("raw non-ASCII", "mcp-name", "get_ordér".as_bytes().to_vec()),
        ("not UTF-8 at all", "mcp-name", b"get_\xff".to_vec()),
        ("a control character", "mcp-method", b"tools/call\x01".to_vec()),
        (
            "an argument's bad sentinel",
            "mcp-param-order",
            b"=?base64?***?=".to_vec(),
        ),
    ];
    for (row, header, value) in rows {
        let d = decide_bytes(&w, &[(header, &value)], &order());
        let denial = d.denial.unwrap_or_else(|| panic!("{row}: allowed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str(), denial.jsonrpc_code),
            (Reason::BodyMalformed, "mcp.mirror", Some(-32020)),
            "{row}"
        );
        assert!(
            denial.message.contains("ASCII") || denial.message.contains("=?base64?"),
            "{row}: {}",
            denial.message
        );
    }
    // The sentinel's markers are lower-case: another spelling is a plain value, compared as such.
    let d = decide(&w, &[("mcp-name", "=?BASE64?Z2V0X29yZGVy?=")], &order());
    assert_mirror_refusal(&d, "Mcp-Name", "tool name \"get_order\"", "upper-case markers");
}

#[test]
fn repeated_mirror_headers_are_refused_even_when_each_agrees() {
    let w = World::new();
    for (row, extra, says) in [
        (
            "Mcp-Method twice",
            vec![("mcp-method", "tools/call"), ("mcp-method", "tools/call")],
            "Mcp-Method appears more than once",
        ),
        (
            "Mcp-Name twice",
            vec![("mcp-name", "get_order"), ("Mcp-Name", "get_order")],
            "Mcp-Name appears more than once",
        ),
        (
            "an argument twice",
            vec![("mcp-param-order", "o-1"), ("Mcp-Param-Order", "o-1")],
            "appears more than once",
        ),
        (
            "an argument twice to a CGI-style server",
            vec![("Mcp-Param-Customer_Id", "c-42"), ("Mcp-Param-Customer-Id", "c-42")],
            "headers \"Mcp-Param-Customer_Id\" and \"Mcp-Param-Customer-Id\" are one header to servers that read '_' as '-'",
        ),
    ] {
        let d = decide(&w, &extra, &order());
        assert_mirror_refusal(&d, "", says, row);
    }
}

#[test]
fn in_a_batch_the_header_must_hold_for_every_message() {
    let w = World::new();
    let second_ping = json!([order(), {"jsonrpc": "2.0", "id": 2, "method": "ping"}]);
    let d = decide(&w, &[("mcp-method", "tools/call")], &second_ping);
    assert_mirror_refusal(
        &d,
        "Mcp-Method",
        "the method \"ping\" of message 2 of the batch",
        "method",
    );
    assert_eq!(d.rpc_ids, vec![json!(1), json!(2)]);

    let other_tool = json!([order(), call("search_docs", json!({"query": "x"}))]);
    let d = decide(&w, &[("mcp-name", "get_order")], &other_tool);
    assert_mirror_refusal(
        &d,
        "Mcp-Name",
        "the tool name \"search_docs\" of message 2 of the batch",
        "name",
    );

    let with_response = json!([order(), {"jsonrpc": "2.0", "id": 9, "result": {}}]);
    let d = decide(&w, &[("mcp-name", "get_order")], &with_response);
    assert_mirror_refusal(&d, "Mcp-Name", "message 2 of the batch is a response", "response");
}

#[test]
fn the_headers_are_checked_before_what_the_body_asks() {
    // A call aigate would refuse for its own reasons: the header's disagreement is what
    // the client hears, as from the server it was meant for.
    let w = World::new();
    let unknown = call("drop_tables", json!({}));
    let d = decide(&w, &[("mcp-name", "get_order")], &unknown);
    assert_mirror_refusal(&d, "Mcp-Name", "\"drop_tables\"", "unknown tool");
    assert!(d.calls.is_empty(), "{:?}", d.calls);
    // Without the header, the same body is refused as what it is.
    assert_eq!(
        w.decide(&with(&w, &[]), Some(&unknown)).denial.map(|d| d.reason),
        Some(Reason::ToolUnknown)
    );
}

#[test]
fn requests_without_a_message_carry_no_mirror_headers() {
    let w = World::new();
    for method in ["GET", "DELETE"] {
        let mut h = with(&w, &[("mcp-method", &b"tools/call"[..])]);
        h.retain(|(k, _)| k != ":method");
        h.push((":method".into(), method.as_bytes().to_vec()));
        let d = w.decide(&h, None);
        assert_mirror_refusal(
            &d,
            "\"mcp-method\"",
            &format!("a {method} request carries none"),
            method,
        );
        // Without it, the same request passes.
        h.retain(|(k, _)| k != "mcp-method");
        assert!(w.decide(&h, None).allowed(), "{method}");
    }
}

#[test]
fn a_get_or_delete_carrying_a_message_is_refused() {
    // No server reads the body of MCP's GET (its stream) or DELETE (the session's end):
    // judged, the call in it would be audited, and its headers taken, as one that ran.
    let w = World::new();
    for method in ["GET", "DELETE"] {
        let mut h = with(&w, &[("mcp-method", &b"tools/call"[..]), ("mcp-name", b"get_order")]);
        h.retain(|(k, _)| k != ":method");
        h.push((":method".into(), method.as_bytes().to_vec()));
        let d = w.decide(&h, Some(&order()));
        let denial = d.denial.unwrap_or_else(|| panic!("{method}: allowed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str(), denial.message.as_str()),
            (
                Reason::BodyMalformed,
                "mcp",
                format!("an MCP {method} carries no JSON-RPC message: MCP sends its messages in POST requests")
                    .as_str()
            ),
        );
        assert!(d.calls.is_empty(), "{method}: {:?}", d.calls);
    }
}

#[test]
fn an_underscored_mirror_header_is_refused_on_mcp_routes() {
    // CGI-style servers read `Mcp_Name` as `Mcp-Name`: a value aigate never compared.
    let w = World::new();
    for name in [
        "mcp_name",
        "Mcp_Method",
        "mcp_param_region",
        "Mcp-Param_Region",
        "mcp_param-region",
    ] {
        let d = decide(&w, &[(name, "send_email")], &order());
        let denial = d.denial.unwrap_or_else(|| panic!("{name}: allowed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BodyMalformed, "headers"),
            "{name}"
        );
    }
    // An argument a tool's schema mirrors may have an underscore in its own name.
    let d = decide(
        &w,
        &[("mcp-method", "tools/call"), ("Mcp-Param-Customer_Id", "c-42")],
        &order(),
    );
    assert!(d.allowed(), "{:?}", d.denial);
}

/// `get_order` as a server declaring `x-mcp-header` on two arguments describes it, and
/// the catalogue repeats: `Mcp-Param-Customer` mirrors `/customer_id`, `Mcp-Param-Rush`
/// `/options/rush`.
fn declared() -> World {
    World::with(|p| {
        p["tools"]["get_order"]["param_headers"] = json!({"Customer": "/customer_id", "Rush": "/options/rush"});
    })
}

#[test]
fn a_declared_argument_header_carries_exactly_that_argument() {
    let w = declared();
    let rush = |v: Value| call(ORDER, json!({"customer_id": "c-42", "options": {"rush": v}}));
    let passing: Vec<(&str, Extra, Value)> = vec![
        ("the argument's value", vec![("mcp-param-customer", "c-42")], order()),
        ("the name in any case", vec![("MCP-PARAM-CUSTOMER", "c-42")], order()),
        (
            "both, one nested",
            vec![("mcp-param-customer", "c-42"), ("mcp-param-rush", "true")],
            rush(json!(true)),
        ),
        // Older clients mirror nothing: the body alone is judged.
        ("none sent", vec![], rush(json!(false))),
        (
            "an integer, as its digits",
            vec![("mcp-param-rush", "2")],
            rush(json!(2)),
        ),
        (
            "a fraction, as a number",
            vec![("mcp-param-rush", "2.5")],
            rush(json!(2.5)),
        ),
        (
            "a fraction spelt otherwise",
            vec![("mcp-param-rush", "25e-1")],
            rush(json!(2.5)),
        ),
    ];
    for (row, extra, body) in passing {
        let d = decide(&w, &extra, &body);
        assert!(d.allowed(), "{row}: {:?}", d.denial);
    }
    let refused: Vec<(&str, Extra, Value, &str)> = vec![
        // The value is the call's, but of another argument than the one declared.
        (
            "another argument's value",
            vec![("mcp-param-customer", "o-1")],
            order(),
            "does not match argument \"/customer_id\"",
        ),
        (
            "a boolean spelt otherwise",
            vec![("mcp-param-rush", "True")],
            rush(json!(true)),
            "does not match argument \"/options/rush\"",
        ),
        (
            "another number",
            vec![("mcp-param-rush", "3")],
            rush(json!(2)),
            "does not match argument \"/options/rush\"",
        ),
        (
            "a number that is no JSON number",
            vec![("mcp-param-rush", "0x2")],
            rush(json!(2)),
            "does not match argument \"/options/rush\"",
        ),
        // An integer goes as its digits: a filter matching "100" must see the 100 that runs.
        (
            "an integer spelt otherwise",
            vec![("mcp-param-rush", "1e2")],
            rush(json!(100)),
            "does not match argument \"/options/rush\"",
        ),
        (
            "an integer with a fraction",
            vec![("mcp-param-rush", "100.0")],
            rush(json!(100)),
            "does not match argument \"/options/rush\"",
        ),
        (
            "a large integer rounded",
            vec![("mcp-param-rush", "9007199254740992")],
            rush(json!(9_007_199_254_740_993u64)),
            "does not match argument \"/options/rush\"",
        ),
        // A number or a boolean always goes plain; wrapped (" 100" needs the sentinel) it
        // is text no filter reads as the number.
        (
            "a number wrapped",
            vec![("mcp-param-rush", "=?base64?IDEwMA==?=")],
            rush(json!(100)),
            "does not match argument \"/options/rush\"",
        ),
        (
            "an object is never mirrored",
            vec![("mcp-param-rush", "{}")],
            rush(json!({})),
            "does not match argument \"/options/rush\"",
        ),
        (
            "an argument the call does not give",
            vec![("mcp-param-rush", "true")],
            order(),
            "mirrors argument \"/options/rush\", which the body's tools/call does not give",
        ),
        (
            "an argument given as null",
            vec![("mcp-param-rush", "null")],
            rush(Value::Null),
            "which the body's tools/call does not give",
        ),
        (
            "a header the tool does not declare",
            vec![("mcp-param-order", "o-1")],
            order(),
            "mirrors no argument of tool \"get_order\" (its param_headers declare Mcp-Param-Customer, Mcp-Param-Rush)",
        ),
    ];
    for (row, extra, body, says) in refused {
        let header = extra.first().map(|(n, _)| *n).unwrap_or_default();
        assert_mirror_refusal(&decide(&w, &extra, &body), header, says, row);
    }
}

#[test]
fn an_undeclared_argument_header_carries_a_value_of_the_call() {
    let w = World::new();
    let nested = call(
        ORDER,
        json!({"customer_id": "c-42", "options": {"rush": true, "tries": 3}}),
    );
    for (row, header, value) in [
        ("a top-level string", "mcp-param-order", "o-1"),
        ("a nested boolean", "mcp-param-rush", "true"),
        ("a nested number", "mcp-param-tries", "3"),
    ] {
        let body = if row == "a top-level string" {
            order()
        } else {
            nested.clone()
        };
        let d = decide(&w, &[(header, value)], &body);
        assert!(d.allowed(), "{row}: {:?}", d.denial);
    }
    // Values inside arrays are never mirrored; neither are ones the call lacks.
    let listed = call(ORDER, json!({"customer_id": "c-42", "tags": ["vip"]}));
    for (row, value, body) in [("in an array", "vip", listed), ("absent", "4", nested)] {
        let d = decide(&w, &[("mcp-param-x", value)], &body);
        assert_mirror_refusal(&d, "mcp-param-x", "has no argument of that value", row);
    }
}

#[test]
fn param_headers_are_checked_when_the_policy_is_compiled() {
    let mut p = policy_doc();
    p["tools"]["get_order"]["param_headers"] = json!({"Re gion": "/region", "Tier": "tier", "tier": "/t"});
    let errors: Vec<String> = aigate::policy::compile(p.to_string().as_bytes())
        .err()
        .map(|e| e.iter().map(|x| x.to_string()).collect())
        .unwrap_or_default();
    for (path, says) in [
        ("tools.get_order.param_headers.Re gion", "HTTP token"),
        ("tools.get_order.param_headers.Tier", "JSON pointers"),
        ("tools.get_order.param_headers.tier", "declared twice"),
    ] {
        assert!(
            errors.iter().any(|e| e.contains(path) && e.contains(says)),
            "{path}: {errors:?}"
        );
    }
}

#[test]
fn the_refusal_is_the_json_rpc_error_mcp_servers_give_at_400() {
    let w = World::new();
    let id = "0123456789abcdef0123456789abcdef";
    let mut body = order();
    body["id"] = json!("req-7");
    let d = decide(&w, &[("mcp-name", "send_email")], &body);
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 400);
    assert!(r.headers.contains(&("content-type".into(), "application/json".into())));
    assert!(r.headers.contains(&("x-aigate-decision-id".into(), id.into())));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], mirror::HEADER_MISMATCH);
    assert_eq!(v["error"]["code"], -32020);
    assert_eq!(
        v["error"]["message"],
        "aigate: Mcp-Name header does not match the body's tool name \"get_order\" (body_malformed)"
    );
    assert_eq!(
        v["error"]["data"],
        json!({"reason": "body_malformed", "rule": "mcp.mirror", "decision_id": id})
    );

    // A batch: one error per id, in order.
    let batch = json!([order(), {"jsonrpc": "2.0", "id": "b", "method": "ping"}]);
    let d = decide(&w, &[("mcp-method", "tools/call")], &batch);
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let ids: Vec<&Value> = v.as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!("b")]);
    assert!(v.as_array().unwrap().iter().all(|m| m["error"]["code"] == -32020));

    // No id to echo (a notification, a GET): the generic error shape, at 400.
    let d = decide(
        &w,
        &[("mcp-method", "ping")],
        &notification("notifications/initialized"),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["reason"], "body_malformed");
    assert_eq!(v["error"]["rule"], "mcp.mirror");
    assert!(v.get("jsonrpc").is_none(), "{v}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes in `Mcp-Name` (sentinel-shaped or not): nothing panics, and the call
    /// passes only for the two spellings of its own tool's name.
    #[test]
    fn any_mcp_name_bytes_pass_only_when_they_name_the_body_tool(
        value in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..24),
            prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| [&b"=?base64?"[..], &b, b"?="].concat()),
            "[A-Za-z0-9+/=]{0,16}".prop_map(|p| format!("=?base64?{p}?=").into_bytes()),
            Just(b"get_order".to_vec()),
            Just(b"=?base64?Z2V0X29yZGVy?=".to_vec()),
        ],
    ) {
        let w = World::new();
        let d = decide_bytes(&w, &[("mcp-name", &value)], &order());
        // Sent plain, as it can be: wrapped, a filter matching header text would not see it.
        let names_it = value == b"get_order";
        prop_assert_eq!(d.allowed(), names_it, "{:?}", String::from_utf8_lossy(&value));
        if let Some(denial) = d.denial {
            prop_assert_eq!((denial.reason, denial.rule.as_str()), (Reason::BodyMalformed, "mcp.mirror"));
        }
    }
}
