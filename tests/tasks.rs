//! MCP tasks: a task the server creates for a caller is that caller's alone to follow,
//! steer, stop or list.

mod common;

use aigate::decision::Reason;
use aigate::engine::{self, Decision};
use common::*;
use serde_json::{json, Value};

/// Alice's tool call, allowed, and the answer the server gives it, judged: the decision
/// on the answer and what the client gets instead, if anything.
fn answered(w: &World, answer: &Value) -> (Decision, Option<Value>) {
    let t = w.token(json!({}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call("get_order", json!({"customer_id": "c-42"}))),
    );
    assert!(d.allowed() && engine::judges_answer(&w.policy, &d), "{:?}", d.denial);
    let (d, rewritten) = engine::whole_answer(&w.policy, &d, answer.to_string().as_bytes(), "abc", &w.host);
    (d, rewritten.map(|b| serde_json::from_slice(&b).unwrap()))
}

fn created(id: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "result": {
        "resultType": "task", "taskId": id, "status": "working",
        "createdAt": "2026-12-07T10:00:00Z", "lastUpdatedAt": "2026-12-07T10:00:00Z",
        "ttlMs": 60_000, "pollIntervalMs": 500
    }})
}

/// The denial of `method` on task `id` for the caller with these claims, if any.
fn following(w: &World, claims: Value, method: &str, id: &str) -> Option<(Reason, String)> {
    let t = w.token(claims);
    let d = w.decide(&w.headers(Some(&t)), Some(&rpc(method, json!({"taskId": id}))));
    d.denial.map(|x| (x.reason, x.rule))
}

const BOB: &str = r#"{"sub": "bob"}"#;

/// A message of the server's that names the task it belongs to in `_meta`.
fn related(method: &str, task: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 77, "method": method, "params": {
        "message": "42 rows ready: confirm?", "progressToken": "p", "progress": 1,
        "_meta": {"io.modelcontextprotocol/related-task": {"taskId": task}}}})
}

#[test]
fn only_the_caller_a_task_was_created_for_follows_it() {
    let w = World::with(|p| {
        let ceilings = p["workloads"].as_array_mut().unwrap();
        let mut twin = ceilings[0].clone();
        twin["id"] = json!("twin-agent");
        twin["match"] = json!("twin-agent");
        ceilings.push(twin);
    });
    let (d, rewritten) = answered(&w, &created("t-1"));
    assert!(
        d.allowed() && rewritten.is_none(),
        "the answer passes as it is: {:?}",
        d.denial
    );
    let bob: Value = serde_json::from_str(BOB).unwrap();
    let refused = Some((Reason::DataBoundary, "routes.support-mcp.tasks".to_string()));
    for method in ["tasks/get", "tasks/result", "tasks/update", "tasks/cancel"] {
        assert_eq!(following(&w, json!({}), method, "t-1"), None, "{method}");
        assert_eq!(following(&w, bob.clone(), method, "t-1"), refused, "{method}");
        assert_eq!(
            following(&w, json!({}), method, "t-2"),
            refused,
            "never created: {method}"
        );
    }
    // The caller is its issuer, subject, tenant and workload together.
    for other in [json!({"tenant": "globex"}), json!({"azp": "twin-agent"})] {
        assert_eq!(following(&w, other.clone(), "tasks/get", "t-1"), refused, "{other}");
    }
    // Listening for a task's notifications is following it.
    let listen = |claims: Value| {
        let t = w.token(claims);
        let body = rpc("subscriptions/listen", json!({"notifications": {"taskIds": ["t-1"]}}));
        w.decide(&w.headers(Some(&t)), Some(&body)).denial.map(|x| x.reason)
    };
    assert_eq!(listen(json!({})), None);
    assert_eq!(listen(bob.clone()), Some(Reason::DataBoundary));
    // A message the client ties to a task in `_meta` (its answer to what the task asked,
    // the draft's `tasks/input_response`) reaches that task: the caller's own only.
    let meta = json!({"io.modelcontextprotocol/related-task": {"taskId": "t-1"}});
    let tied = [
        json!({"jsonrpc": "2.0", "id": 9, "result": {"action": "accept", "content": {}, "_meta": meta}}),
        json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"_meta": meta}}),
    ];
    for body in &tied {
        for (claims, expected) in [(json!({}), None), (bob.clone(), refused.clone())] {
            let t = w.token(claims);
            let d = w.decide(&w.headers(Some(&t)), Some(body));
            assert_eq!(d.denial.map(|x| (x.reason, x.rule)), expected, "{body}");
        }
    }
    for meta in [
        json!({"io.modelcontextprotocol/related-task": "t-1"}),
        json!({"io.modelcontextprotocol/related-task": {"TaskId": "t-1"}}),
        json!("t-1"),
    ] {
        let t = w.token(json!({}));
        let body = json!({"jsonrpc": "2.0", "id": 9, "result": {"_meta": meta}});
        let d = w.decide(&w.headers(Some(&t)), Some(&body));
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed), "{body}");
    }
    // The denial says neither whether the task exists nor whose it is.
    let t = w.token(bob);
    let d = w.decide(&w.headers(Some(&t)), Some(&rpc("tasks/get", json!({"taskId": "t-1"}))));
    assert_eq!(
        d.denial.unwrap().message,
        "task \"t-1\" was not created for this caller through aigate, or its binding expired"
    );
}

