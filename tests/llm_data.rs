//! The data boundary of LLM requests: state the provider keeps, retrieval stores, stored
//! files, remote MCP servers and the approval of their calls.

mod common;

use aigate::decision::Reason;
use aigate::engine::Decision;
use common::llm::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn provider_kept_state_is_refused_unless_the_route_allows_it() {
    let t = llm_world().token(json!({}));
    let ask = json!({"model": "gpt-4o-mini", "input": "And the refund?"});
    for (member, value) in [
        ("previous_response_id", json!("resp_123")),
        ("conversation", json!({"id": "conv_9"})),
        ("prompt", json!({"id": "pmpt_1", "version": "2"})),
    ] {
        let mut body = ask.clone();
        body[member] = value;
        let d = decide(&llm_world(), RESPONSES, &t, &body);
        let denial = d.denial.unwrap_or_else(|| panic!("{member} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state")
        );
        assert!(denial.message.starts_with(member), "{}", denial.message);
        // null is no state.
        body[member] = Value::Null;
        assert!(decide(&llm_world(), RESPONSES, &t, &body).allowed(), "{member}: null");
    }
    // An input item naming a stored item (an earlier call, say) by id: typed, or with
    // neither type nor role, as the API also takes it.
    let output = json!({"type": "function_call_output", "call_id": "call_1", "output": "ok"});
    for reference in [
        json!({"type": "item_reference", "id": "fc_123"}),
        json!({"id": "fc_123"}),
    ] {
        let body = json!({"model": "gpt-4o-mini", "input": [reference.clone(), output.clone()]});
        let denial = decide(&llm_world(), RESPONSES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{reference} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state")
        );
        assert!(denial.message.contains("item_reference"), "{}", denial.message);
    }
    // So does a hosted tool's container named by id, in Responses.
    let hosted = World::with(|p| {
        llm_policy(p);
        p["tools"]["code_interpreter"] = json!({"intent": "orders.read", "impact": "read"});
        p["tools"]["shell"] = json!({"intent": "orders.read", "impact": "read"});
    });
    for tool in [
        json!({"type": "code_interpreter", "container": "cntr_abc"}),
        json!({"type": "code_interpreter", "container": {"type": "container_reference", "container_id": "cntr_abc"}}),
        json!({"type": "shell", "environment": {"type": "container_reference", "container_id": "cntr_abc"}}),
        // A fresh container that mounts a skill uploaded earlier, by id.
        json!({"type": "shell", "environment": {"type": "container_auto",
               "skills": [{"type": "skill_reference", "skill_id": "skill_other"}]}}),
        json!({"type": "code_interpreter", "container": {"type": "auto", "skills": [{"skill_id": "skill_other"}]}}),
    ] {
        let body = json!({"model": "gpt-4o-mini", "input": "Plot it", "tools": [tool.clone()]});
        let denial = decide(&hosted, RESPONSES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{tool} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state"),
            "{tool}"
        );
    }
    let fresh = json!({"model": "gpt-4o-mini", "input": "Plot it",
                       "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]});
    assert!(decide(&hosted, RESPONSES, &t, &fresh).allowed());
    // An Anthropic container carries files and code from earlier requests.
    for container in [
        json!("container_011"),
        json!({"id": "container_011"}),
        json!({"skills": [{"type": "custom", "skill_id": "skill_1"}]}),
    ] {
        let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
        body["container"] = container.clone();
        let denial = decide(&llm_world(), MESSAGES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{container} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.messages.provider_state")
        );
    }
    // Messages without a type are messages, not references.
    let body = json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "hi"}]});
    assert!(decide(&llm_world(), RESPONSES, &t, &body).allowed());
    // A route that allows it judges the rest of the request as usual.
    let w = World::with(|p| {
        llm_policy(p);
        let r = p["routes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["id"] == "responses")
            .unwrap();
        r["provider_state"] = json!("allow");
    });
    let mut body = ask.clone();
    body["previous_response_id"] = json!("resp_123");
    assert!(decide(&w, RESPONSES, &t, &body).allowed());
    body["model"] = json!("o3");
    assert_eq!(reason(&w, RESPONSES, &t, &body), Some(Reason::ModelNotAllowed));
    // A stored prompt's variables come from the client: the files they name are judged.
    let docs = w.token(json!({"scope": "orders.read docs.read", "files": ["file-acme-1"]}));
    let prompt = |file: &str| {
        json!({"model": "gpt-4o-mini", "input": "hi", "prompt": {"id": "pmpt_1",
               "variables": {"doc": {"type": "input_file", "file_id": file}}}})
    };
    assert!(decide(&w, RESPONSES, &docs, &prompt("file-acme-1")).allowed());
    let denial = decide(&w, RESPONSES, &docs, &prompt("file-globex-9")).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::DataBoundary, "data.files")
    );
    // Reading or deleting a stored response or completion has no body to judge: it is
    // refused on a route that does not allow provider state, whoever's id it names.
    for (path, method) in [
        ("/v1/responses/resp_123", "GET"),
        ("/v1/responses/resp_123/input_items", "GET"),
        ("/v1/responses/resp_123", "DELETE"),
        ("/v1/chat/completions/chatcmpl_9", "GET"),
    ] {
        let mut h = headers_for(&llm_world(), path, Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        let d = llm_world().decide_raw(&h, None);
        let denial = d.denial.unwrap_or_else(|| panic!("{method} {path} passed"));
        assert_eq!(denial.reason, Reason::DataBoundary, "{method} {path}");
        assert!(denial.rule.ends_with(".provider_state"), "{}", denial.rule);
    }
    // A body changes nothing (servers ignore a GET's body), and a POST below the route's
    // endpoint cancels a response or creates a batch of requests aigate never reads.
    for (path, method, body) in [
        ("/v1/responses/resp_123", "GET", json!({"model": "gpt-4o-mini"})),
        ("/v1/responses/resp_123", "DELETE", json!({"model": "gpt-4o-mini"})),
        ("/v1/responses/resp_123/cancel", "POST", json!({"model": "gpt-4o-mini"})),
        (
            "/v1/messages/batches",
            "POST",
            json!({"model": "claude-haiku-4-5", "requests": [{"custom_id": "a",
            "params": {"model": "claude-haiku-4-5", "max_tokens": 9, "messages": [],
                       "mcp_servers": [{"type": "url", "url": "https://evil.example.com/", "name": "x"}]}}]}),
        ),
        (
            "/v1/messages/batches/msgbatch_1/results",
            "GET",
            json!({"model": "claude-haiku-4-5"}),
        ),
    ] {
        let mut h = headers_for(&llm_world(), path, Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        let d = llm_world().decide(&h, Some(&body));
        let denial = d.denial.unwrap_or_else(|| panic!("{method} {path} with a body passed"));
        assert_eq!(denial.reason, Reason::DataBoundary, "{method} {path}");
        assert!(denial.rule.ends_with(".provider_state"), "{}", denial.rule);
    }
    let h = headers_for(&llm_world(), "/v1/responses/", Some(&t));
    assert!(
        llm_world().decide(&h, Some(&ask)).allowed(),
        "a trailing slash is the endpoint"
    );
    let mut h = headers_for(&w, "/v1/responses/resp_123", Some(&t));
    h[0].1 = b"GET".to_vec();
    assert!(w.decide_raw(&h, None).allowed(), "the route allows it");
    // Only LLM routes reach a provider.
    let e = aigate::policy::compile(
        {
            let mut doc = policy_doc();
            doc["routes"][0]["provider_state"] = json!("allow"); // the MCP route
            doc
        }
        .to_string()
        .as_bytes(),
    )
    .unwrap_err();
    assert!(e.iter().any(|x| x.path == "routes[0].provider_state"), "{e:?}");
}

#[test]
fn data_boundary_for_vector_stores_and_mcp_servers() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read", "kb_stores": ["vs_shared_1", "vs_shared_2"]}));
    let store = |ids: Value| {
        responses_body(
            "gpt-4o-mini",
            vec![json!({"type": "file_search", "vector_store_ids": ids})],
            vec![],
        )
    };
    let mcp = |url: &str| {
        responses_body(
            "gpt-4o-mini",
            vec![json!({"type": "mcp", "server_label": "crm", "server_url": url})],
            vec![],
        )
    };
    let anthropic_mcp = |url: &str| {
        let mut b = anthropic_body("claude-haiku-4-5", &[], vec![]);
        b["mcp_servers"] = json!([{"type": "url", "url": url, "name": "crm"}]);
        b
    };
    for body in [
        store(json!(["vs_acme_kb"])),
        store(json!(["vs_shared_2", "vs_acme_kb"])),
        mcp("https://mcp.example.com/acme/sse"),
    ] {
        let d = decide(&w, RESPONSES, &t, &body);
        assert!(d.allowed(), "{body}: {:?}", d.denial);
    }
    // Calls the provider would run without asking (Anthropic's connector, OpenAI with
    // require_approval "never" or a filter) are never seen: refused unless the rule says so.
    let unasked = |approval: Value| {
        responses_body(
            "gpt-4o-mini",
            vec![
                json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/sse",
                        "require_approval": approval}),
            ],
            vec![],
        )
    };
    let any = World::with(|p| {
        llm_policy(p);
        p["data"]["mcp_servers"][0]["provider_calls"] = json!("any");
    });
    for (path, body) in [
        (MESSAGES, anthropic_mcp("https://mcp.example.com/acme/mcp")),
        (RESPONSES, unasked(json!("never"))),
        (RESPONSES, unasked(json!({"never": {"tool_names": ["lookup"]}}))),
    ] {
        let denial = decide(&w, path, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{body} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "data.mcp_servers.crm.provider_calls"),
            "{body}"
        );
        let t = any.token(json!({"scope": "orders.read docs.read"}));
        assert!(decide(&any, path, &t, &body).allowed(), "{body}");
    }
    assert!(decide(&w, RESPONSES, &t, &unasked(json!("always"))).allowed());
    let rows = [
        (RESPONSES, store(json!(["vs_globex_kb"]))),
        (RESPONSES, store(json!(["vs_acme_kb", "vs_other"]))),
        (RESPONSES, mcp("https://mcp.example.com/globex/sse")),
        (RESPONSES, mcp("https://mcp.example.com/acme/../globex/sse")),
        (RESPONSES, mcp("https://mcp.example.com/acme/%2e%2e/globex")),
        // URL parsers drop tabs and newlines; servers drop `;` parameters; %25 decodes to %.
        (RESPONSES, mcp("https://mcp.example.com/acme/.\t./globex/")),
        (RESPONSES, mcp("https://mcp.example.com/acme/.\n./globex/")),
        (RESPONSES, mcp("https://mcp.example.com/acme/..;/globex/")),
        (RESPONSES, mcp("https://mcp.example.com/acme/%252e%252e/globex/")),
        (RESPONSES, mcp("https://mcp.example.com/acme/ /x")),
        (RESPONSES, mcp("https://mcp.example.com.evil.net/acme/")),
        (
            RESPONSES,
            responses_body(
                "gpt-4o-mini",
                vec![json!({"type": "mcp", "server_label": "g", "connector_id": "connector_gmail"})],
                vec![],
            ),
        ),
        (MESSAGES, anthropic_mcp("https://mcp.example.com/globex/mcp")),
    ];
    // A URL and a connector in one tool: which the provider calls is not aigate's to guess.
    let both = responses_body(
        "gpt-4o-mini",
        vec![
            json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/sse",
                    "connector_id": "connector_gmail"}),
        ],
        vec![],
    );
    assert_eq!(reason(&w, RESPONSES, &t, &both), Some(Reason::BodyMalformed));
    for (path, body) in rows {
        assert_eq!(reason(&w, path, &t, &body), Some(Reason::DataBoundary), "{body}");
        assert_eq!(reason(&any, path, &t, &body), Some(Reason::DataBoundary), "{body}");
    }
    // The store is the caller's, the scope that opens it is not granted.
    let no_docs = w.token(json!({"scope": "orders.read"}));
    let d = decide(&w, RESPONSES, &no_docs, &store(json!(["vs_acme_kb"])));
    assert_eq!(d.denial.as_ref().unwrap().reason, Reason::ScopeMissing);
    assert_eq!(d.denial.unwrap().rule, "data.vector_stores.tenant-kb");
}

