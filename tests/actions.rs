//! REST actions (`protocol: action`): a route that is one catalogued tool, its JSON body
//! the arguments. The same scope, constraint, binding and approval rules as an MCP call.

mod common;

use aigate::decision::Reason;
use aigate::engine::{self, Decision, Head};
use aigate::request::Headers;
use aigate::response;
use common::*;
use serde_json::{json, Value};

fn world_routes() -> Vec<Value> {
    vec![
        json!({"id": "refunds", "prefix": "/api/refunds", "methods": ["POST"], "protocol": "action",
               "tool": "refund_order", "owner": "payments-api@example.com"}),
        json!({"id": "orders", "prefix": "/api/orders", "protocol": "action", "tool": "get_order"}),
        json!({"id": "mail", "prefix": "/api/mail", "protocol": "action", "tool": "send_email"}),
    ]
}

fn world() -> World {
    World::with(|p| {
        let mut routes = world_routes();
        routes.extend(p["routes"].as_array().unwrap().iter().cloned());
        p["routes"] = Value::from(routes);
    })
}

fn request(w: &World, path: &str, method: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = w.headers(Some(&w.token(json!({}))));
    h[0].1 = method.as_bytes().to_vec();
    h[1].1 = path.as_bytes().to_vec();
    for (k, v) in extra {
        h.push((k.to_string(), v.as_bytes().to_vec()));
    }
    h
}

#[test]
fn an_action_is_judged_as_its_tool() {
    let w = world();
    let h = request(&w, "/api/refunds", "POST", &[]);
    let rows: Vec<(Value, Option<Reason>)> = vec![
        (json!({"customer_id": "c-42", "amount": 20}), None),
        (
            json!({"customer_id": "c-42", "amount": 500}),
            Some(Reason::ArgumentViolation),
        ),
        (
            json!({"customer_id": "c-99", "amount": 20}),
            Some(Reason::BindingMismatch),
        ),
        (json!({"customer_id": "c-42"}), Some(Reason::ArgumentViolation)),
        (json!([1, 2]), Some(Reason::BodyMalformed)),
        (json!("refund"), Some(Reason::BodyMalformed)),
    ];
    for (body, want) in rows {
        let d = w.decide(&h, Some(&body));
        assert_eq!(d.denial.as_ref().map(|x| x.reason), want, "{body}");
        // Even a body that is not arguments names the action attempted: the route's tool.
        let call = d.calls.first().expect("the action is recorded as a call");
        assert_eq!(call.tool, "refund_order");
        assert_eq!(call.intent.as_deref(), Some("orders.refund"));
        assert_eq!(call.allowed, want.is_none());
    }
    // Malformed text and duplicate keys are refused like any other body, and audited as
    // an attempt at the route's tool, under its owner.
    for raw in [&b"{\"amount\": 1,"[..], b"{\"amount\": 1, \"amount\": 2}"] {
        let d = w.decide_raw(&h, Some(raw));
        assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::BodyMalformed));
        let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "a", 0)).unwrap();
        assert_eq!(
            (v["tool"].as_str(), v["reason"].as_str()),
            (Some("refund_order"), Some("body_malformed"))
        );
        assert_eq!(v["owner"], "payments@example.com");
        assert!(v["args_digest"].is_null());
    }
}

#[test]
fn an_argument_the_policy_judges_is_refused_in_another_spelling() {
    // A pydantic model with camelCase aliases and `populate_by_name` reads `customerId`
    // (before `customer_id`, in either order), binders of kebab-case names `customer-id`,
    // Go and ASP.NET any case: the endpoint would act for c-99, which aigate never judged.
    let w = world();
    let orders = request(&w, "/api/orders", "POST", &[]);
    for body in [
        json!({"customer_id": "c-42", "customerId": "c-99"}),
        json!({"customerId": "c-99", "customer_id": "c-42"}),
        json!({"customer_id": "c-42", "customer-id": "c-99"}),
        json!({"customer_id": "c-42", "CustomerID": "c-99"}),
        json!({"customerId": "c-42"}),
    ] {
        let denial = w.decide(&orders, Some(&body)).denial.expect("an alias passed");
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BindingMismatch, "tools.get_order.bind./customer_id"),
            "{body}"
        );
        assert!(denial.message.contains("is sent as"), "{}", denial.message);
    }
    // A constrained argument too: the refund limit holds of `amount`, not of `amount_`.
    let refunds = request(&w, "/api/refunds", "POST", &[]);
    let body = json!({"customer_id": "c-42", "amount": 5, "amount_": 100000});
    let denial = w.decide(&refunds, Some(&body)).denial.expect("an alias passed");
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::ArgumentViolation, "tools.refund_order.constraints./amount")
    );
    // Arguments the policy does not judge may be spelled as the endpoint likes.
    let body = json!({"customer_id": "c-42", "amount": 5, "reasonCode": "x", "reason_text": "y"});
    assert!(w.decide(&refunds, Some(&body)).allowed());
}