#[test]
fn a_listen_naming_many_tasks_reads_the_callers_tasks_once() {
    let w = World::new();
    assert!(answered(&w, &created("t-1")).0.allowed());
    let listen = |ids: Vec<String>| {
        let t = w.token(json!({}));
        let body = rpc("subscriptions/listen", json!({"notifications": {"taskIds": ids}}));
        let before = w.host.shared_reads.get();
        let d = w.decide(&w.headers(Some(&t)), Some(&body));
        (
            d.denial.map(|x| (x.reason, x.message)),
            w.host.shared_reads.get() - before,
        )
    };
    // One task named a hundred thousand times is one task: allowed, for two reads (the
    // proxy's secret placing callers, the caller's tasks).
    let (denial, reads) = listen(vec!["t-1".to_string(); 100_000]);
    assert_eq!(denial, None);
    assert_eq!(reads, 2);
    // Naming more tasks than a caller can hold names another's: refused before any read.
    let many: Vec<String> = (0..129).map(|i| format!("t-{i}")).collect();
    let (denial, reads) = listen(many);
    assert_eq!(
        denial,
        Some((
            Reason::DataBoundary,
            "the request names 129 tasks, more than the 128 one caller can hold (limits.max_tasks_per_caller)".into()
        ))
    );
    assert_eq!(reads, 0);
    // Within the quota, every id is looked up in that one read, and one not the caller's
    // refuses the listen.
    let (denial, reads) = listen(vec!["t-1".into(), "t-2".into()]);
    assert_eq!(denial.map(|(r, _)| r), Some(Reason::DataBoundary));
    assert_eq!(reads, 2);
}

#[test]
fn a_tasks_list_reads_the_callers_tasks_once() {
    let w = World::new();
    assert!(answered(&w, &created("t-1")).0.allowed());
    let t = w.token(json!({}));
    let d = w.decide(&w.headers(Some(&t)), Some(&rpc("tasks/list", json!({}))));
    assert!(d.allowed(), "{:?}", d.denial);
    let tasks: Vec<Value> = (0..5_000)
        .map(|i| json!({"taskId": format!("t-{i}"), "status": "working"}))
        .collect();
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"tasks": tasks}});
    let before = w.host.shared_reads.get();
    let (d, rewritten) = engine::whole_answer(&w.policy, &d, answer.to_string().as_bytes(), "abc", &w.host);
    // The proxy's secret and the caller's tasks, once each, for five thousand items.
    assert_eq!(w.host.shared_reads.get() - before, 2);
    assert_eq!(d.hidden, 4_999);
    let shown = rewritten.map(|b| serde_json::from_slice::<Value>(&b).unwrap()).unwrap();
    assert_eq!(
        shown["result"]["tasks"],
        json!([{"taskId": "t-1", "status": "working"}])
    );
}

/// A GET's stream (`GET /mcp`, with the session header when `session` names one) and the
/// answer it carries, judged as it arrives at once as events.
fn on_a_get_stream(w: &World, session: Option<&str>, message: &Value) -> Decision {
    let mut h = w.headers(Some(&w.token(json!({"sid": "s-1"}))));
    h.retain(|(k, _)| k != ":method");
    h.push((":method".into(), b"GET".to_vec()));
    if let Some(s) = session {
        h.push(("mcp-session-id".into(), s.as_bytes().to_vec()));
    }
    let d = w.decide(&h, None);
    assert!(d.allowed() && engine::judges_answer(&w.policy, &d), "{:?}", d.denial);
    let head = aigate::request::Headers::new(vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"text/event-stream".to_vec()),
    ]);
    let events = format!("id: 1\ndata: {message}\n\n");
    engine::answer_at_once(&w.policy, &d, &head, events.as_bytes(), "abc", &w.host).0
}