/// A Responses request whose client answers the provider's request to run `name` with
/// `args` on the remote MCP server `crm`.
fn remote_approval(name: &str, args: &Value, approve: Value) -> Value {
    json!({"model": "gpt-4o-mini",
           "tools": [{"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/mcp"}],
           "input": [
               {"role": "user", "content": "Where is my order?"},
               {"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "crm", "name": name,
                "arguments": args.to_string()},
               {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": approve}]})
}

#[test]
fn approving_a_remote_mcp_call_is_judged_as_the_call() {
    // The provider asked to run a tool of a remote MCP server; the client approves it.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read email.send"}));
    let approve = remote_approval;
    let mine = json!({"customer_id": "c-42"});
    let d = decide(&w, RESPONSES, &t, &approve("get_order", &mine, json!(true)));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        d.calls.iter().map(|c| (c.tool.as_str(), c.allowed)).collect::<Vec<_>>(),
        [("get_order", true)]
    );
    // Approved for another customer, a tool not in the catalogue, an external action
    // without a human's grant: the agent cannot wave them through.
    let email = json!({"to": "bob@example.com", "subject": "Refund"});
    for (name, args, want) in [
        ("get_order", json!({"customer_id": "c-99"}), Reason::BindingMismatch),
        ("delete_account", json!({}), Reason::ToolUnknown),
        ("send_email", email.clone(), Reason::ApprovalRequired),
    ] {
        assert_eq!(
            reason(&w, RESPONSES, &t, &approve(name, &args, json!(true))),
            Some(want),
            "{name}"
        );
        // Declining is always fine.
        assert!(
            decide(&w, RESPONSES, &t, &approve(name, &args, json!(false))).allowed(),
            "{name}"
        );
    }
    // With a grant for exactly that e-mail, approving it goes through, once.
    let grant = w.grant_for(&email, "remote-1");
    assert!(with_grant(&w, RESPONSES, &t, &grant, &approve("send_email", &email, json!(true))).allowed());
    assert_eq!(
        with_grant(&w, RESPONSES, &t, &grant, &approve("send_email", &email, json!(true)))
            .denial
            .map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
    // The next turn carries the approval again, and the provider's mcp_call that ran it:
    // history now. It is judged as an earlier turn's call (its grant comes along and is not
    // spent again), so the conversation can go on.
    let mut next = approve("send_email", &email, json!(true));
    let items = next["input"].as_array_mut().unwrap();
    items.push(
        json!({"type": "mcp_call", "id": "mcp_1", "approval_request_id": "mcpr_1", "server_label": "crm",
                      "name": "send_email", "arguments": email.to_string(), "output": "sent"}),
    );
    items.push(json!({"role": "assistant", "content": "Sent."}));
    items.push(json!({"role": "user", "content": "Thanks, and my order?"}));
    assert!(with_grant(&w, RESPONSES, &t, &grant, &next).allowed());
    assert!(
        with_grant(&w, RESPONSES, &t, &grant, &next).allowed(),
        "not spent by history"
    );
    assert_eq!(reason(&w, RESPONSES, &t, &next), Some(Reason::ApprovalRequired));
    // Two requests under one id: which one an approval approves is the provider's guess.
    let mut twice = approve("get_order", &mine, json!(true));
    let copy = twice["input"][1].clone();
    twice["input"].as_array_mut().unwrap().insert(1, copy);
    let d = decide(&w, RESPONSES, &t, &twice);
    assert_eq!(
        d.denial.map(|x| (x.reason, x.message)),
        Some((
            Reason::BodyMalformed,
            "two mcp_approval_request items share an id".to_string()
        ))
    );
    // Approving a request the provider keeps (not in input): not judgeable, refused, even
    // on a route that accepts provider state (it would run an action nobody judged).
    let mut unseen = approve("send_email", &email, json!(true));
    unseen["input"].as_array_mut().unwrap().remove(1);
    let stateful = World::with(|p| {
        llm_policy(p);
        let routes = p["routes"].as_array_mut().unwrap();
        let r = routes.iter_mut().find(|r| r["id"] == "responses").unwrap();
        r["provider_state"] = json!("allow");
    });
    for (w, t) in [
        (&w, &t),
        (
            &stateful,
            &stateful.token(json!({"scope": "orders.read docs.read email.send"})),
        ),
    ] {
        let denial = decide(w, RESPONSES, t, &unseen).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "mcp_approval_response")
        );
        assert!(denial.message.contains("not in input"), "{}", denial.message);
    }
    // Declining one is fine.
    unseen["input"][1]["approve"] = json!(false);
    assert!(decide(&w, RESPONSES, &t, &unseen).allowed());
    assert_eq!(
        reason(&w, RESPONSES, &t, &approve("get_order", &mine, json!("yes"))),
        Some(Reason::BodyMalformed)
    );
    // Two requests with one id: which the approval approves is the provider's guess.
    let mut twice = approve("get_order", &mine, json!(true));
    let other = json!({"type": "mcp_approval_request", "id": "mcpr_1", "server_label": "crm",
                       "name": "delete_account", "arguments": "{}"});
    twice["input"].as_array_mut().unwrap().insert(2, other);
    assert_eq!(reason(&w, RESPONSES, &t, &twice), Some(Reason::BodyMalformed));
}

#[test]
fn a_remote_approval_spends_the_grant_an_mcp_call_would() {
    // The catalogue's send_email is reachable through the MCP route and, by name, on the
    // remote server the provider calls: approving it there runs the action as surely as
    // calling it here. One grant runs it once, whichever way comes first.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read email.send"}));
    let email = json!({"to": "bob@example.com", "subject": "Refund"});
    let remote = remote_approval("send_email", &email, json!(true));
    let spent = |d: Decision| d.denial.map(|x| x.reason);

    let grant = w.grant_for(&email, "mcp-then-remote");
    assert!(w
        .decide_approved(&t, &grant, &call("send_email", email.clone()))
        .allowed());
    assert_eq!(
        spent(with_grant(&w, RESPONSES, &t, &grant, &remote)),
        Some(Reason::ApprovalReplayed)
    );

    let grant = w.grant_for(&email, "remote-then-mcp");
    let d = with_grant(&w, RESPONSES, &t, &grant, &remote);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        d.calls.iter().map(|c| (c.tool.as_str(), c.allowed)).collect::<Vec<_>>(),
        [("send_email", true)]
    );
    assert_eq!(
        spent(w.decide_approved(&t, &grant, &call("send_email", email.clone()))),
        Some(Reason::ApprovalReplayed)
    );

    // A call the client ran through aigate and now reports to the model is not run again:
    // the same grant tells the model (the conversation gate), once.
    let grant = w.grant_for(&email, "run-then-report");
    assert!(w
        .decide_approved(&t, &grant, &call("send_email", email.clone()))
        .allowed());
    let report = json!({"model": "gpt-4o-mini", "input": [
        {"role": "user", "content": "Send the refund e-mail"},
        {"type": "function_call", "call_id": "call_1", "name": "send_email", "arguments": email.to_string()},
        {"type": "function_call_output", "call_id": "call_1", "output": "sent"}]});
    let d = with_grant(&w, RESPONSES, &t, &grant, &report);
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn files_stored_at_the_provider_stay_inside_the_callers_boundary() {
    let w = llm_world();
    // The caller's uploads, as the token lists them.
    let t = w.token(json!({"scope": "orders.read docs.read", "files": ["file-acme-1", "file-acme-2"]}));
    let chat = |id: &str| {
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Summarise this"},
            {"type": "file", "file": {"file_id": id}}]}]})
    };
    let responses = |id: &str| {
        json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What does it say?"},
            {"type": "input_image", "file_id": "file-acme-2", "detail": "auto"},
            {"type": "input_file", "file_id": id}]}]})
    };
    let interpreter = |ids: Value| {
        json!({"model": "gpt-4o-mini", "input": "Plot it",
               "tools": [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": ids}}]})
    };
    let anthropic = |id: &str| {
        json!({"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
            {"role": "user", "content": [{"type": "document", "source": {"type": "file", "file_id": "file-acme-1"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_order",
                                               "input": {"customer_id": "c-42", "file_id": "not-a-file"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "image", "source": {"type": "file", "file_id": id}}]}]}]})
    };
    let hosted = World::with(|p| {
        llm_policy(p);
        p["tools"]["code_interpreter"] =
            json!({"intent": "orders.read", "impact": "read", "owner": "data@example.com"});
    });
    // Each protocol: the caller's own upload passes, someone else's is refused wherever it
    // is named. (In the Anthropic case a tool call's own `file_id` argument is no file.)
    for (w, path, own, other) in [
        (&w, CHAT, chat("file-acme-1"), chat("file-globex-9")),
        (&w, RESPONSES, responses("file-acme-1"), responses("file-globex-9")),
        (
            &hosted,
            RESPONSES,
            interpreter(json!(["file-acme-1", "file-acme-2"])),
            interpreter(json!(["file-acme-1", "file-globex-9"])),
        ),
        (&w, MESSAGES, anthropic("file-acme-2"), anthropic("file-globex-9")),
    ] {
        let t = w.token(json!({"scope": "orders.read docs.read", "files": ["file-acme-1", "file-acme-2"]}));
        let d = decide(w, path, &t, &own);
        assert!(d.allowed(), "{own}: {:?}", d.denial);
        let denial = decide(w, path, &t, &other)
            .denial
            .unwrap_or_else(|| panic!("{other} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "data.files"),
            "{other}"
        );
        assert!(denial.message.contains("file-globex-9"), "{}", denial.message);
    }
    // The file is the caller's, the scope that opens it is not granted.
    let no_docs = w.token(json!({"scope": "orders.read", "files": ["file-acme-1"]}));
    let d = decide(&w, CHAT, &no_docs, &chat("file-acme-1"));
    let denial = d.denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::ScopeMissing, "data.files.uploads")
    );
    // Without a data.files rule, no stored file is inside anyone's boundary.
    assert_eq!(
        reason(&World::with(llm_policy_without_files), CHAT, &t, &chat("file-acme-1")),
        Some(Reason::DataBoundary)
    );
    // What the provider returned and the conversation echoes back puts no file before the
    // model: an answer's citations, a file search's results.
    let echoed = json!({"model": "gpt-4o-mini", "input": [
        {"role": "user", "content": "What is the refund policy?"},
        {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["refund"],
         "results": [{"file_id": "file-store-7", "filename": "policy.pdf", "text": "…", "score": 0.9}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
            {"type": "output_text", "text": "Refunds take 5 days.", "annotations": [
                {"type": "file_citation", "file_id": "file-store-7", "filename": "policy.pdf", "index": 20}]}]},
        {"role": "user", "content": "Thanks"}]});
    let d = decide(&w, RESPONSES, &t, &echoed);
    assert!(d.allowed(), "{:?}", d.denial);
    // A file id that is not text is no request aigate can judge.
    let mut bad = chat("x");
    bad["messages"][0]["content"][1]["file"]["file_id"] = json!(7);
    assert_eq!(reason(&w, CHAT, &t, &bad), Some(Reason::BodyMalformed));
    // Nor one a parser that ignores case would read as a file id.
    let miscased = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"File_id": "file-globex-9"}}]}]});
    assert_eq!(reason(&w, CHAT, &t, &miscased), Some(Reason::BodyMalformed));
}