#[test]
fn a_refusal_before_the_body_still_names_the_action_attempted() {
    // No token, or a body aigate will not read: the arguments are never judged, but the
    // request was an attempt at the route's one action, and its owner answers for it.
    let w = world();
    let mut anonymous = request(&w, "/api/refunds", "POST", &[]);
    anonymous.retain(|(k, _)| k != "authorization");
    let gzipped = request(&w, "/api/refunds", "POST", &[("content-encoding", "gzip")]);
    for (h, reason) in [(anonymous, "unauthenticated"), (gzipped, "encoding_unsupported")] {
        let d = w.decide(&h, Some(&json!({"customer_id": "c-42", "amount": 20})));
        assert_eq!(d.denial.as_ref().map(|x| x.reason.as_str()), Some(reason));
        assert!(d.calls.is_empty(), "no call was judged");
        let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "a", 0)).unwrap();
        assert_eq!(
            (&v["tool"], &v["intent"], &v["impact"], &v["owner"]),
            (
                &json!("refund_order"),
                &json!("orders.refund"),
                &json!("write"),
                &json!("payments@example.com")
            ),
            "{reason}: {v}"
        );
    }
}

#[test]
fn scopes_and_ceilings_apply() {
    let w = world();
    let narrow = w.token(json!({"scope": "orders.read"}));
    let mut h = request(&w, "/api/refunds", "POST", &[]);
    let auth = h.iter_mut().find(|(k, _)| k == "authorization").unwrap();
    auth.1 = format!("Bearer {narrow}").into_bytes();
    let d = w.decide(&h, Some(&json!({"customer_id": "c-42", "amount": 20})));
    let denial = d.denial.clone().unwrap();
    assert_eq!(denial.reason, Reason::ScopeMissing);
    assert_eq!(denial.required_scope.as_deref(), Some("orders.refund"));
    // Outside MCP a denial is the generic error JSON: 403 naming the scope to ask for.
    let reply = response::render(&w.policy, &d, &denial, "id-1");
    assert_eq!(reply.status, 403);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["reason"], "scope_missing");
    assert_eq!(body["error"]["required_scope"], "orders.refund");
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.contains("insufficient_scope")));
}

#[test]
fn without_a_body_the_arguments_are_empty() {
    let w = world();
    // GET /api/orders: get_order binds /customer_id, so an empty argument set fails the binding.
    let d = w.decide_raw(&request(&w, "/api/orders", "GET", &[]), None);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BindingMismatch));
    // The route's method list still applies: GET is not a refund route.
    let d = w.decide_raw(&request(&w, "/api/refunds", "GET", &[]), None);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::RouteUnmatched));
}