#[test]
fn a_task_on_a_get_stream_is_bound_only_where_the_session_is_the_callers() {
    // A server replays on a GET what it holds for the session (a resumed stream), whoever
    // opened it: the task created there may be another caller's.
    let w = World::new();
    let d = on_a_get_stream(&w, Some("s-1"), &created("t-replayed"));
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::InternalError));
    assert!(d.denial.unwrap().message.contains("a GET's stream"));
    assert_eq!(
        following(&w, json!({}), "tasks/get", "t-replayed").map(|(r, _)| r),
        Some(Reason::DataBoundary)
    );
    // Where the session is bound to the token, the stream is the caller's own.
    let w = World::with(|p| p["identity"]["bind_session"] = json!({"claim": "sid"}));
    let d = on_a_get_stream(&w, Some("s-1"), &created("t-resumed"));
    assert!(d.allowed(), "{:?}", d.denial);
    let mut h = w.headers(Some(&w.token(json!({"sid": "s-1"}))));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    let follow = w.decide(&h, Some(&rpc("tasks/get", json!({"taskId": "t-resumed"}))));
    assert!(follow.allowed(), "{:?}", follow.denial);
}

#[test]
fn a_result_naming_two_tasks_is_refused() {
    let w = World::new();
    for result in [
        json!({"resultType": "task", "taskId": "ext", "task": {"taskId": "core"}}),
        json!({"task": {"taskId": "new"}, "taskId": "someone-elses", "status": "completed"}),
    ] {
        let (d, rewritten) = answered(&w, &json!({"jsonrpc": "2.0", "id": 1, "result": result}));
        let denial = d.denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BodyMalformed, "answer"),
            "{result}"
        );
        assert!(!rewritten.unwrap().to_string().contains("someone-elses"));
        for id in ["ext", "core", "new"] {
            assert!(following(&w, json!({}), "tasks/get", id).is_some(), "{id} was bound");
        }
    }
}

#[test]
fn a_task_created_in_the_2025_shape_is_bound_for_its_lifetime() {
    let mut w = World::new();
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {"task": {
        "taskId": "t-9", "status": "working", "ttl": 30_000,
        "createdAt": "2026-12-07T10:00:00Z", "lastUpdatedAt": "2026-12-07T10:00:00Z"
    }}});
    assert!(answered(&w, &answer).0.allowed());
    assert_eq!(following(&w, json!({}), "tasks/result", "t-9"), None);
    w.host.now += 30;
    assert_eq!(
        following(&w, json!({}), "tasks/result", "t-9").map(|(r, _)| r),
        Some(Reason::DataBoundary),
        "the binding ends with the task's lifetime"
    );
}

#[test]
fn a_binding_never_outlasts_the_limit() {
    let mut w = World::with(|p| p["limits"] = json!({"max_task_seconds": 60}));
    let mut unlimited = created("t-1");
    unlimited["result"]["ttlMs"] = Value::Null;
    assert!(answered(&w, &unlimited).0.allowed());
    w.host.now += 59;
    assert_eq!(following(&w, json!({}), "tasks/get", "t-1"), None);
    w.host.now += 1;
    assert!(following(&w, json!({}), "tasks/get", "t-1").is_some());
}

#[test]
fn a_task_that_cannot_be_bound_is_not_shown() {
    let mut w = World::new();
    w.host.shared_fails = true;
    let (d, rewritten) = answered(&w, &created("t-1"));
    let denial = d.denial.unwrap();
    assert_eq!((denial.reason, denial.rule.as_str()), (Reason::InternalError, "answer"));
    // The client gets a JSON-RPC error in place of the task's id.
    let error = rewritten.unwrap();
    assert_eq!(error["id"], 1);
    assert_eq!(error["error"]["code"], -32603);
    assert!(!error.to_string().contains("t-1"), "{error}");
    // Without a taskId there is nothing to bind either.
    let w = World::new();
    let mut no_id = created("t-1");
    no_id["result"]["taskId"] = json!(7);
    assert_eq!(
        answered(&w, &no_id).0.denial.map(|x| x.reason),
        Some(Reason::InternalError)
    );
}

#[test]
fn a_task_list_shows_the_callers_own_tasks() {
    let w = World::new();
    assert!(answered(&w, &created("t-1")).0.allowed());
    let list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tasks": [
        {"taskId": "t-1", "status": "working"},
        {"taskId": "t-other", "status": "completed", "statusMessage": "bob's export is ready"},
        {"status": "working"}
    ]}});
    let (d, rewritten) = answered(&w, &list);
    assert_eq!(d.hidden, 2);
    let tasks = &rewritten.unwrap()["result"]["tasks"];
    assert_eq!(tasks, &json!([{"taskId": "t-1", "status": "working"}]));
}