fn llm_policy_without_files(p: &mut Value) {
    llm_policy(p);
    p["data"].as_object_mut().unwrap().remove("files");
}

#[test]
fn an_earlier_audio_answer_named_by_id_is_provider_state() {
    let w = llm_world();
    let t = w.token(json!({}));
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "assistant", "audio": {"id": "audio_OTHER"}},
        {"role": "user", "content": "repeat that"}]});
    let denial = decide(&w, CHAT, &t, &body).denial.expect("an audio id passed");
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::DataBoundary, "routes.chat.provider_state")
    );
    let plain = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "assistant", "audio": null, "content": "ok"}, {"role": "user", "content": "hi"}]});
    assert!(decide(&w, CHAT, &t, &plain).allowed());
}

#[test]
fn a_member_aigate_reads_spelled_in_another_case_is_refused() {
    // A provider rejects `Tools`; a server on a parser that ignores case (Go) reads it as
    // the tools aigate would have judged.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read"}));
    let offer = json!([{"type": "function", "function": {"name": "send_email", "parameters": {}}}]);
    for (path, body) in [
        (
            CHAT,
            json!({"model": "gpt-4o-mini", "Tools": offer, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            CHAT,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "assistant", "Tool_Calls": [
            {"id": "c", "type": "function", "function": {"name": "send_email", "arguments": "{}"}}]}]}),
        ),
        (
            RESPONSES,
            json!({"model": "gpt-4o-mini", "input": "hi", "TOOLS": [{"type": "function", "name": "send_email"}]}),
        ),
        (
            RESPONSES,
            json!({"model": "gpt-4o-mini", "input": "hi", "Previous_Response_Id": "resp_1"}),
        ),
        (
            MESSAGES,
            json!({"model": "claude-haiku-4-5", "max_tokens": 9, "messages": [], "Mcp_Servers": []}),
        ),
    ] {
        let denial = decide(&w, path, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{body} passed"));
        assert_eq!(denial.reason, Reason::BodyMalformed, "{body}");
        assert!(denial.message.contains("only in case"), "{}", denial.message);
    }
    // Members aigate does not read pass in any case.
    let other =
        json!({"model": "gpt-4o-mini", "Metadata": {}, "messages": [{"role": "user", "content": "hi", "Name": "a"}]});
    assert!(decide(&w, CHAT, &t, &other).allowed());
}