#[test]
fn input_outside_the_body_is_refused_unless_the_route_allows_it() {
    let w = world();
    let args = json!({"customer_id": "c-42", "amount": 5});
    let post = |w: &World, path: &str| w.decide(&request(w, path, "POST", &[]), Some(&args));
    assert!(post(&w, "/api/refunds").allowed());
    assert!(post(&w, "/api/refunds/").allowed(), "a trailing slash is no input");
    assert!(post(&w, "/api/refunds?").allowed(), "nor an empty query");
    // The body says c-42 and 5; an upstream merging parameters would read these instead.
    for (path, what) in [
        ("/api/refunds?customer_id=c-99&amount=100000", "the query string"),
        ("/api/refunds/c-99/o-9", "the path below the route's prefix"),
        ("/api/refunds/?amount=100000", "the query string"),
    ] {
        let d = post(&w, path);
        let denial = d.denial.unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ArgumentViolation, "routes.refunds.extra_input"),
            "{path}"
        );
        assert!(denial.message.starts_with(what), "{}", denial.message);
        assert_eq!(
            d.calls.iter().map(|c| c.tool.as_str()).collect::<Vec<_>>(),
            ["refund_order"]
        );
    }
    // Laravel and Symfony read the method from the body too.
    for key in ["_method", "_METHOD"] {
        let mut overriding = args.clone();
        overriding[key] = json!("DELETE");
        let d = w.decide(&request(&w, "/api/refunds", "POST", &[]), Some(&overriding));
        let denial = d.denial.expect("a method override member passed");
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ArgumentViolation, "routes.refunds.extra_input")
        );
        assert!(
            denial.message.starts_with("a method override member (_method)"),
            "{}",
            denial.message
        );
    }
    // A body the endpoint would read as a form: the JSON says 5, the form says 100000.
    let typed = |content_type: Option<&str>, body: &[u8]| {
        let mut h = request(&w, "/api/refunds", "POST", &[]);
        h.retain(|(k, _)| k != "content-type");
        if let Some(t) = content_type {
            h.push(("content-type".into(), t.as_bytes().to_vec()));
        }
        w.decide_raw(&h, Some(body))
    };
    let sneaky = br#"{"customer_id":"c-42","amount":5,"x":"&amount=100000&customer_id=c-99&"}"#;
    // Rack reads a POST without a content type as a form, and a list of types (or a type
    // broken by a space) as its first: Rack and PHP see a form below.
    for t in [
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("text/plain"),
        None,
        Some("application/x-www-form-urlencoded +json"),
        Some("application/x-www-form-urlencoded\t+json"),
        Some("application/json; charset"),
        Some("application/json; char set=utf-8"),
    ] {
        let denial = typed(t, sneaky).denial.unwrap_or_else(|| panic!("{t:?} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ArgumentViolation, "routes.refunds.extra_input"),
            "{t:?}"
        );
        assert!(
            denial.message.starts_with("a body that is not declared JSON"),
            "{}",
            denial.message
        );
    }
    for t in [
        Some("application/json; charset=utf-8"),
        Some("application/json; charset=\"UTF-8\""),
        Some("Application/JSON"),
        Some("application/merge-patch+json"),
        Some("application/json;"),
    ] {
        assert!(typed(t, sneaky).allowed(), "{t:?}");
    }
    // An endpoint decoding by the declared charset reads UTF-7 `+ACI-` as a quote: whatever
    // the route allows, a body declared in another charset is refused (415).
    for t in [
        "application/json; charset=utf-7",
        "application/json; charset=\"Shift_JIS\"",
        "application/json;charset=utf-16",
        "application/json; charset=utf-8; charset=utf-7",
        "text/plain; charset=utf-7",
        // A list of types, as Envoy joins a Content-Type given twice: the MCP routes' answer.
        "application/json,application/json",
        "application/x-www-form-urlencoded,application/vnd.api+json",
        "application/json, text/plain",
    ] {
        let denial = typed(Some(t), sneaky).denial.unwrap_or_else(|| panic!("{t:?} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::EncodingUnsupported, "content_type"),
            "{t:?}"
        );
    }
    let mut twice = request(&w, "/api/refunds", "POST", &[("content-type", "application/json")]);
    assert_eq!(twice.iter().filter(|(k, _)| k == "content-type").count(), 2);
    let denial = w.decide_raw(&twice, Some(sneaky)).denial.expect("two types passed");
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::EncodingUnsupported, "content_type")
    );
    twice.retain(|(k, _)| k != "authorization");
    assert_eq!(
        w.decide_raw(&twice, Some(sneaky)).denial.map(|x| x.reason),
        Some(Reason::EncodingUnsupported),
        "decided with the other input checks, before identity"
    );
    // Without a body there is nothing to declare.
    let mut bare = request(&w, "/api/refunds", "POST", &[]);
    bare.retain(|(k, _)| k != "content-type");
    assert_eq!(
        w.decide_raw(&bare, None).denial.map(|x| x.reason),
        Some(Reason::BindingMismatch),
        "judged as a call with no arguments"
    );
    // A method override makes the endpoint run another action than the route judged; CGI-style
    // servers read it with `_` for `-` too.
    for header in ["x_http_method_override", "X_HTTP-Method", "x-method_override"] {
        let h = request(&w, "/api/refunds", "POST", &[(header, "DELETE")]);
        let denial = w
            .decide_raw(&h, Some(sneaky))
            .denial
            .unwrap_or_else(|| panic!("{header} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BodyMalformed, "headers"),
            "{header}"
        );
        assert!(denial.message.contains("CGI-style servers"), "{}", denial.message);
    }
    for header in ["x-http-method-override", "X-HTTP-Method", "x-method-override"] {
        let h = request(&w, "/api/refunds", "POST", &[(header, "DELETE")]);
        let denial = w
            .decide_raw(&h, Some(sneaky))
            .denial
            .unwrap_or_else(|| panic!("{header} passed"));
        assert_eq!(denial.rule, "routes.refunds.extra_input", "{header}");
        assert!(
            denial.message.starts_with("a method override header"),
            "{}",
            denial.message
        );
    }
    // A path override or a forwarded host makes a framework route the request elsewhere;
    // a proxy in front that repeats the request's own host is fine.
    let good = json!({"customer_id": "c-42", "amount": 5});
    for (header, value, refused) in [
        ("x-original-url", "/api/mail", Some("a path override header")),
        ("X-Rewrite-URL", "/api/mail", Some("a path override header")),
        ("x-forwarded-host", "admin.example.com", Some("a forwarded host")),
        (
            "x-forwarded-host",
            "gateway.example.com, admin.example.com",
            Some("a forwarded host"),
        ),
        (
            "forwarded",
            "for=10.0.0.1;host=admin.example.com",
            Some("a forwarded host"),
        ),
        (
            "forwarded",
            "for=10.0.0.1, Host=\"admin.example.com\"",
            Some("a forwarded host"),
        ),
        // Proxies' records of the path and method a request was sent with, which services
        // behind them read as the request's.
        ("X-Forwarded-Uri", "/api/mail", Some("a path override header")),
        ("x-original-uri", "/api/mail", Some("a path override header")),
        ("x-forwarded-path", "/api/mail", Some("a path override header")),
        // A record of the request's own path (Kong adds one to every request), a path
        // base, and an Envoy in front that rewrote the path (an Istio ingress): no other
        // route.
        ("x-forwarded-path", "/api/refunds", None),
        ("X-Forwarded-Uri", "/api/refunds", None),
        ("x-forwarded-prefix", "/public", None),
        ("x-envoy-original-path", "/public/refunds", None),
        ("x-forwarded-method", "DELETE", Some("a method override header")),
        ("X-Original-Method", "DELETE", Some("a method override header")),
        ("x-host", "admin.example.com", Some("a forwarded host")),
        ("x-host", "gateway.example.com", None),
        ("x-forwarded-host", "Gateway.Example.com:443", None),
        ("forwarded", "for=10.0.0.1;proto=https", None),
        ("forwarded", "host=gateway.example.com", None),
    ] {
        let d = w.decide(&request(&w, "/api/refunds", "POST", &[(header, value)]), Some(&good));
        match (refused, d.denial) {
            (None, None) => {}
            (Some(what), Some(denial)) => {
                assert_eq!(denial.rule, "routes.refunds.extra_input", "{header}: {value}");
                assert!(denial.message.starts_with(what), "{header}: {}", denial.message);
            }
            (want, got) => panic!("{header}: {value}: want {want:?}, got {got:?}"),
        }
    }
    let h = request(&w, "/api/refunds", "POST", &[("x_forwarded_host", "admin.example.com")]);
    assert_eq!(
        w.decide(&h, Some(&good)).denial.map(|x| (x.reason, x.rule)),
        Some((Reason::BodyMalformed, "headers".to_string()))
    );
    // A route that allows it passes that input unjudged; the body is still judged.
    let w = World::with(|p| {
        let mut routes = world_routes();
        routes[0]["extra_input"] = json!("allow");
        p["routes"] = Value::from(routes);
    });
    assert!(post(&w, "/api/refunds/o-1?api-version=2").allowed());
    let d = w.decide(
        &request(&w, "/api/refunds?x=1", "POST", &[]),
        Some(&json!({"customer_id": "c-99", "amount": 5})),
    );
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BindingMismatch));
    // Only action routes take the setting.
    let mut doc = policy_doc();
    doc["routes"][0]["extra_input"] = json!("allow");
    assert_eq!(doc["routes"][0]["protocol"], "mcp");
    let e = aigate::policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(
        e.iter()
            .any(|m| m.path == "routes[0].extra_input" && m.message.contains("only to action routes")),
        "{e:?}"
    );
}