#[test]
fn a_finished_tasks_result_is_held_to_the_callers_boundary() {
    let w = World::new();
    assert!(answered(&w, &created("t-1")).0.allowed());
    let withheld =
        json!({"type": "text", "text": "aigate: a resource outside the caller's data boundary was withheld"});
    let result = json!({"content": [
        {"type": "resource_link", "uri": "docs://acme/report", "name": "report"},
        {"type": "resource_link", "uri": "docs://globex/report", "name": "report"}
    ]});
    // Polled (the tasks extension's tasks/get carries the result in place).
    let polled = json!({"jsonrpc": "2.0", "id": 4, "result": {
        "resultType": "complete", "taskId": "t-1", "status": "completed", "result": result
    }});
    let (d, rewritten) = answered(&w, &polled);
    assert_eq!(d.hidden, 1);
    let blocks = &rewritten.unwrap()["result"]["result"]["content"];
    assert_eq!(blocks[0]["uri"], "docs://acme/report");
    assert_eq!(blocks[1], withheld);
    // Pushed (notifications/tasks), and while it waits for input, the sampling request it makes.
    let pushed = json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": {
        "taskId": "t-1", "status": "input_required",
        "inputRequests": {"ask": {"method": "sampling/createMessage", "params": {"messages": [
            {"role": "user", "content": {"type": "resource_link", "uri": "docs://globex/secret", "name": "s"}}
        ]}}},
        "result": result
    }});
    let (d, rewritten) = answered(&w, &pushed);
    assert_eq!(d.hidden, 2);
    let params = &rewritten.unwrap()["params"];
    assert_eq!(params["result"]["content"][1], withheld);
    assert_eq!(
        params["inputRequests"]["ask"]["params"]["messages"][0]["content"],
        withheld
    );
}

#[test]
fn a_route_may_leave_tasks_to_the_server() {
    let w = World::with(|p| p["routes"][0]["tasks"] = json!("pass"));
    let bob: Value = serde_json::from_str(BOB).unwrap();
    assert_eq!(following(&w, bob, "tasks/get", "t-anyone"), None);
    let mut doc = policy_doc();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat", "tasks": "bind"}));
    doc["limits"] = json!({"max_task_seconds": 0});
    let errors: Vec<String> = aigate::policy::compile(doc.to_string().as_bytes())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("routes[1].tasks: applies only to MCP routes")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("limits.max_task_seconds: must be between 1 and 2592000")),
        "{errors:?}"
    );
}

#[test]
fn a_task_is_bound_on_the_route_that_created_it() {
    // Two servers behind one gateway may both hand out task "1".
    let w = World::with(|p| {
        let mut billing = p["routes"][0].clone();
        billing["id"] = json!("billing-mcp");
        billing["prefix"] = json!("/billing/mcp");
        p["routes"].as_array_mut().unwrap().insert(0, billing);
    });
    let t = w.token(json!({}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call("get_order", json!({"customer_id": "c-42"}))),
    );
    assert_eq!(w.policy.routes[d.route.unwrap()].id, "support-mcp");
    let (d, _) = engine::whole_answer(&w.policy, &d, created("1").to_string().as_bytes(), "abc", &w.host);
    assert!(d.allowed());
    assert_eq!(following(&w, json!({}), "tasks/get", "1"), None);
    let mut h = w.headers(Some(&t));
    h[1].1 = b"/billing/mcp".to_vec();
    let d = w.decide(&h, Some(&rpc("tasks/get", json!({"taskId": "1"}))));
    let denial = d.denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::DataBoundary, "routes.billing-mcp.tasks")
    );
}

#[test]
fn a_caller_holds_at_most_its_quota_of_tasks() {
    let w = World::with(|p| p["limits"] = json!({"max_tasks_per_caller": 2}));
    for id in ["t-1", "t-2"] {
        assert!(answered(&w, &created(id)).0.allowed());
    }
    let (d, rewritten) = answered(&w, &created("t-3"));
    let denial = d.denial.unwrap();
    assert_eq!(denial.reason, Reason::InternalError);
    assert!(
        denial.message.contains("limits.max_tasks_per_caller"),
        "{}",
        denial.message
    );
    assert_eq!(rewritten.unwrap()["error"]["code"], -32603);
    // Another caller has its own quota.
    let t = w.token(serde_json::from_str(BOB).unwrap());
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call("get_order", json!({"customer_id": "c-42"}))),
    );
    let (d, _) = engine::whole_answer(&w.policy, &d, created("t-3").to_string().as_bytes(), "abc", &w.host);
    assert!(d.allowed(), "{:?}", d.denial);
    // None, or more than an eighth of the bucket a caller's tasks share with others.
    for quota in [0, 129] {
        let errors = aigate::policy::compile(
            {
                let mut doc = policy_doc();
                doc["limits"] = json!({"max_tasks_per_caller": quota});
                doc.to_string()
            }
            .as_bytes(),
        )
        .unwrap_err();
        assert!(
            errors.iter().any(|e| e
                .to_string()
                .contains("limits.max_tasks_per_caller: must be between 1 and 128")),
            "{errors:?}"
        );
    }
}