/// `llm_world` whose Messages route accepts provider state.
fn messages_state_allowed() -> World {
    World::with(|p| {
        llm_policy(p);
        let r = p["routes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["id"] == "messages")
            .unwrap();
        r["provider_state"] = json!("allow");
    })
}

#[test]
fn an_anthropic_thread_continued_or_another_message_named_is_provider_state() {
    let w = llm_world();
    let t = w.token(json!({}));
    // A continued thread's earlier turns, tool calls included, are the provider's (maybe
    // another caller's); diagnostics compare this prompt with another request's.
    for (member, value, label) in [
        (
            "thread",
            json!({"type": "continue", "previous_message_id": "msg_of_another_user"}),
            "thread",
        ),
        // Any shape but a plain create is taken as continuing.
        (
            "thread",
            json!({"type": "create", "previous_message_id": "msg_1"}),
            "thread",
        ),
        ("thread", json!("msg_1"), "thread"),
        (
            "diagnostics",
            json!({"previous_message_id": "msg_of_another_user"}),
            "diagnostics.previous_message_id",
        ),
    ] {
        let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
        body[member] = value.clone();
        let denial = decide(&w, MESSAGES, &t, &body)
            .denial
            .unwrap_or_else(|| panic!("{member}: {value} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.messages.provider_state"),
            "{value}"
        );
        assert!(
            denial
                .message
                .starts_with(&format!("{label} continues state the provider keeps")),
            "{}",
            denial.message
        );
        // A route that accepts provider state judges the rest as usual.
        assert!(
            decide(&messages_state_allowed(), MESSAGES, &t, &body).allowed(),
            "{value}"
        );
    }
    // Starting a thread, or diagnostics with no earlier message, continue nothing.
    for (member, value) in [
        ("thread", json!({"type": "create"})),
        ("thread", Value::Null),
        ("diagnostics", json!({"previous_message_id": null})),
        ("diagnostics", json!({})),
    ] {
        let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
        body[member] = value.clone();
        let d = decide(&w, MESSAGES, &t, &body);
        assert!(d.allowed(), "{member}: {value}: {:?}", d.denial);
    }
    let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
    body["diagnostics"] = json!("msg_1");
    assert_eq!(reason(&w, MESSAGES, &t, &body), Some(Reason::BodyMalformed));
    // Spelled in another case, a case-blind server would read it: refused.
    let mut body = anthropic_body("claude-haiku-4-5", &[], vec![]);
    body["Thread"] = json!({"type": "continue", "previous_message_id": "msg_1"});
    assert_eq!(reason(&w, MESSAGES, &t, &body), Some(Reason::BodyMalformed));
}

#[test]
fn stores_and_servers_the_conversation_adds_stay_inside_the_boundary() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    let added = |kind: &str, tool: Value| {
        let item = if kind == "additional_tools" {
            json!({"type": "additional_tools", "role": "developer", "tools": [tool]})
        } else {
            json!({"type": "tool_search_output", "execution": "server", "tools": [tool]})
        };
        json!({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "summarise the KB"}, item]})
    };
    for kind in ["additional_tools", "tool_search_output"] {
        for tool in [
            json!({"type": "file_search", "vector_store_ids": ["vs_acme_kb"]}),
            json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/"}),
        ] {
            let d = decide(&w, RESPONSES, &t, &added(kind, tool.clone()));
            assert!(d.allowed(), "{kind} {tool}: {:?}", d.denial);
        }
        for (tool, rule, says) in [
            (
                json!({"type": "file_search", "vector_store_ids": ["vs_other_kb"]}),
                "data.vector_stores",
                "vs_other_kb",
            ),
            (
                json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/other/"}),
                "data.mcp_servers",
                "remote MCP server is outside the caller's data boundary",
            ),
            (
                json!({"type": "mcp", "server_label": "gmail", "connector_id": "connector_gmail", "require_approval": "never"}),
                "data.mcp_servers",
                "has no URL",
            ),
            (
                json!({"type": "mcp", "server_label": "crm", "server_url": "https://mcp.example.com/acme/", "require_approval": "never"}),
                "data.mcp_servers.crm.provider_calls",
                "without asking",
            ),
        ] {
            let denial = decide(&w, RESPONSES, &t, &added(kind, tool.clone()))
                .denial
                .unwrap_or_else(|| panic!("{kind} {tool} passed"));
            assert_eq!(
                (denial.reason, denial.rule.as_str()),
                (Reason::DataBoundary, rule),
                "{kind} {tool}"
            );
            assert!(denial.message.contains(says), "{}", denial.message);
        }
        // Stored containers and files, as in tools[].
        let hosted = World::with(|p| {
            llm_policy(p);
            p["tools"]["code_interpreter"] = json!({"intent": "orders.read", "impact": "read"});
        });
        let body = added(kind, json!({"type": "code_interpreter", "container": "cntr_other"}));
        let denial = decide(&hosted, RESPONSES, &t, &body).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state")
        );
        let body = added(
            kind,
            json!({"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-other"]}}),
        );
        let denial = decide(&hosted, RESPONSES, &t, &body).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "data.files")
        );
    }
}