#[test]
fn input_outside_the_body_is_refused_at_the_head() {
    // With `hold: body` the head goes upstream when the verdict waits for the body: what the
    // head alone refuses must be refused before that, as a bad token is.
    let w = world();
    let head = |path: &str, extra: &[(&str, &str)]| {
        let h = Headers::new(request(&w, path, "POST", extra));
        engine::on_headers(&w.policy, &h, &w.host, true)
    };
    for (path, extra) in [
        ("/api/refunds?x=1", vec![]),
        ("/api/refunds/c-99", vec![]),
        ("/api/refunds", vec![("x-http-method-override", "DELETE")]),
        ("/api/refunds", vec![("x-original-url", "/api/mail")]),
        ("/api/refunds", vec![("x-forwarded-host", "admin.example.com")]),
    ] {
        match head(path, &extra) {
            Head::Decided(d) => {
                let denial = d.denial.expect("decided, and refused");
                assert_eq!(denial.rule, "routes.refunds.extra_input", "{path} {extra:?}");
                assert_eq!(
                    d.calls.iter().map(|c| c.tool.as_str()).collect::<Vec<_>>(),
                    ["refund_order"],
                    "the action attempted is named"
                );
            }
            Head::NeedBody(_) => panic!("{path} {extra:?} waits for the body"),
        }
    }
    // A body not declared JSON: the head says one follows, so it is refused there too.
    let mut untyped = request(&w, "/api/refunds", "POST", &[]);
    untyped.retain(|(k, _)| k != "content-type");
    let untyped = Headers::new(untyped);
    assert!(matches!(
        engine::on_headers(&w.policy, &untyped, &w.host, true),
        Head::Decided(Decision { denial: Some(_), .. })
    ));
    // ...but not one declared empty, which is judged as no arguments at its end.
    let mut empty = request(&w, "/api/refunds", "POST", &[("content-length", "0")]);
    empty.retain(|(k, _)| k != "content-type");
    let empty = Headers::new(empty);
    let Head::NeedBody(d) = engine::on_headers(&w.policy, &empty, &w.host, true) else {
        panic!("an empty body was refused at the head");
    };
    let d = engine::on_body(&w.policy, d, &empty, b"", &w.host);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BindingMismatch));
    // A clean head waits for the body, and a route allowing extra input does not refuse.
    assert!(matches!(head("/api/refunds", &[]), Head::NeedBody(_)));
    let w = World::with(|p| {
        let mut routes = world_routes();
        routes[0]["extra_input"] = json!("allow");
        p["routes"] = Value::from(routes);
    });
    let h = Headers::new(request(&w, "/api/refunds?x=1", "POST", &[]));
    assert!(matches!(
        engine::on_headers(&w.policy, &h, &w.host, true),
        Head::NeedBody(_)
    ));
}