#[test]
fn another_callers_task_state_is_not_shown() {
    let w = World::new();
    assert!(answered(&w, &created("t-1")).0.allowed());
    let state = |id: &str| {
        json!({"taskId": id, "status": "completed", "statusMessage": "the export is ready",
                                  "result": {"content": [{"type": "text", "text": "42 rows"}]}})
    };
    // Pushed, or given as a tasks/get answer: the caller's own task passes, another's does not.
    for (own, other) in [
        (
            json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": state("t-1")}),
            json!({"jsonrpc": "2.0", "method": "notifications/tasks", "params": state("t-other")}),
        ),
        (
            json!({"jsonrpc": "2.0", "id": 3, "result": state("t-1")}),
            json!({"jsonrpc": "2.0", "id": 3, "result": state("t-other")}),
        ),
        // `"id": null` is a notification to clients that ignore the member.
        (
            json!({"jsonrpc": "2.0", "id": null, "method": "notifications/tasks", "params": state("t-1")}),
            json!({"jsonrpc": "2.0", "id": null, "method": "notifications/tasks", "params": state("t-other")}),
        ),
        // Messages tied to a task by `_meta`: a question it asks its caller, its progress,
        // its result.
        (
            related("elicitation/create", "t-1"),
            related("elicitation/create", "t-other"),
        ),
        (
            related("notifications/progress", "t-1"),
            related("notifications/progress", "t-other"),
        ),
        (
            json!({"jsonrpc": "2.0", "id": 4, "result": {"content": [{"type": "text", "text": "42 rows"}],
                "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "t-1"}}}}),
            json!({"jsonrpc": "2.0", "id": 4, "result": {"content": [{"type": "text", "text": "42 rows"}],
                "_meta": {"io.modelcontextprotocol/related-task": {"taskId": "t-other"}}}}),
        ),
    ] {
        assert!(answered(&w, &own).0.allowed(), "{own}");
        let (d, rewritten) = answered(&w, &other);
        let denial = d.denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "answer"),
            "{other}"
        );
        assert!(!rewritten.unwrap().to_string().contains("42 rows"));
    }
    // A request of the server's naming a task the client runs for it is no state of the
    // caller's: it passes, and what it carries is still held to the boundary.
    let withheld =
        json!({"type": "text", "text": "aigate: a resource outside the caller's data boundary was withheld"});
    let ask = json!({"jsonrpc": "2.0", "id": 9, "method": "sampling/createMessage", "params": {
        "taskId": "client-task", "messages": [{"role": "user", "content": {"type": "tool_result", "toolUseId": "u",
            "content": [{"type": "resource", "resource": {"uri": "docs://globex/payroll", "text": "payroll"}}]}}]}});
    let (d, rewritten) = answered(&w, &ask);
    assert_eq!(d.hidden, 1, "{:?}", d.denial);
    let rewritten = rewritten.unwrap();
    assert_eq!(rewritten["params"]["messages"][0]["content"]["content"][0], withheld);
}

#[test]
fn a_member_aigate_reads_spelled_in_snake_case_is_refused() {
    // Servers whose models also take snake_case names (pydantic's populate_by_name) read
    // `task_ids` as `taskIds`: a listen aigate would pass as naming nothing.
    let w = World::new();
    let t = w.token(json!({}));
    for params in [
        json!({"notifications": {"task_ids": ["someone-elses"]}}),
        json!({"notifications": {"resource_subscriptions": ["docs://globex/pricing"]}}),
    ] {
        let d = w.decide(&w.headers(Some(&t)), Some(&rpc("subscriptions/listen", params.clone())));
        let denial = d.denial.unwrap_or_else(|| panic!("{params}: allowed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BodyMalformed, "mcp"),
            "{params}"
        );
        assert!(denial.message.contains("spelled in snake_case"), "{}", denial.message);
    }
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&rpc("tasks/get", json!({"taskId": "t-1", "task_id": "someone-elses"}))),
    );
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BodyMalformed));
}