#[test]
fn an_mcp_server_named_two_ways_or_by_tunnel_is_refused() {
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    let mcp = |tool: Value| json!({"model": "gpt-4o-mini", "input": "x", "tools": [tool]});
    for tool in [
        json!({"type": "mcp", "server_label": "c", "server_url": "https://mcp.example.com/acme/", "tunnel_id": "tun_other"}),
        json!({"type": "mcp", "server_label": "c", "connector_id": "connector_gmail", "tunnel_id": "tun_other"}),
    ] {
        let denial = decide(&w, RESPONSES, &t, &mcp(tool.clone())).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.message.as_str()),
            (
                Reason::BodyMalformed,
                "an mcp tool names its server one way (server_url, connector_id or tunnel_id), not two"
            ),
            "{tool}"
        );
    }
    // A tunnel alone has no URL to judge: outside every boundary.
    let tunnel = mcp(json!({"type": "mcp", "server_label": "c", "tunnel_id": "tun_other"}));
    let denial = decide(&w, RESPONSES, &t, &tunnel).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str(), denial.message.as_str()),
        (
            Reason::DataBoundary,
            "data.mcp_servers",
            "MCP connector or tunnel \"tun_other\" has no URL inside the caller's data boundary"
        )
    );
}

#[test]
fn reasoning_given_by_id_alone_is_provider_state() {
    let w = llm_world();
    let t = w.token(json!({}));
    let user = json!({"role": "user", "content": "hi"});
    let with = |item: Value| json!({"model": "gpt-4o-mini", "store": true, "input": [user, item, user]});
    for item in [
        json!({"type": "reasoning", "id": "rs_of_another_user", "summary": []}),
        json!({"type": "reasoning", "id": "rs_of_another_user", "summary": [], "encrypted_content": null}),
        json!({"type": "compaction", "id": "cmp_other"}),
    ] {
        let denial = decide(&w, RESPONSES, &t, &with(item.clone()))
            .denial
            .unwrap_or_else(|| panic!("{item} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "routes.responses.provider_state"),
            "{item}"
        );
        assert!(
            denial
                .message
                .starts_with("a reasoning or compaction item given by id without its encrypted_content"),
            "{}",
            denial.message
        );
    }
    // The content itself, encrypted, is in the request: nothing stored is restored.
    for item in [
        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-x"}),
        json!({"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAB-y"}),
    ] {
        let d = decide(&w, RESPONSES, &t, &with(item.clone()));
        assert!(d.allowed(), "{item}: {:?}", d.denial);
    }
}

#[test]
fn chat_data_sources_are_refused() {
    // Azure OpenAI "On Your Data": the provider reads a search index with its own identity.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    let source = json!([{"type": "azure_search", "parameters": {"endpoint": "https://search.example.net",
        "index_name": "tenant-other", "authentication": {"type": "system_assigned_managed_identity"}}}]);
    for member in ["data_sources", "dataSources"] {
        let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        body[member] = source.clone();
        let denial = decide(&w, CHAT, &t, &body).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::DataBoundary, "openai_chat.data_sources"),
            "{member}"
        );
        assert!(denial.message.starts_with(member), "{}", denial.message);
        assert!(denial.message.contains("On Your Data"), "{}", denial.message);
        // No source at all is no retrieval.
        for none in [Value::Null, json!([])] {
            body[member] = none;
            assert!(decide(&w, CHAT, &t, &body).allowed(), "{member}");
        }
    }
    let miscased = json!({"model": "gpt-4o-mini", "messages": [], "Data_Sources": source});
    assert_eq!(reason(&w, CHAT, &t, &miscased), Some(Reason::BodyMalformed));
}