#[test]
fn external_actions_need_a_grant_for_the_exact_body() {
    let w = world();
    let args = json!({"to": "bob@example.com", "subject": "Your refund"});
    let d = w.decide(&request(&w, "/api/mail", "POST", &[]), Some(&args));
    let denial = d.denial.clone().unwrap();
    assert_eq!(denial.reason, Reason::ApprovalRequired);
    let digest = aigate::digest::args_digest(&args).unwrap();
    assert_eq!(d.calls[0].args_digest.as_deref(), Some(digest.as_str()));
    let reply = response::render(&w.policy, &d, &denial, "id-2");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"]["args_digest"], digest.as_str());
    assert_eq!(body["error"]["tool"], "send_email");
    // The message itself says what to do: agent frameworks often pass on only the text.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "have a human approve it at https://approvals.example.com/new?tool=send_email&digest={digest}"
        )) && message.ends_with("then send the same call again with the grant in the x-aigate-approval header"),
        "{message}"
    );

    let grant = w.grant(json!({"args_digest": digest}));
    let h = request(&w, "/api/mail", "POST", &[("x-aigate-approval", &grant)]);
    let d = w.decide(&h, Some(&args));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    let changed = json!({"to": "eve@example.com", "subject": "Your refund"});
    let grant = w.grant(json!({"args_digest": digest, "jti": "grant-2"}));
    let h = request(&w, "/api/mail", "POST", &[("x-aigate-approval", &grant)]);
    assert_eq!(
        w.decide(&h, Some(&changed)).denial.map(|x| x.reason),
        Some(Reason::ApprovalMismatch)
    );
}

#[test]
fn the_audit_names_the_action_and_its_owner() {
    let w = world();
    let d = w.decide(
        &request(&w, "/api/refunds", "POST", &[]),
        Some(&json!({"customer_id": "c-42", "amount": 20})),
    );
    let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "id-3", 0)).unwrap();
    assert_eq!(line["protocol"], "action");
    assert_eq!(line["route"], "refunds");
    assert_eq!(line["tool"], "refund_order");
    assert_eq!(line["decision"], "allow");
    // The tool's owner is accountable before the route's.
    assert_eq!(line["owner"], "payments@example.com");
}