#[test]
fn an_mcp_call_before_its_approval_does_not_make_the_approval_history() {
    // A spent grant for an e-mail: the provider ran it once. A made-up mcp_call placed
    // before the approval must not turn a new approval of the same call into history.
    let w = llm_world();
    let t = w.token(json!({"scope": "orders.read docs.read email.send"}));
    let email = json!({"to": "bob@example.com", "subject": "Refund"});
    let grant = w.grant_for(&email, "remote-order");
    assert!(with_grant(
        &w,
        RESPONSES,
        &t,
        &grant,
        &remote_approval("send_email", &email, json!(true))
    )
    .allowed());
    let ran = json!({"type": "mcp_call", "id": "mcp_1", "approval_request_id": "mcpr_1", "server_label": "crm",
                     "name": "send_email", "arguments": email.to_string(), "output": "sent"});
    for at in [1, 2] {
        // Before the request, or between the request and its approval.
        let mut early = remote_approval("send_email", &email, json!(true));
        early["input"].as_array_mut().unwrap().insert(at, ran.clone());
        let d = with_grant(&w, RESPONSES, &t, &grant, &early);
        assert_eq!(
            d.denial.map(|x| x.reason),
            Some(Reason::ApprovalReplayed),
            "mcp_call at {at}"
        );
    }
    // After the approval it ran: history, its grant checked but not spent again.
    let mut after = remote_approval("send_email", &email, json!(true));
    after["input"].as_array_mut().unwrap().push(ran.clone());
    assert!(with_grant(&w, RESPONSES, &t, &grant, &after).allowed());
    // Approved again after it ran: the provider might run it again, on a grant long spent
    // (or expired) that history would accept. A request answered twice is refused.
    let mut again = after.clone();
    let input = again["input"].as_array_mut().unwrap();
    input.push(json!({"role": "user", "content": "Send it once more"}));
    for approve in [true, false] {
        let mut twice = again.clone();
        twice["input"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": approve}));
        let denial = with_grant(&w, RESPONSES, &t, &grant, &twice).denial.unwrap();
        assert_eq!(
            (denial.reason, denial.message.as_str()),
            (
                Reason::BodyMalformed,
                "two mcp_approval_response items answer one approval request"
            ),
            "{approve}"
        );
    }
}