#[test]
fn an_action_route_must_name_a_catalogued_tool() {
    let compile = |route: Value| {
        let mut p = policy_doc();
        p["routes"] = json!([route]);
        aigate::policy::compile(p.to_string().as_bytes())
            .err()
            .map(|e| e.iter().map(|x| x.to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let errors = compile(json!({"id": "a", "prefix": "/a", "protocol": "action"}));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("routes[0].tool: an action route names")),
        "{errors:?}"
    );
    let errors = compile(json!({"id": "a", "prefix": "/a", "protocol": "action", "tool": "nope"}));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("routes[0].tool: \"nope\" is not in the tool catalogue")),
        "{errors:?}"
    );
    let errors = compile(json!({"id": "a", "prefix": "/a", "protocol": "mcp", "tool": "get_order"}));
    assert!(
        errors
            .iter()
            .any(|e| e.contains("routes[0].tool: applies only to action routes")),
        "{errors:?}"
    );
}

#[test]
fn a_path_is_judged_as_the_endpoint_it_names() {
    // Unmatched requests pass here, so only the path checks stand between a crafted path
    // and an unjudged request.
    let w = World::with(|p| {
        p["unmatched"] = json!("allow");
        let mut routes = world_routes();
        routes.extend(p["routes"].as_array().unwrap().iter().cloned());
        p["routes"] = Value::from(routes);
    });
    let refund = json!({"customer_id": "c-42", "amount": 20});
    for path in [
        "/api/orders/../refunds",
        "/api/orders/./x",
        "/api/orders/..",
        "//api/refunds",
        "/api//refunds",
        "/api/orders/%2e%2e/refunds",
        "/api/orders%2Frefunds",
        "/api/orders/..%2F..%2Frefunds",
        "/api/orders/..;/refunds",
        "/api/orders/..;jsessionid=1/refunds",
        "/api/orders/.;x/refunds",
        "/api\\refunds",
        "api/refunds",
        // Decoded by servers before routing: /api/refunds, and /api/refunds;x.
        "/api/r%65funds",
        "/%61pi/refunds",
        "/api/refunds%3Bx",
    ] {
        let d = w.decide(&request(&w, path, "POST", &[]), Some(&refund));
        let denial = d.denial.clone().unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::RouteUnmatched, "routes"),
            "{path}"
        );
        assert!(denial.message.starts_with("the request path "), "{}", denial.message);
        assert_eq!(response::render(&w.policy, &d, &denial, "i").status, 404);
    }
    // Prefixes match whole segments: /api/orders-admin is not /api/orders (it is unmatched,
    // which this policy lets through unjudged, as it says).
    let d = w.decide(&request(&w, "/api/orders-admin", "GET", &[]), None);
    assert!(d.allowed() && d.route.is_none(), "{:?}", d.denial);
    let d = w.decide(&request(&w, "/api/orders/o-1?x=/../", "GET", &[]), None);
    assert_eq!(
        d.route.map(|i| w.policy.routes[i].id.as_str()),
        Some("orders"),
        "the query is not the path"
    );
    // Encoded characters other than separators and dots are ordinary path text.
    let d = w.decide(&request(&w, "/api/orders/o%201", "GET", &[]), None);
    assert_eq!(d.route.map(|i| w.policy.routes[i].id.as_str()), Some("orders"));
}

#[test]
fn a_path_in_another_case_or_with_segment_parameters_is_judged_as_the_route_it_reaches() {
    let w = world();
    let over = json!({"customer_id": "c-42", "amount": 500});
    // Express and ASP.NET route /API/Refunds to the refunds endpoint: judged as it.
    for path in ["/API/Refunds", "/Api/refunds/"] {
        let d = w.decide(&request(&w, path, "POST", &[]), Some(&over));
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ArgumentViolation), "{path}");
        assert_eq!(d.calls.first().map(|c| c.tool.as_str()), Some("refund_order"), "{path}");
    }
    // Tomcat and Spring drop `;` parameters: the route is found, and the parameter is input
    // aigate does not judge.
    for path in ["/api/refunds;jsessionid=1", "/api;x/refunds"] {
        let d = w.decide(
            &request(&w, path, "POST", &[]),
            Some(&json!({"customer_id": "c-42", "amount": 5})),
        );
        let denial = d.denial.unwrap_or_else(|| panic!("{path} passed"));
        assert_eq!(denial.rule, "routes.refunds.extra_input", "{path}");
    }
    // Still whole segments only.
    let d = w.decide(&request(&w, "/API/refunds-admin", "POST", &[]), Some(&over));
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::RouteUnmatched));
}
