//! Engine table tests: the decision flow natively, one row (at least) per reason code.

mod common;

use aigate::decision::Reason;
use aigate::response;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

fn reason_of(w: &World, token: Option<&str>, body: &Value) -> Option<Reason> {
    w.decide(&w.headers(token), Some(body)).denial.map(|d| d.reason)
}

#[test]
fn the_workload_comes_from_the_configured_claim() {
    // RFC 8693 delegation: the agent acting for alice is the token's `act.sub`.
    let w = World::with(|p| p["identity"]["workload"]["claim"] = json!("act.sub"));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let delegated = w.token(json!({"azp": null, "act": {"sub": "support-agent"}}));
    let d = w.decide(&w.headers(Some(&delegated)), Some(&body));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.principal.unwrap().workload.as_deref(), Some("support-agent"));
    // `azp` is not consulted, and an agent without a ceiling gains nothing.
    for claims in [
        json!({"azp": "support-agent"}),
        json!({"azp": null, "act": {"sub": "rogue-agent"}}),
        json!({"azp": null, "act": "support-agent"}),
    ] {
        let t = w.token(claims.clone());
        assert_eq!(
            reason_of(&w, Some(&t), &body),
            Some(Reason::WorkloadUntrusted),
            "{claims}"
        );
    }
    let w = World::with(|p| p["identity"]["workload"]["claim"] = json!("client_id"));
    let t = w.token(json!({"azp": null, "client_id": "support-agent"}));
    assert_eq!(reason_of(&w, Some(&t), &body), None);
}

#[test]
fn an_issuer_grants_no_more_than_its_scopes() {
    // A partner's identity provider is trusted for order lookups only, whatever its tokens say.
    let w = World::with(|p| {
        let main = p["identity"]["jwt"]["issuers"][0].clone();
        let mut partner = main.clone();
        partner["issuer"] = json!("https://partner.example.com");
        partner["scopes"] = json!(["orders.read"]);
        p["identity"]["jwt"]["issuers"].as_array_mut().unwrap().push(partner);
    });
    let lookup = call("get_order", json!({"customer_id": "c-42"}));
    let refund = call("refund_order", json!({"customer_id": "c-42", "amount": 1}));
    let partner = w.token(json!({"iss": "https://partner.example.com", "scope": "orders.*"}));
    assert_eq!(reason_of(&w, Some(&partner), &lookup), None);
    let d = w.decide(&w.headers(Some(&partner)), Some(&refund)).denial.unwrap();
    assert_eq!(d.reason, Reason::ScopeMissing);
    // The main issuer's token with the same scopes still refunds.
    let main = w.token(json!({"scope": "orders.*"}));
    assert_eq!(reason_of(&w, Some(&main), &refund), None);
    // A scope pattern that does not parse is a config error naming its path.
    let errs = aigate::policy::compile(
        {
            let mut doc = policy_doc();
            doc["identity"]["jwt"]["issuers"][0]["scopes"] = json!(["orders.*.read"]);
            doc.to_string()
        }
        .as_bytes(),
    )
    .unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.to_string().starts_with("identity.jwt.issuers[0].scopes[0]")),
        "{errs:?}"
    );
}

#[test]
fn a_token_cannot_claim_a_spiffe_id_that_only_a_certificate_proves() {
    // The policy trusts example.org's mTLS workloads; an agent's delegation token names
    // the SVID of a workload with a wide ceiling, with no certificate behind it.
    let w = World::with(|p| {
        p["identity"]["workload"]["claim"] = json!("act.sub");
        p["workloads"].as_array_mut().unwrap().insert(
            0,
            json!({"id": "root", "match": "spiffe://example.org/ns/admin/sa/root", "scopes": ["*"]}),
        );
    });
    let body = call("get_order", json!({"customer_id": "c-42"}));
    for svid in [
        "spiffe://example.org/ns/admin/sa/root",
        "SPIFFE://example.org/ns/admin/sa/root",
    ] {
        let t = w.token(json!({"azp": null, "act": {"sub": svid}}));
        let d = w.decide(&w.headers(Some(&t)), Some(&body)).denial.unwrap();
        assert_eq!(
            (d.reason, d.rule.as_str()),
            (Reason::WorkloadUntrusted, "identity.workload.claim"),
            "{svid}"
        );
    }
    // Presented by mTLS, the same ID is the workload.
    let mut w = w;
    w.host.peer = Some("spiffe://example.org/ns/admin/sa/root".into());
    let t = w.token(json!({"azp": null, "act": {"sub": "spiffe://example.org/ns/admin/sa/root"}}));
    assert!(w.decide(&w.headers(Some(&t)), Some(&body)).allowed());
}

#[test]
fn mcp_methods_aigate_does_not_know_are_refused_unless_the_route_passes_them() {
    let w = World::new();
    let t = w.token(json!({}));
    // What MCP clients send that carries nothing to judge passes.
    for method in [
        "initialize",
        "server/discover",
        "ping",
        "logging/setLevel",
        "resources/unsubscribe",
        "tasks/list",
    ] {
        assert_eq!(reason_of(&w, Some(&t), &rpc(method, json!({}))), None, "{method}");
    }
    for method in ["notifications/initialized", "notifications/cancelled"] {
        let notification = json!({"jsonrpc": "2.0", "method": method, "params": {}});
        assert_eq!(reason_of(&w, Some(&t), &notification), None, "{method}");
    }
    // A server extension, a later revision's method, a misspelt one: what it does is unknown.
    // So is a request named like a notification (it carries an id; no notification does).
    for method in [
        "tools/execute",
        "acme/run_sql",
        "Tools/call",
        "notifications",
        "",
        "notifications/tools/call",
    ] {
        let d = w.decide(&w.headers(Some(&t)), Some(&rpc(method, json!({"name": "drop_tables"}))));
        let denial = d.denial.unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::ToolUnknown, "routes.support-mcp.unknown_methods"),
            "{method:?}"
        );
        assert!(denial.message.contains(&format!("{method:?}")), "{}", denial.message);
    }
    // One unknown element denies its batch.
    let batch = json!([rpc("ping", json!({})), rpc("acme/run_sql", json!({}))]);
    assert_eq!(reason_of(&w, Some(&t), &batch), Some(Reason::ToolUnknown));
    // A route that accepts them passes them unjudged (the release gate warns).
    let lax = World::with(|p| p["routes"][0]["unknown_methods"] = json!("pass"));
    let t = lax.token(json!({}));
    assert_eq!(reason_of(&lax, Some(&t), &rpc("acme/run_sql", json!({}))), None);
    let errs = aigate::policy::compile(
        {
            let mut doc = policy_doc();
            doc["routes"].as_array_mut().unwrap().push(
                json!({"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat",
                             "unknown_methods": "pass"}),
            );
            doc.to_string()
        }
        .as_bytes(),
    )
    .unwrap_err();
    assert!(
        errs.iter().any(|e| e
            .to_string()
            .contains("routes[1].unknown_methods: applies only to MCP routes")),
        "{errs:?}"
    );
}

#[test]
fn a_route_may_be_bound_to_a_host() {
    let w = World::with(|p| {
        p["routes"][0]["host"] = json!("Tools.Example.com");
        p["unmatched"] = json!("deny");
    });
    let t = w.token(json!({}));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let at = |authority: &str| {
        let mut h = w.headers(Some(&t));
        h.retain(|(k, _)| k != ":authority");
        h.push((":authority".into(), authority.as_bytes().to_vec()));
        w.decide(&h, Some(&body)).denial.map(|d| d.reason)
    };
    assert_eq!(at("tools.example.com"), None);
    assert_eq!(at("TOOLS.example.com:8443"), None, "case and port do not matter");
    assert_eq!(at("tools.example.com."), None, "nor the root's dot");
    assert_eq!(at("tools.example.com.:8443"), None);
    assert_eq!(at("admin.example.com"), Some(Reason::RouteUnmatched));
    assert_eq!(at("tools.example.com.evil.net"), Some(Reason::RouteUnmatched));
}

#[test]
fn a_method_or_host_servers_read_as_another_is_matched_to_no_route() {
    // Even where requests no route matches pass: such a request could be judged by one
    // route (or none) and served by another.
    let w = World::with(|p| {
        p["unmatched"] = json!("allow");
        p["routes"][0]["host"] = json!("tools.example.com");
    });
    let t = w.token(json!({}));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let sent = |name: &str, value: &str| {
        let mut h = w.headers(Some(&t));
        h.retain(|(k, _)| k != name);
        h.push((name.into(), value.as_bytes().to_vec()));
        w.decide(&h, Some(&body)).denial.map(|d| (d.reason, d.rule))
    };
    let refused = Some((Reason::RouteUnmatched, "routes".to_string()));
    for method in ["post", "Post", "gEt", "POST\u{e9}"] {
        assert_eq!(sent(":method", method), refused, "{method:?}");
    }
    for authority in [
        "tools.example.com:abc",
        "tools.example.com:80:80",
        "tools.example.com,evil.example.com",
        "evil@tools.example.com",
        "tools%2eexample.com",
        "tools..example.com",
        ".tools.example.com",
        "tools.example.com..",
        "[::1",
        "[::1]x",
        "[evil]",
    ] {
        assert_eq!(sent(":authority", authority), refused, "{authority:?}");
    }
    for authority in [
        "tools.example.com",
        "tools.example.com.",
        "tools.example.com:",
        "tools.example.com:8443",
        "my_service:8080",
        "127.0.0.1:10000",
        "[::1]:10000",
        "[::1]",
    ] {
        assert_ne!(sent(":authority", authority), refused, "{authority:?}");
    }
    assert_eq!(sent(":method", "POST"), None);
}

#[test]
fn route_hosts_and_prefixes_that_could_never_match_are_refused() {
    let errs = |field: &str, value: &str| {
        let mut doc = policy_doc();
        doc["routes"][0][field] = json!(value);
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    for (field, value, want) in [
        ("host", "admin.example.com:443", "routes[0].host: must not carry a port"),
        ("host", "admin.example.com.", "routes[0].host: must not end with '.'"),
        (
            "host",
            "*.example.com",
            "routes[0].host: is matched exactly, not as a pattern",
        ),
        (
            "host",
            "https://admin.example.com",
            "routes[0].host: must be a host name",
        ),
        ("prefix", "mcp", "routes[0].prefix: must start with '/'"),
        (
            "prefix",
            "/api/refunds?x",
            "routes[0].prefix: contains a query or fragment",
        ),
        ("prefix", "/api;v=1", "routes[0].prefix: contains ';'"),
        (
            "prefix",
            "/a%2fb",
            "routes[0].prefix: contains an encoded dot, slash or backslash",
        ),
        ("prefix", "/a/../b", "routes[0].prefix: contains a dot segment"),
        ("prefix", "/m%63p", "routes[0].prefix: percent-encodes a letter"),
    ] {
        let e = errs(field, value);
        assert!(
            e.iter().any(|m| m.starts_with(want)),
            "{field} = {value}: want {want}, got {e:?}"
        );
    }
    for (field, value) in [
        ("host", "[::1]"),
        ("host", "Tools.Example.com"),
        ("prefix", "/mcp/"),
        ("prefix", "/"),
    ] {
        assert_eq!(errs(field, value), Vec::<String>::new(), "{field} = {value}");
    }
}

#[test]
fn allowed_calls() {
    let w = World::new();
    let t = w.token(json!({}));
    for body in [
        call("get_order", json!({"customer_id": "c-42", "order_id": "o-1"})),
        call(
            "refund_order",
            json!({"customer_id": "c-42", "order_id": "o-1", "amount": 20}),
        ),
        rpc("tools/list", json!({})),
        rpc(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        ),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        rpc("resources/read", json!({"uri": "docs://acme/handbook.md"})),
        // An encoded space, a query after a name, dots inside a name, a non-ASCII name.
        rpc(
            "resources/read",
            json!({"uri": "docs://acme/team%20notes/v1..2.md?rev=3#top"}),
        ),
        rpc("resources/read", json!({"uri": "docs://acme/caf\u{e9}.md"})),
        // Characters Unicode says to ignore, where they make no dot segment: a zero-width
        // non-joiner in a Persian word, emoji with a joiner or a variation selector.
        rpc(
            "resources/read",
            json!({"uri": "docs://acme/\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}.md"}),
        ),
        rpc(
            "resources/read",
            json!({"uri": "docs://acme/\u{2764}\u{fe0f}/\u{1f468}\u{200d}\u{1f469}.md?q=%E2%80%8D"}),
        ),
        rpc("resources/subscribe", json!({"uri": "docs://acme/handbook.md"})),
        rpc("resources/unsubscribe", json!({"uri": "docs://globex/anything"})),
        rpc(
            "subscriptions/listen",
            json!({"notifications": {"resourceSubscriptions": ["docs://acme/handbook.md"], "toolsListChanged": true}}),
        ),
        rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "support_reply"}, "argument": {"name": "order_id", "value": "o-"}}),
        ),
        rpc(
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "docs://acme/{name}"}, "argument": {"name": "name", "value": "re"}}),
        ),
        // Expressions that expand percent-encoded or into the query.
        complete_template("docs://acme/{a,b}/{x}{?q,lang}{&page}"),
        complete_template("docs://acme/{tenant_id}/{a.b}"),
        json!([
            call("get_order", json!({"customer_id": "c-42", "order_id": "o-1"})),
            rpc("ping", json!({}))
        ]),
    ] {
        let d = w.decide(&w.headers(Some(&t)), Some(&body));
        assert!(d.allowed(), "{body}: {:?}", d.denial);
        assert_eq!(d.principal.as_ref().unwrap().subject, "alice");
    }
}

#[test]
fn identity_reasons() {
    let w = World::new();
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let now = w.host.now;
    let rows: Vec<(&str, Option<String>, Reason)> = vec![
        ("no token", None, Reason::Unauthenticated),
        ("garbage", Some("not-a-jwt".into()), Reason::TokenInvalid),
        (
            "wrong audience",
            Some(w.token(json!({"aud": "other"}))),
            Reason::TokenInvalid,
        ),
        (
            "unknown issuer",
            Some(w.token(json!({"iss": "https://evil.example"}))),
            Reason::TokenInvalid,
        ),
        (
            "not yet valid",
            Some(w.token(json!({"nbf": now + 3600}))),
            Reason::TokenInvalid,
        ),
        ("no exp", Some(w.token(json!({"exp": null}))), Reason::TokenInvalid),
        // Within the clock skew both times pass on their own; together they make no sense.
        (
            "expires before it is issued",
            Some(w.token(json!({"iat": now + 20, "exp": now + 10}))),
            Reason::TokenInvalid,
        ),
        ("no subject", Some(w.token(json!({"sub": null}))), Reason::TokenInvalid),
        (
            "expired",
            Some(w.token(json!({"exp": now - 60, "iat": now - 120}))),
            Reason::TokenExpired,
        ),
        (
            "too long-lived",
            Some(w.token(json!({"iat": now - 10, "exp": now + 86_400}))),
            Reason::TokenLifetimeExceeded,
        ),
        (
            "lifetime unprovable",
            Some(w.token(json!({"iat": null}))),
            Reason::TokenLifetimeExceeded,
        ),
        (
            "unknown workload",
            Some(w.token(json!({"azp": "rogue-agent"}))),
            Reason::WorkloadUntrusted,
        ),
        (
            "no workload",
            Some(w.token(json!({"azp": null}))),
            Reason::WorkloadUntrusted,
        ),
        (
            "issued in the future",
            Some(w.token(json!({"iat": now + 3600, "exp": now + 3900}))),
            Reason::TokenInvalid,
        ),
        (
            "expired beyond the skew",
            Some(w.token(json!({"iat": now - 300, "exp": now - 31}))),
            Reason::TokenExpired,
        ),
        (
            "audience list without ours",
            Some(w.token(json!({"aud": ["other"]}))),
            Reason::TokenInvalid,
        ),
        (
            "empty audience list",
            Some(w.token(json!({"aud": []}))),
            Reason::TokenInvalid,
        ),
        (
            // max_token_lifetime_seconds: 900
            "lifetime one second over the maximum",
            Some(w.token(json!({"iat": now - 10, "exp": now - 10 + 901}))),
            Reason::TokenLifetimeExceeded,
        ),
    ];
    for (name, token, want) in rows {
        assert_eq!(reason_of(&w, token.as_deref(), &body), Some(want), "{name}");
    }
    // Clocks drift: within the policy's 30 s of skew a token is still (or already) good.
    for (name, claims) in [
        ("expired within the skew", json!({"iat": now - 300, "exp": now - 29})),
        ("issued just ahead", json!({"iat": now + 29, "exp": now + 300})),
        ("valid from just ahead", json!({"nbf": now + 29})),
        // Nor are these over any line: an audience list naming this gateway among others,
        // and a lifetime of exactly max_token_lifetime_seconds (900).
        ("audience list with ours", json!({"aud": ["other", "aigate"]})),
        (
            "lifetime exactly the maximum",
            json!({"iat": now - 10, "exp": now - 10 + 900}),
        ),
    ] {
        assert_eq!(reason_of(&w, Some(&w.token(claims)), &body), None, "{name}");
    }
    // Only the Bearer scheme carries a token (in any case): a valid JWT sent as Basic
    // credentials is not taken for one.
    let t = w.token(json!({}));
    for (scheme, want) in [
        ("Basic", Some((Reason::TokenInvalid, "identity.jwt".to_string()))),
        ("Token", Some((Reason::TokenInvalid, "identity.jwt".to_string()))),
        ("bearer", None),
    ] {
        let mut h = w.headers(None);
        h.push(("authorization".into(), format!("{scheme} {t}").into_bytes()));
        let got = w.decide(&h, Some(&body)).denial.map(|d| (d.reason, d.rule));
        assert_eq!(got, want, "{scheme}");
    }
    // alg none, signed with nothing.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(Value::Object(w.claims(json!({}))).to_string().as_bytes())
    );
    assert_eq!(reason_of(&w, Some(&none), &body), Some(Reason::TokenInvalid));
    // Bad signature: a token from a key the issuer does not have.
    let forged = World::with_other_key().token(json!({}));
    assert_eq!(reason_of(&w, Some(&forged), &body), Some(Reason::TokenInvalid));
    // Two Authorization headers: refused, whichever is valid.
    let t = w.token(json!({}));
    let mut h = w.headers(Some(&t));
    h.push(("authorization".into(), format!("Bearer {t}").into_bytes()));
    assert_eq!(w.decide(&h, Some(&body)).denial.unwrap().reason, Reason::TokenInvalid);
    // A host that cannot tell the time cannot check expiry: fail closed.
    let mut stopped = World::new();
    stopped.host.now = 0;
    let old = w.token(json!({"iat": null, "exp": now - 86_400}));
    let d = stopped
        .decide(&stopped.headers(Some(&old)), Some(&body))
        .denial
        .unwrap();
    assert_eq!((d.reason, d.rule.as_str()), (Reason::InternalError, "identity"));
}

/// The example policy taking identity from Envoy's jwt_authn (its payload in metadata).
fn jwt_authn_world() -> World {
    World::with(|p| {
        let identity = p["identity"].as_object_mut().unwrap();
        identity.remove("jwt");
        identity.insert("source".into(), json!("jwt_authn"));
        identity.insert("jwt_authn".into(), json!({"payload_key": "jwt_payload"}));
    })
}

#[test]
fn identity_from_jwt_authn_refuses_a_credential_envoy_did_not_verify() {
    let mut w = jwt_authn_world();
    let alice = w.token(json!({}));
    let claims = aigate::jws::peek_claims(&alice).unwrap();
    w.host.payload = Some(aigate::identity::metadata::as_metadata(&claims));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    // jwt_authn took the token out (`forward: false`), or left the one it verified.
    let removed = w.headers(None);
    assert!(w.decide(&removed, Some(&body)).allowed());
    let kept = w.headers(Some(&alice));
    assert!(w.decide(&kept, Some(&body)).allowed());
    let mut lower = removed.clone();
    lower.push(("authorization".into(), format!("bearer  {alice}").into_bytes()));
    assert!(w.decide(&lower, Some(&body)).allowed());
    // Anything else in the header is a credential the upstream may take for the caller's:
    // another token (jwt_authn verified one from the query string, or passed over a
    // scheme it does not match), another scheme, or a second header.
    let rogue = w.token(json!({"sub": "mallory"}));
    // An unsigned token of the verified claims, and one whose customer id rounds to the
    // verified one as a double (jwt_authn's metadata holds numbers as doubles).
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = |claims: &serde_json::Map<String, Value>| b64(Value::Object(claims.clone()));
    let unsigned = format!("{}.{}.", b64(json!({"alg": "none"})), payload(&claims));
    let none_signed = format!("{}.{}.c2ln", b64(json!({"alg": "none"})), payload(&claims));
    let mut w_big = jwt_authn_world();
    let big = w_big.token(json!({"customer_id": 9_007_199_254_740_992u64}));
    let mut neighbour = aigate::jws::peek_claims(&big).unwrap();
    w_big.host.payload = Some(aigate::identity::metadata::as_metadata(&neighbour));
    neighbour.insert("customer_id".into(), json!(9_007_199_254_740_993u64));
    let forged = format!("{}.{}.c2ln", big.split('.').next().unwrap(), payload(&neighbour));
    let mut h = w_big.headers(None);
    h.push(("authorization".into(), format!("Bearer {forged}").into_bytes()));
    let lookup = call("search_docs", json!({"query": "x"}));
    assert_eq!(
        w_big.decide(&h, Some(&lookup)).denial.map(|d| d.reason),
        Some(Reason::TokenInvalid),
        "a neighbouring integer is another credential"
    );
    for value in [
        format!("bearer {rogue}"),
        format!("Token {alice}"),
        "Basic bWFsbG9yeTpzZWNyZXQ=".to_string(),
        "Bearer someone-else".to_string(),
        format!("Bearer {unsigned}"),
        format!("Bearer {none_signed}"),
    ] {
        let mut h = removed.clone();
        h.push(("authorization".into(), value.clone().into_bytes()));
        let d = w.decide(&h, Some(&body)).denial.unwrap();
        assert_eq!(
            (d.reason, d.rule.as_str()),
            (Reason::TokenInvalid, "identity.jwt_authn"),
            "{value}"
        );
        assert!(d.message.contains("did not verify"), "{}", d.message);
    }
    let mut two = kept.clone();
    two.push(("Authorization".into(), format!("Bearer {alice}").into_bytes()));
    let d = w.decide(&two, Some(&body)).denial.unwrap();
    assert_eq!(
        (d.reason, d.rule.as_str()),
        (Reason::TokenInvalid, "identity.jwt_authn")
    );
    // jwt_authn passed over a credential (a scheme it does not match) and verified none:
    // the client sent one, so it is told that one was not read, not that none was sent.
    w.host.payload = None;
    let mut passed_over = removed.clone();
    passed_over.push(("authorization".into(), format!("bearer {alice}").into_bytes()));
    let d = w.decide(&passed_over, Some(&body)).denial.unwrap();
    assert_eq!(d.reason, Reason::TokenInvalid);
    assert_eq!(
        w.decide(&removed, Some(&body)).denial.map(|d| d.reason),
        Some(Reason::Unauthenticated)
    );
}

#[test]
fn a_second_credential_beside_the_verified_token_is_refused() {
    let w = World::new();
    let t = w.token(json!({}));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let rogue = w.token(json!({"sub": "mallory"}));
    // RFC 6750's query parameter, however its name is spelled, and Proxy-Authorization.
    for path in [
        format!("/mcp?access_token={rogue}"),
        format!("/mcp?x=1&ACCESS_TOKEN={rogue}"),
        format!("/mcp?access%5Ftoken={rogue}"),
        // As PHP and Rack read names: `.`, a space and an unclosed `[` as `_`, an array.
        format!("/mcp?access.token={rogue}"),
        format!("/mcp?access+token={rogue}"),
        format!("/mcp?access[token={rogue}"),
        format!("/mcp?access_token[]={rogue}"),
    ] {
        let mut h = w.headers(Some(&t));
        h.retain(|(k, _)| k != ":path");
        h.push((":path".into(), path.clone().into_bytes()));
        let d = w
            .decide(&h, Some(&body))
            .denial
            .unwrap_or_else(|| panic!("{path}: allowed"));
        assert_eq!(
            (d.reason, d.rule.as_str()),
            (Reason::TokenInvalid, "identity.jwt"),
            "{path}"
        );
    }
    for name in ["proxy-authorization", "Proxy_Authorization"] {
        let mut h = w.headers(Some(&t));
        h.push((name.into(), format!("Bearer {rogue}").into_bytes()));
        let d = w.decide(&h, Some(&body)).denial.unwrap();
        assert_eq!(d.reason, Reason::TokenInvalid, "{name}");
        assert!(d.message.contains("Proxy-Authorization"), "{}", d.message);
    }
    // Other query parameters are no credential.
    let mut h = w.headers(Some(&t));
    h.retain(|(k, _)| k != ":path");
    h.push((":path".into(), b"/mcp?token_hint=access_token".to_vec()));
    assert!(w.decide(&h, Some(&body)).allowed());
}

#[test]
fn a_claim_number_rounded_behind_jwt_authn_binds_nothing() {
    // Envoy hands the payload over as doubles: a Snowflake-style id of 2^53 or more comes
    // out rounded, and equal to the rounded form of its neighbours.
    let mut w = jwt_authn_world();
    let claims = w.claims(json!({"customer_id": 1_234_567_890_123_456_789u64}));
    w.host.payload = Some(aigate::identity::metadata::as_metadata(&claims));
    let headers = w.headers(None);
    for args in [
        r#"{"customer_id":1234567890123456700.0}"#,
        r#"{"customer_id":1234567890123456800.0}"#,
        r#"{"customer_id":1234567890123456789}"#,
        r#"{"customer_id":"1.2345678901234568e18"}"#,
    ] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_order","arguments":{args}}}}}"#
        );
        let d = w.decide_raw(&headers, Some(body.as_bytes()));
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::BindingMismatch), "{args}");
    }
    // An id that survives the double exactly still binds.
    let claims = w.claims(json!({"customer_id": 4242}));
    w.host.payload = Some(aigate::identity::metadata::as_metadata(&claims));
    let d = w.decide(&headers, Some(&call("get_order", json!({"customer_id": 4242}))));
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn an_argument_number_a_javascript_server_rounds_binds_nothing() {
    // 9007199254740993 is 9007199254740992 to a JavaScript server: another customer's id,
    // whatever the token says. Send such ids as strings.
    let w = World::new();
    for claim in [json!("9007199254740993"), json!(9_007_199_254_740_993u64)] {
        let t = w.token(json!({"customer_id": claim}));
        for args in [
            r#"{"customer_id":9007199254740993}"#,
            r#"{"customer_id":-9007199254740993}"#,
        ] {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_order","arguments":{args}}}}}"#
            );
            let d = w.decide_raw(&w.headers(Some(&t)), Some(body.as_bytes()));
            assert_eq!(
                d.denial.map(|x| x.reason),
                Some(Reason::BindingMismatch),
                "{claim} {args}"
            );
        }
        let d = w.decide(
            &w.headers(Some(&t)),
            Some(&call("get_order", json!({"customer_id": "9007199254740993"}))),
        );
        assert!(d.allowed(), "{claim}: {:?}", d.denial);
    }
    // The largest integer every reader reads alike still binds, as a number or a string.
    let t = w.token(json!({"customer_id": "9007199254740991"}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call("get_order", json!({"customer_id": 9_007_199_254_740_991u64}))),
    );
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn workload_from_mtls_spiffe_id() {
    let mut w = World::new();
    let body = call("get_order", json!({"customer_id": "c-42"}));
    w.host.peer = Some("spiffe://example.org/ns/agents/support".into());
    let t = w.token(json!({"azp": null}));
    let d = w.decide(&w.headers(Some(&t)), Some(&body));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        d.principal.unwrap().workload.as_deref(),
        Some("spiffe://example.org/ns/agents/support")
    );
    // The prefix ceiling allows only orders.read: a refund is out of its reach even
    // though the token carries orders.refund.
    let refund = call("refund_order", json!({"customer_id": "c-42", "amount": 1}));
    assert_eq!(reason_of(&w, Some(&t), &refund), Some(Reason::ScopeMissing));
    w.host.peer = Some("spiffe://evil.org/ns/agents/support".into());
    assert_eq!(reason_of(&w, Some(&t), &body), Some(Reason::WorkloadUntrusted));
    // Only a well-formed workload SPIFFE ID names a workload: under the prefix as text,
    // these name another workload once resolved or decoded, or none at all.
    for odd in [
        "spiffe://example.org/ns/agents/../../admin",
        "spiffe://example.org/ns/agents/%2e%2e/admin",
        "spiffe://example.org/ns/agents/",
        "spiffe://example.org/ns/agents//support",
        "spiffe://example.org/ns/agents/./support",
        "spiffe://example.org:443/ns/agents/support",
        "spiffe://user@example.org/ns/agents/support",
        "spiffe://Example.org/ns/agents/support",
        "spiffe://example.org/ns/agents/support?x=1",
        "spiffe://example.org",
        "SPIFFE://example.org/ns/agents/support",
    ] {
        w.host.peer = Some(odd.into());
        let denial = w.decide(&w.headers(Some(&t)), Some(&body)).denial;
        assert_eq!(
            denial.map(|x| (x.reason, x.rule)),
            Some((
                Reason::WorkloadUntrusted,
                "identity.workload.spiffe_trust_domains".into()
            )),
            "{odd}"
        );
    }

    // Without a client certificate the token's azp names the workload (support-agent, a
    // wider ceiling), unless the policy requires mTLS.
    let azp = w.token(json!({}));
    w.host.peer = None;
    assert!(reason_of(&w, Some(&azp), &refund).is_none());
    let mut strict = World::with(|p| p["identity"]["workload"]["require_mtls"] = json!(true));
    assert_eq!(reason_of(&strict, Some(&azp), &refund), Some(Reason::WorkloadUntrusted));
    let d = strict
        .decide(&strict.headers(Some(&azp)), Some(&refund))
        .denial
        .unwrap();
    assert_eq!(d.rule, "identity.workload.require_mtls");
    strict.host.peer = Some("spiffe://example.org/ns/agents/support".into());
    assert_eq!(
        reason_of(&strict, Some(&azp), &refund),
        Some(Reason::ScopeMissing),
        "the mTLS ceiling applies"
    );
}

#[test]
fn workload_prefixes_end_at_a_delimiter() {
    let errs = |prefix: &str| match aigate::policy::compile(
        {
            let mut doc = policy_doc();
            doc["workloads"][1]["match_prefix"] = json!(prefix);
            doc
        }
        .to_string()
        .as_bytes(),
    ) {
        Ok(_) => vec![],
        Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
    };
    let e = errs("spiffe://example.org/ns/agents");
    assert!(
        e.iter()
            .any(|m| m.starts_with("workloads[1].match_prefix: ") && m.contains("delimiter")),
        "{e:?}"
    );
    for ok in ["spiffe://example.org/ns/agents/", "triage-", "svc:"] {
        assert!(errs(ok).is_empty(), "{ok}");
    }
    let mut doc = policy_doc();
    doc["identity"]["workload"] = json!({"claim": "azp", "require_mtls": true});
    let e = aigate::policy::compile(doc.to_string().as_bytes()).unwrap_err();
    assert!(e.iter().any(|x| x.path == "identity.workload.require_mtls"), "{e:?}");
}

#[test]
fn an_mcp_route_takes_the_transports_methods_only() {
    let w = World::new();
    let t = w.token(json!({}));
    for method in ["PUT", "HEAD", "OPTIONS", "TRACE", "PATCH", "post"] {
        let mut h = w.headers(Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        let d = w.decide(&h, Some(&call("get_order", json!({"customer_id": "c-42"}))));
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::RouteUnmatched), "{method}");
    }
    for method in ["GET", "DELETE"] {
        let mut h = w.headers(Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        assert!(w.decide_raw(&h, None).allowed(), "{method}");
    }
}

#[test]
fn a_custom_token_header_under_another_spelling_is_refused() {
    // The token travels in x-api-token: a WSGI or Rack server reads x_api_token as that
    // header, so a second credential under it would be the one the upstream acts on.
    let w = World::with(|p| p["identity"]["jwt"]["header"] = json!("x-api-token"));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let mut h = w.headers(None);
    h.push((
        "x-api-token".into(),
        format!("Bearer {}", w.token(json!({}))).into_bytes(),
    ));
    assert!(w.decide(&h, Some(&body)).allowed());
    h.push((
        "x_api_token".into(),
        format!("Bearer {}", w.token(json!({"sub": "bob"}))).into_bytes(),
    ));
    let denial = w.decide(&h, Some(&body)).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::BodyMalformed, "headers")
    );
}

#[test]
fn session_binding() {
    let w = World::with(|p| p["identity"]["bind_session"] = json!({"claim": "sid"}));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let t = w.token(json!({"sid": "s-1"}));
    let mut h = w.headers(Some(&t));
    h.push(("mcp-session-id".into(), b"s-1".to_vec()));
    assert!(w.decide(&h, Some(&body)).allowed());
    let mut other = w.headers(Some(&t));
    other.push(("mcp-session-id".into(), b"s-2".to_vec()));
    let d = w.decide(&other, Some(&body));
    assert_eq!(d.denial.as_ref().unwrap().reason, Reason::SessionMismatch);
    // The audit names the session tried, though no principal was established.
    let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "id", 0)).unwrap();
    assert_eq!((&line["session"], &line["subject"]), (&json!("s-2"), &Value::Null));
    // A second session under the underscored name, which a WSGI or Rack server may read
    // in place of the one judged, is refused.
    let mut aliased = h.clone();
    aliased.push(("mcp_session_id".into(), b"s-2".to_vec()));
    let denial = w.decide(&aliased, Some(&body)).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::BodyMalformed, "headers")
    );
    // Without a session header only `initialize` may pass: the server assigns the session.
    // A stateless client's `server/discover` probe is refused, so the client falls back to
    // the handshake that starts one.
    assert_eq!(reason_of(&w, Some(&t), &body), Some(Reason::SessionMismatch));
    assert!(reason_of(&w, Some(&t), &rpc("initialize", json!({}))).is_none());
    assert_eq!(
        reason_of(&w, Some(&t), &rpc("server/discover", json!({}))),
        Some(Reason::SessionMismatch)
    );
    // A response to the server answers a request made within a session: it names it too.
    let answer = json!({"jsonrpc": "2.0", "id": "srv-1", "result": {"action": "accept", "content": {}}});
    assert_eq!(reason_of(&w, Some(&t), &answer), Some(Reason::SessionMismatch));
    assert!(w.decide(&h, Some(&answer)).allowed());
    let unbound = w.token(json!({}));
    assert_eq!(
        w.decide(&h_with(&w, &unbound, "mcp-session-id", "s-1"), Some(&body))
            .denial
            .unwrap()
            .reason,
        Reason::SessionMismatch
    );
    // An empty claim binds to no session, an empty header included.
    let empty = w.token(json!({"sid": ""}));
    let denial = w
        .decide(&h_with(&w, &empty, "mcp-session-id", ""), Some(&body))
        .denial
        .unwrap();
    assert_eq!(denial.reason, Reason::SessionMismatch);
    assert!(denial.message.contains("empty"), "{}", denial.message);
    // Every other request must name its session: an MCP GET (the server's stream) or
    // DELETE, and, below, a REST action or an LLM request.
    for method in ["GET", "DELETE"] {
        let mut h = w.headers(Some(&t));
        h[0].1 = method.as_bytes().to_vec();
        let d = w.decide_raw(&h, None);
        assert_eq!(d.denial.map(|x| x.reason), Some(Reason::SessionMismatch), "{method}");
        assert_eq!(d.identity, Some(Err(Reason::SessionMismatch)));
        // A body saying `initialize` makes no handshake of them.
        let opening = rpc("initialize", json!({})).to_string();
        let d = w.decide_raw(&h, Some(opening.as_bytes()));
        assert_eq!(
            d.denial.map(|x| x.reason),
            Some(Reason::SessionMismatch),
            "{method} with a body"
        );
    }
    let w = World::with(|p| {
        p["identity"]["bind_session"] = json!({"claim": "sid", "header": "x-task-id"});
        p["routes"] = json!([
            {"id": "orders", "prefix": "/api/orders", "protocol": "action", "tool": "get_order"},
            {"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat"}
        ]);
        p["models"] = json!({"allow": ["*"]});
    });
    let t = w.token(json!({"sid": "task-A"}));
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    for (path, body) in [
        ("/api/orders", json!({"customer_id": "c-42"})),
        ("/v1/chat/completions", chat),
    ] {
        let mut h = w.headers(Some(&t));
        h[1].1 = path.as_bytes().to_vec();
        assert_eq!(
            w.decide(&h, Some(&body)).denial.map(|x| x.reason),
            Some(Reason::SessionMismatch),
            "{path}"
        );
        h.push(("x-task-id".into(), b"task-B".to_vec()));
        assert_eq!(
            w.decide(&h, Some(&body)).denial.map(|x| x.reason),
            Some(Reason::SessionMismatch),
            "{path}"
        );
        h.last_mut().unwrap().1 = b"task-A".to_vec();
        assert!(w.decide(&h, Some(&body)).allowed(), "{path}");
    }
}

fn h_with(w: &World, token: &str, name: &str, value: &str) -> Vec<(String, Vec<u8>)> {
    let mut h = w.headers(Some(token));
    h.push((name.into(), value.as_bytes().to_vec()));
    h
}

/// A `completion/complete` of variable `x` of a resource template.
fn complete_template(uri: &str) -> Value {
    rpc(
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": uri}, "argument": {"name": "x", "value": "../globex/"}}),
    )
}

#[test]
fn action_reasons() {
    let w = World::new();
    let t = w.token(json!({"scope": "orders.read email.send docs.read"}));
    let rows = [
        ("out of scope", call("refund_order", json!({"customer_id": "c-42", "amount": 5})), Reason::ScopeMissing),
        ("unknown tool", call("drop_tables", json!({})), Reason::ToolUnknown),
        ("other customer", call("get_order", json!({"customer_id": "c-99"})), Reason::BindingMismatch),
        ("no customer", call("get_order", json!({})), Reason::BindingMismatch),
        ("customer as number", call("get_order", json!({"customer_id": 42})), Reason::BindingMismatch),
        ("customer beside its alias", call("get_order", json!({"customer_id": "c-42", "customerId": "c-99"})), Reason::BindingMismatch),
        ("customer in kebab-case", call("get_order", json!({"customer_id": "c-42", "customer-id": "c-99"})), Reason::BindingMismatch),
        ("external domain", call("send_email", json!({"to": "x@evil.com", "subject": "hi"})), Reason::ArgumentViolation),
        ("missing recipient", call("send_email", json!({"subject": "hi"})), Reason::ArgumentViolation),
        ("subject too long", call("send_email", json!({"to": "a@example.com", "subject": "x".repeat(201)})), Reason::ArgumentViolation),
        ("no approval", call("send_email", json!({"to": "a@example.com", "subject": "hi"})), Reason::ApprovalRequired),
        ("escaped name", serde_json::from_str(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send\u005femail","arguments":{"to":"a@example.com"}}}"#).unwrap(), Reason::ApprovalRequired),
        ("other tenant", rpc("resources/read", json!({"uri": "docs://globex/plan.md"})), Reason::DataBoundary),
        ("dot segments", rpc("resources/read", json!({"uri": "docs://acme/../globex/plan.md"})), Reason::DataBoundary),
        ("prefix trick", rpc("resources/read", json!({"uri": "docs://acmeevil/x"})), Reason::DataBoundary),
        ("encoded slash", rpc("resources/read", json!({"uri": "docs://acme/..%2Fglobex/secret"})), Reason::DataBoundary),
        ("encoded backslash", rpc("resources/read", json!({"uri": "docs://acme/..%5cglobex/secret"})), Reason::DataBoundary),
        ("encoded percent", rpc("resources/read", json!({"uri": "docs://acme/%252e%252e/globex/secret"})), Reason::DataBoundary),
        ("tab in a dot segment", rpc("resources/read", json!({"uri": "docs://acme/.	./globex/secret"})), Reason::DataBoundary),
        // Text a server decodes or normalises into a way out of the prefix.
        ("empty segment", rpc("resources/read", json!({"uri": "docs://acme//globex/pricing"})), Reason::DataBoundary),
        ("encoded semicolon", rpc("resources/read", json!({"uri": "docs://acme/..%3b/globex/pricing"})), Reason::DataBoundary),
        ("overlong dots", rpc("resources/read", json!({"uri": "docs://acme/%c0%ae%c0%ae/globex/pricing"})), Reason::DataBoundary),
        ("IIS-encoded dots", rpc("resources/read", json!({"uri": "docs://acme/%u002e%u002e/globex/pricing"})), Reason::DataBoundary),
        ("fullwidth dots", rpc("resources/read", json!({"uri": "docs://acme/\u{ff0e}\u{ff0e}/globex/pricing"})), Reason::DataBoundary),
        ("two dot leader", rpc("resources/read", json!({"uri": "docs://acme/\u{2025}/globex/pricing"})), Reason::DataBoundary),
        ("vertical two dots", rpc("resources/read", json!({"uri": "docs://acme/\u{fe30}/globex/pricing"})), Reason::DataBoundary),
        ("small reverse solidus", rpc("resources/read", json!({"uri": "docs://acme/..\u{fe68}globex\u{fe68}pricing"})), Reason::DataBoundary),
        ("encoded two dot leader", rpc("resources/read", json!({"uri": "docs://acme/%E2%80%A5/globex/pricing"})), Reason::DataBoundary),
        ("three-byte overlong dots", rpc("resources/read", json!({"uri": "docs://acme/%e0%80%ae%e0%80%ae/globex/pricing"})), Reason::DataBoundary),
        // Completing a template that expands reserved characters or adds segments.
        ("reserved expansion", complete_template("docs://acme/{+x}"), Reason::DataBoundary),
        ("path segments", complete_template("docs://acme/{/y*}"), Reason::DataBoundary),
        ("fragment expansion", complete_template("docs://acme/{#x}"), Reason::DataBoundary),
        ("exploded", complete_template("docs://acme/{x*}"), Reason::DataBoundary),
        ("dots for a name", complete_template("docs://acme/{..}"), Reason::DataBoundary),
        ("another tenant's template", complete_template("docs://globex/{name}"), Reason::DataBoundary),
        // A last dot segment ends at the query or fragment: `acme/x/..?` is `acme/`.
        ("dot segment before a query", rpc("resources/read", json!({"uri": "docs://acme/x/..?a"})), Reason::DataBoundary),
        ("dot segment before a fragment", rpc("resources/read", json!({"uri": "docs://acme/x/..#"})), Reason::DataBoundary),
        ("one dot before a query", rpc("resources/subscribe", json!({"uri": "docs://acme/x/.?"})), Reason::DataBoundary),
        // Controls and spaces once decoded, characters that mappings drop.
        ("encoded NUL", rpc("resources/read", json!({"uri": "docs://acme/..%00/globex/pricing"})), Reason::DataBoundary),
        ("encoded tab", rpc("resources/read", json!({"uri": "docs://acme/.%09./globex/pricing"})), Reason::DataBoundary),
        ("encoded trailing space", rpc("resources/read", json!({"uri": "docs://acme/..%20/globex/pricing"})), Reason::DataBoundary),
        ("encoded delete", rpc("resources/read", json!({"uri": "docs://acme/x%7f"})), Reason::DataBoundary),
        ("soft hyphen", rpc("resources/read", json!({"uri": "docs://acme/\u{ad}../globex/pricing"})), Reason::DataBoundary),
        ("zero-width space", rpc("resources/read", json!({"uri": "docs://acme/.\u{200b}./globex/pricing"})), Reason::DataBoundary),
        ("encoded zero-width joiner", rpc("resources/read", json!({"uri": "docs://acme/..%E2%80%8D/globex/pricing"})), Reason::DataBoundary),
        ("encoded no-break space", rpc("resources/read", json!({"uri": "docs://acme/x/..%C2%A0/globex"})), Reason::DataBoundary),
        ("ideographic space", rpc("resources/read", json!({"uri": "docs://acme/x/..\u{3000}/globex"})), Reason::DataBoundary),
        ("two recipients", call("send_email", json!({"to": "eve@evil.com, bob@example.com"})), Reason::ArgumentViolation),
        ("display name", call("send_email", json!({"to": "Bob <eve@evil.com>@example.com"})), Reason::ArgumentViolation),
        ("recipients as a list", call("send_email", json!({"to": ["bob@example.com"]})), Reason::ArgumentViolation),
        ("relayed through another domain", call("send_email", json!({"to": "eve%evil.com@example.com"})), Reason::ArgumentViolation),
        ("bang path", call("send_email", json!({"to": "evil.com!eve@example.com"})), Reason::ArgumentViolation),
        // Python's email package decodes the encoded word and mails eve@evil.com.
        ("encoded word", call("send_email", json!({"to": "=?utf-8?q?eve=40evil.com=3e=00?=foo@example.com"})), Reason::ArgumentViolation),
        ("backslash in the mailbox", call("send_email", json!({"to": "eve\\x@example.com"})), Reason::ArgumentViolation),
        ("empty dot atom", call("send_email", json!({"to": "bob..smith@example.com"})), Reason::ArgumentViolation),
        ("leading dot", call("send_email", json!({"to": ".bob@example.com"})), Reason::ArgumentViolation),
        ("tagged mailbox", call("send_email", json!({"to": "first.last+tag@example.com"})), Reason::ApprovalRequired),
        ("no mailbox", call("send_email", json!({"to": "@example.com"})), Reason::ArgumentViolation),
        ("a subdomain", call("send_email", json!({"to": "bob@mail.example.com"})), Reason::ArgumentViolation),
        ("the domain in capitals", call("send_email", json!({"to": "bob@EXAMPLE.com"})), Reason::ApprovalRequired),
        ("prompt not listed", rpc("prompts/get", json!({"name": "admin_console"})), Reason::DataBoundary),
        // support_* covers names within one segment: a server keeping prompts as files
        // would resolve these to admin_console.
        ("prompt under a prefix, by a path", rpc("prompts/get", json!({"name": "support_/../admin_console"})), Reason::DataBoundary),
        ("prompt under a prefix, by a backslash path", rpc("prompts/get", json!({"name": "support_..\\admin_console"})), Reason::DataBoundary),
        ("prompt under a prefix, encoded", rpc("prompts/get", json!({"name": "support_%2F..%2Fadmin_console"})), Reason::DataBoundary),
        ("prompt under a prefix, by look-alikes", rpc("prompts/get", json!({"name": "support_\u{2025}\u{ff0f}admin_console"})), Reason::DataBoundary),
        ("subscribe to another tenant", rpc("resources/subscribe", json!({"uri": "docs://globex/plan.md"})), Reason::DataBoundary),
        ("complete an unlisted prompt", rpc("completion/complete", json!({"ref": {"type": "ref/prompt", "name": "admin_console"}, "argument": {"name": "a", "value": ""}})), Reason::DataBoundary),
        ("complete the tenant of a template", rpc("completion/complete", json!({"ref": {"type": "ref/resource", "uri": "docs://{tenant}/{name}"}, "argument": {"name": "tenant", "value": "g"}})), Reason::DataBoundary),
        ("completion without a ref", rpc("completion/complete", json!({"argument": {"name": "a", "value": ""}})), Reason::BodyMalformed),
        ("completion of an unknown ref", rpc("completion/complete", json!({"ref": {"type": "ref/tool", "name": "x"}})), Reason::BodyMalformed),
        ("prompt prefix only", rpc("prompts/get", json!({"name": "support"})), Reason::DataBoundary),
        ("prompt without name", rpc("prompts/get", json!({})), Reason::BodyMalformed),
        ("prompt name not text", rpc("prompts/get", json!({"name": 7})), Reason::BodyMalformed),
        ("batch with one bad", json!([call("get_order", json!({"customer_id": "c-42"})), call("drop_tables", json!({}))]), Reason::ToolUnknown),
        // A Go server binds keys case-insensitively, the last one winning: it would run send_email.
        ("name in two cases", json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_order", "Name": "send_email", "arguments": {"customer_id": "c-42"}}}), Reason::BodyMalformed),
        ("argument in two cases", call("get_order", json!({"customer_id": "c-42", "Customer_ID": "c-99"})), Reason::BodyMalformed),
        // With no lower-case `method` and an `error`, this read as a client's answer; a Go server runs it.
        ("method in another case", json!({"jsonrpc": "2.0", "id": 1, "Method": "tools/call", "params": {"name": "send_email", "arguments": {}}, "error": {"code": 0, "message": ""}}), Reason::BodyMalformed),
        ("listen to another tenant", rpc("subscriptions/listen", json!({"notifications": {"resourceSubscriptions": ["docs://acme/a", "docs://globex/plan.md"]}})), Reason::DataBoundary),
    ];
    for (name, body, want) in rows {
        assert_eq!(reason_of(&w, Some(&t), &body), Some(want), "{name}");
    }
    // A name of the caller's own, percent-encoded as UTF-8, is no way out.
    let cafe = rpc("resources/read", json!({"uri": "docs://acme/caf%C3%A9.md"}));
    assert_eq!(reason_of(&w, Some(&t), &cafe), None);
    // An empty claim binds nothing: a staff token with customer_id "" must not look up the
    // order of customer "" (to a backend, perhaps every customer).
    for empty in [json!(""), json!([]), json!({})] {
        let staff = w.token(json!({"customer_id": empty.clone()}));
        let body = call("get_order", json!({"customer_id": empty.clone()}));
        assert_eq!(
            reason_of(&w, Some(&staff), &body),
            Some(Reason::BindingMismatch),
            "{empty}"
        );
    }
    let full = w.token(json!({}));
    for (name, args) in [
        ("over max", json!({"customer_id": "c-42", "amount": 101})),
        ("under min", json!({"customer_id": "c-42", "amount": -1})),
        ("not a number", json!({"customer_id": "c-42", "amount": "5"})),
        (
            "an empty list for a number",
            json!({"customer_id": "c-42", "amount": []}),
        ),
        ("a list for a number", json!({"customer_id": "c-42", "amount": [5]})),
    ] {
        assert_eq!(
            reason_of(&w, Some(&full), &call("refund_order", args)),
            Some(Reason::ArgumentViolation),
            "{name}"
        );
    }
    // Data scopes: the rule matches but the token lacks docs.read; the denial names the rule.
    let t2 = w.token(json!({"scope": "orders.read"}));
    for (body, rule) in [
        (
            rpc("resources/read", json!({"uri": "docs://acme/a"})),
            "data.resources.tenant-docs",
        ),
        (
            rpc("prompts/get", json!({"name": "support_reply"})),
            "data.prompts.support-prompts",
        ),
    ] {
        let d = w.decide(&w.headers(Some(&t2)), Some(&body)).denial.unwrap();
        assert_eq!(
            (d.reason, d.rule.as_str(), d.required_scope.as_deref()),
            (Reason::ScopeMissing, rule, Some("docs.read"))
        );
    }
}

#[test]
fn argument_constraints_judge_the_whole_value() {
    let w = World::with(|p| {
        p["tools"]["set_mode"] = json!({
            "intent": "orders.read", "impact": "read",
            "constraints": {
                "/mode": {"enum": ["a", "b"]},
                "/path": {"prefix_in": ["docs/"]},
                "/note": {"max_length": 200},
                "/payment/amount": {"max": 100}
            }
        });
    });
    let t = w.token(json!({}));
    let rows: [(&str, Value, Option<&str>); 23] = [
        // A path the policy looks inside must be there as JSON: a server that decodes an
        // object sent as text would act on an amount the constraint never saw.
        (
            "object as text",
            json!({"payment": "{\"amount\": 5000}"}),
            Some("/payment/amount"),
        ),
        ("object as a number", json!({"payment": 5000}), Some("/payment/amount")),
        ("object within bounds", json!({"payment": {"amount": 50}}), None),
        ("no payment at all", json!({"payment": null}), None),
        ("listed value", json!({"mode": "a"}), None),
        ("other listed value", json!({"mode": "b"}), None),
        ("unlisted value", json!({"mode": "c"}), Some("/mode")),
        ("listed value in another case", json!({"mode": "A"}), Some("/mode")),
        ("allowed prefix", json!({"path": "docs/x"}), None),
        // The prefix must open the value, not appear somewhere in it.
        ("prefix in the middle", json!({"path": "evil/docs/x"}), Some("/path")),
        ("prefix at the end", json!({"path": "../docs/"}), Some("/path")),
        // Under the prefix as text, outside it once a server resolves the path.
        (
            "dot segment under the prefix",
            json!({"path": "docs/../secrets/key"}),
            Some("/path"),
        ),
        (
            "encoded dot segment",
            json!({"path": "docs/%2e%2e/secrets/key"}),
            Some("/path"),
        ),
        (
            "backslash dot segment",
            json!({"path": "docs/..\\secrets"}),
            Some("/path"),
        ),
        ("dots inside a name", json!({"path": "docs/v1..2/notes"}), None),
        // max_length counts characters, not UTF-8 bytes (é is two).
        ("200 two-byte characters", json!({"note": "\u{e9}".repeat(200)}), None),
        (
            "201 two-byte characters",
            json!({"note": "\u{e9}".repeat(201)}),
            Some("/note"),
        ),
        (
            "201 one-byte characters",
            json!({"note": "x".repeat(201)}),
            Some("/note"),
        ),
        // Go's encoding/json and ASP.NET Core bind a member whatever its case: a checked
        // argument sent in another case reaches them unchecked, so it is refused.
        (
            "argument in another case",
            json!({"Note": "x".repeat(201)}),
            Some("/note"),
        ),
        (
            "nested in another case",
            json!({"Payment": {"amount": 5000}}),
            Some("/payment/amount"),
        ),
        (
            "inner in another case",
            json!({"payment": {"AMOUNT": 5000}}),
            Some("/payment/amount"),
        ),
        // pydantic's camelCase aliases and kebab-case binders read these as the argument,
        // the alias even beside the argument's own spelling.
        (
            "beside its camelCase alias",
            json!({"note": "x", "Note_": "x".repeat(201)}),
            Some("/note"),
        ),
        (
            "inner beside its alias",
            json!({"payment": {"amount": 5, "amount-": 5000}}),
            Some("/payment/amount"),
        ),
    ];
    for (name, args, want) in rows {
        let d = w.decide(&w.headers(Some(&t)), Some(&call("set_mode", args)));
        let got = d.denial.map(|x| (x.reason, x.rule));
        let want = want.map(|ptr| (Reason::ArgumentViolation, format!("tools.set_mode.constraints.{ptr}")));
        assert_eq!(got, want, "{name}");
    }
    let d = w.decide(&w.headers(Some(&t)), Some(&call("set_mode", json!({"Note": "x"}))));
    assert_eq!(
        d.denial.unwrap().message,
        "argument /note is sent as \"Note\", which servers binding names loosely (Go and ASP.NET ignore case, \
         pydantic reads camelCase aliases) read as it, unchecked: send it only as the policy names it"
    );
}

#[test]
fn a_claim_that_would_move_a_boundary_fills_no_template() {
    // data.resources: docs://{tenant}/. A tenant claim holding a separator would widen or
    // shift the caller's prefix (acme/x reaching into acme's documents, ? or # ending the
    // path); such a claim fills nothing, so the caller has no resources at all.
    let w = World::new();
    for (tenant, uri) in [
        ("acme/x", "docs://acme/x/handbook.md"),
        ("acme\\x", "docs://acme\\x/handbook.md"),
        ("acme?x", "docs://acme?x/handbook.md"),
        ("acme#x", "docs://acme#x/handbook.md"),
        // A server that percent-decodes the captured part reads ac%6De as acme.
        ("ac%6De", "docs://ac%6De/handbook.md"),
        ("acme\u{0}", "docs://acme\u{0}/handbook.md"),
        // docs://{tenant}/ puts the claim in the URI's authority, where a server reading
        // the host sees user x at globex, or globex on port 443, or (IDNA) globex.
        ("x@globex", "docs://x@globex/pricing"),
        ("globex:443", "docs://globex:443/pricing"),
        ("\u{ff47}lobex", "docs://\u{ff47}lobex/pricing"),
        ("acme corp", "docs://acme corp/handbook.md"),
    ] {
        let t = w.token(json!({"tenant": tenant}));
        let d = w.decide(&w.headers(Some(&t)), Some(&rpc("resources/read", json!({"uri": uri}))));
        let got = d.denial.map(|x| (x.reason, x.rule));
        assert_eq!(
            got,
            Some((Reason::DataBoundary, "data.resources".to_string())),
            "tenant {tenant:?}"
        );
    }
    // The same read for a plain tenant is inside its boundary.
    let t = w.token(json!({"tenant": "acme"}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&rpc("resources/read", json!({"uri": "docs://acme/x/handbook.md"}))),
    );
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn a_claim_a_server_reads_as_another_fills_no_path() {
    // files://store/tenants/{tenant}/: in the path, a `;` starts a segment parameter that
    // Tomcat and Spring drop (`b;x` is tenant b), and invisible or compatibility characters
    // are dropped or mapped by readers that normalise.
    let w = World::with(|p| {
        p["data"]["resources"] =
            json!([{"id": "store", "uri_prefix": "files://store/tenants/{tenant}/", "scope": "docs.read"}]);
    });
    for tenant in ["b;x", "b\u{200b}", "b\u{ad}", "\u{ff42}"] {
        let t = w.token(json!({"tenant": tenant}));
        let uri = format!("files://store/tenants/{tenant}/doc");
        let d = w.decide(&w.headers(Some(&t)), Some(&rpc("resources/read", json!({"uri": uri}))));
        assert_eq!(
            d.denial.map(|x| x.reason),
            Some(Reason::DataBoundary),
            "tenant {tenant:?}"
        );
    }
    let t = w.token(json!({"tenant": "b-x.1"}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&rpc(
            "resources/read",
            json!({"uri": "files://store/tenants/b-x.1/doc"}),
        )),
    );
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn constraints_hold_against_empty_values_and_look_alikes() {
    let w = World::with(|p| {
        p["tools"]["send_email"]["constraints"]["/to"] = json!({"required": true, "suffix_in": ["@example.com"]});
        p["tools"]["send_email"]["constraints"]["/ref"] = json!({"required": true, "max_length": 10});
    });
    let t = w.token(json!({}));
    let reason = |args: Value| {
        let d = w.decide(&w.headers(Some(&t)), Some(&call("send_email", args)));
        d.denial.map(|x| (x.reason, x.message))
    };
    // Required means a value: null or an empty one is none.
    for r in [json!(null), json!(""), json!({}), json!([])] {
        let (reason, message) = reason(json!({"to": "a@example.com", "ref": r})).unwrap();
        assert_eq!(reason, Reason::ArgumentViolation, "{r}");
        assert!(message.contains("is required and must not be empty"), "{message}");
    }
    // `＠` and `﹫` are `@` to mail systems that normalise: no mailbox at evil.io passes.
    for to in [
        "a\u{ff20}evil.io@example.com",
        "a\u{fe6b}evil.io@example.com",
        "a\u{200b}@example.com",
    ] {
        let got = reason(json!({"to": to, "ref": "r-1"})).map(|x| x.0);
        assert_eq!(got, Some(Reason::ArgumentViolation), "{to}");
    }
    // Letters of other scripts are a mailbox (RFC 6531): the approval is what is missing.
    let got = reason(json!({"to": "jos\u{e9}@example.com", "ref": "r-1"})).map(|x| x.0);
    assert_eq!(got, Some(Reason::ApprovalRequired));
}

#[test]
fn prefixes_and_suffixes_that_cover_more_than_they_say_are_config_errors() {
    let errs = |constraint: Value| {
        let mut doc = policy_doc();
        doc["tools"]["send_email"]["constraints"]["/to"] = constraint;
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    let at = "tools.send_email.constraints./to";
    for (constraint, wanted) in [
        (
            json!({"prefix_in": ["https://api.corp.com"]}),
            format!("{at}.prefix_in[0]: \"https://api.corp.com\" ends at its host"),
        ),
        (
            json!({"prefix_in": ["/ok/", "http://h:8080"]}),
            format!("{at}.prefix_in[1]: "),
        ),
        (
            json!({"suffix_in": ["@"]}),
            format!("{at}.suffix_in[0]: \"@\" names no mail domain"),
        ),
        (json!({"suffix_in": ["@corp..com"]}), format!("{at}.suffix_in[0]: ")),
        (json!({"suffix_in": ["@corp.com."]}), format!("{at}.suffix_in[0]: ")),
    ] {
        let e = errs(constraint.clone());
        assert!(e.iter().any(|m| m.starts_with(&wanted)), "{constraint}: {e:?}");
    }
    for fine in [
        json!({"prefix_in": ["https://api.corp.com/", "https://api.corp.com?x", "/files/"]}),
        json!({"suffix_in": ["@corp.example", "@xn--bcher-kva.de", " (ref)"]}),
    ] {
        assert_eq!(errs(fine.clone()), Vec::<String>::new(), "{fine}");
    }
}

#[test]
fn prompts_are_data_named_by_rule() {
    let w = World::new();
    let t = w.token(json!({"scope": "docs.read"}));
    // Names are compared unescaped, like tool names.
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"support\u005freply","arguments":{"order":"o-1"}}}"#;
    let d = w.decide_raw(&w.headers(Some(&t)), Some(body));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.prompt.as_deref(), Some("support_reply"));
    let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "p", 0)).unwrap();
    assert_eq!(v["rule"], "data.prompts.support-prompts");
    assert_eq!(v["prompt"], "support_reply");
    assert_eq!(v["owner"], "knowledge@example.com");
    assert!(v["tool"].is_null());
    // `*` opens every prompt; a policy without prompt rules opens none.
    let any = World::with(|p| p["data"]["prompts"][0]["names"] = json!(["*"]));
    assert!(any
        .decide(&any.headers(Some(&t)), Some(&rpc("prompts/get", json!({"name": "x"}))))
        .allowed());
    let none = World::with(|p| p["data"].as_object_mut().unwrap().remove("prompts").map(drop).unwrap());
    assert_eq!(
        reason_of(&none, Some(&t), &rpc("prompts/get", json!({"name": "support_reply"}))),
        Some(Reason::DataBoundary)
    );
    // Listing prompts is not reading one.
    assert!(none
        .decide(&none.headers(Some(&t)), Some(&rpc("prompts/list", json!({}))))
        .allowed());
}

#[test]
fn input_reasons() {
    let w = World::new();
    let t = w.token(json!({}));
    let ok = call("get_order", json!({"customer_id": "c-42"}));
    let raw = |bytes: &[u8]| w.decide_raw(&w.headers(Some(&t)), Some(bytes)).denial.map(|d| d.reason);
    assert_eq!(
        raw(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
        Some(Reason::BodyMalformed)
    );
    assert_eq!(
        raw(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}"),
        Some(Reason::BodyMalformed)
    );
    assert_eq!(raw(b""), Some(Reason::BodyMalformed));
    assert_eq!(raw(&[b'['; 40]), Some(Reason::BodyMalformed));
    // Too deep names the limit it hit, as an oversized batch does.
    let deep = w.decide_raw(&w.headers(Some(&t)), Some(&[b'['; 40])).denial.unwrap();
    assert_eq!(
        (deep.rule.as_str(), deep.message.as_str()),
        (
            "limits.max_json_depth",
            "JSON nesting exceeds the depth limit (limits.max_json_depth = 32)"
        )
    );
    let dup = w
        .decide_raw(
            &w.headers(Some(&t)),
            Some(br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#),
        )
        .denial
        .unwrap();
    assert_eq!(dup.rule, "json", "other JSON refusals say the JSON failed");
    assert_eq!(raw(b"[1e999]"), Some(Reason::BodyMalformed));
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(raw(&big), Some(Reason::BodyTooLarge));
    // max_body_bytes is the largest body judged: exactly that many bytes are read, one
    // more is refused unread.
    let max = w.policy.limits.max_body_bytes;
    let mut exact = ok.to_string().into_bytes();
    exact.resize(max, b' ');
    assert_eq!(raw(&exact), None, "a body of exactly max_body_bytes is judged");
    exact.push(b' ');
    assert_eq!(raw(&exact), Some(Reason::BodyTooLarge));

    // An upgrade turns the request into a tunnel aigate cannot read.
    for (name, value) in [("upgrade", "websocket"), (":protocol", "websocket"), ("upgrade", "h2c")] {
        let mut h = w.headers(Some(&t));
        h.push((name.into(), value.as_bytes().to_vec()));
        let d = w.decide(&h, Some(&ok)).denial.unwrap();
        assert_eq!(
            (d.reason, d.rule.as_str()),
            (Reason::BodyMalformed, "upgrade"),
            "{name}"
        );
    }

    let mut gz = w.headers(Some(&t));
    gz.push(("content-encoding".into(), b"gzip".to_vec()));
    let compressed = w.decide(&gz, Some(&ok)).denial.unwrap();
    assert_eq!(
        (compressed.reason, compressed.rule.as_str()),
        (Reason::EncodingUnsupported, "content_encoding")
    );
    // A byte-order mark, trailing JSON or a trailing NUL: the JSON is what failed.
    for body in [&b"\xef\xbb\xbf{}"[..], b"{} {}", b"{}\x00", b"\xff\xfe{\x00}\x00"] {
        let d = w.decide_raw(&w.headers(Some(&t)), Some(body)).denial.unwrap();
        assert_eq!((d.reason, d.rule.as_str()), (Reason::BodyMalformed, "json"), "{body:?}");
    }
    let mut declared = w.headers(Some(&t));
    declared.push(("content-length".into(), b"99999999".to_vec()));
    assert_eq!(
        w.decide(&declared, Some(&ok)).denial.unwrap().reason,
        Reason::BodyTooLarge
    );
    // A Content-Length that is not a number promises no bound: refused as too large (413),
    // whatever the body that follows.
    for length in ["abc", "-1", "12x", ""] {
        let mut declared = w.headers(Some(&t));
        declared.push(("content-length".into(), length.as_bytes().to_vec()));
        let d = w.decide(&declared, Some(&ok));
        let denial = d
            .denial
            .as_ref()
            .unwrap_or_else(|| panic!("content-length {length:?} allowed"));
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::BodyTooLarge, "limits.max_body_bytes"),
            "content-length {length:?}"
        );
        assert_eq!(response::render(&w.policy, &d, denial, "id").status, 413);
    }
    let mut elsewhere = w.headers(Some(&t));
    elsewhere.retain(|(k, _)| k != ":path");
    elsewhere.push((":path".into(), b"/admin".to_vec()));
    assert_eq!(
        w.decide(&elsewhere, Some(&ok)).denial.unwrap().reason,
        Reason::RouteUnmatched
    );
    // Non-UTF-8 header bytes are refused cleanly, never a panic.
    let mut hostile = w.headers(None);
    hostile.push(("authorization".into(), b"Bearer \xff\xfe".to_vec()));
    assert_eq!(
        w.decide(&hostile, Some(&ok)).denial.unwrap().reason,
        Reason::TokenInvalid
    );
    // A POST with no body at all.
    assert_eq!(
        w.decide(&w.headers(Some(&t)), None).denial.unwrap().reason,
        Reason::BodyMalformed
    );
    // GET (the server's event stream) carries no action: identity is enough.
    let mut get = w.headers(Some(&t));
    get.retain(|(k, _)| k != ":method");
    get.push((":method".into(), b"GET".to_vec()));
    assert!(w.decide(&get, None).allowed());
}

#[test]
fn with_several_identity_providers_a_grant_names_its_subjects_provider() {
    // alice of a partner's provider is not the alice a human approved.
    let w = World::with(|p| {
        let mut partner = p["identity"]["jwt"]["issuers"][0].clone();
        partner["issuer"] = json!("https://partner.example.net");
        p["identity"]["jwt"]["issuers"].as_array_mut().unwrap().push(partner);
    });
    let args = json!({"to": "bob@example.com", "subject": "Refund"});
    let digest = aigate::digest::args_digest(&args).unwrap();
    let ours = w.claims(json!({}))["iss"].as_str().unwrap().to_string();
    let partner_alice = w.token(json!({"iss": "https://partner.example.net"}));
    let alice = w.token(json!({}));
    let grant = |sub_iss: Value, jti: &str| w.grant(json!({"args_digest": digest, "sub_iss": sub_iss, "jti": jti}));
    let reason = |token: &str, grant: &str| {
        w.decide_approved(token, grant, &call("send_email", args.clone()))
            .denial
            .map(|d| (d.reason, d.message))
    };
    let unnamed = (
        Reason::ApprovalMismatch,
        "approval must name its subject's identity provider (sub_iss): this gateway trusts several".to_string(),
    );
    assert_eq!(reason(&alice, &grant(Value::Null, "m1")), Some(unnamed));
    assert_eq!(
        reason(&partner_alice, &grant(json!(ours), "m2")).map(|r| r.0),
        Some(Reason::ApprovalMismatch)
    );
    assert_eq!(reason(&alice, &grant(json!(ours), "m3")), None);
    // The refusal tells the approval service whose subject it is.
    let d = w.decide(
        &w.headers(Some(&partner_alice)),
        Some(&call("send_email", args.clone())),
    );
    let denial = d.denial.clone().unwrap();
    let reply: Value = serde_json::from_slice(&aigate::response::render(&w.policy, &d, &denial, "i").body).unwrap();
    assert_eq!(reply["error"]["data"]["issuer"], "https://partner.example.net");
}

#[test]
fn a_grant_spent_before_a_restart_is_not_accepted_after_it() {
    let mut w = World::new();
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com", "subject": "Refund", "body": "Done."});
    let body = call("send_email", args.clone());
    let digest = aigate::digest::args_digest(&args).unwrap();
    let grant = w.grant(json!({"args_digest": digest}));
    let with = |w: &World, grant: &str| {
        let mut h = w.headers(Some(&t));
        h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
        w.decide(&h, Some(&body))
    };
    assert!(with(&w, &grant).allowed());
    // Envoy restarts 10 s later: the record of the spent grant is gone, but the grant
    // (still within its exp and max_age) was issued before the new record began.
    w.host.restart(NOW + 10);
    w.host.now = NOW + 20;
    let denial = with(&w, &grant).denial.unwrap();
    assert_eq!(denial.reason, Reason::ApprovalExpired);
    assert!(denial.message.contains("ask for a new approval"), "{}", denial.message);
    // A grant issued since is accepted, once.
    let fresh = w.grant(json!({"args_digest": digest, "jti": "grant-2", "iat": NOW + 10}));
    assert!(with(&w, &fresh).allowed());
    assert_eq!(with(&w, &fresh).denial.unwrap().reason, Reason::ApprovalReplayed);
}

#[test]
fn a_grant_from_a_clock_ahead_spent_before_a_restart_is_not_accepted_after_it() {
    let mut w = World::new();
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com", "subject": "Refund", "body": "Done."});
    let body = call("send_email", args.clone());
    let digest = aigate::digest::args_digest(&args).unwrap();
    // The approval service's clock runs 20 s ahead. Were its grant spent now, a restart
    // before its iat would leave it looking issued after the record began: it waits.
    let grant = w.grant(json!({"args_digest": digest, "iat": NOW + 20}));
    let with = |w: &World| {
        let mut h = w.headers(Some(&t));
        h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
        w.decide(&h, Some(&body))
    };
    let early = with(&w).denial.unwrap();
    assert_eq!(early.reason, Reason::ApprovalInvalid);
    assert!(
        early.message.contains("20 s in this gateway's future"),
        "{}",
        early.message
    );
    w.host.now = NOW + 20;
    assert!(with(&w).allowed());
    w.host.restart(NOW + 25);
    w.host.now = NOW + 30;
    assert_eq!(with(&w).denial.unwrap().reason, Reason::ApprovalExpired);
}

#[test]
fn approval_reasons() {
    let w = World::new();
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com", "subject": "Refund", "body": "Done."});
    let body = call("send_email", args.clone());
    let digest = aigate::digest::args_digest(&args).unwrap();
    let now = w.host.now;
    let with = |grant: &str| {
        let mut h = w.headers(Some(&t));
        h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
        w.decide(&h, Some(&body))
    };
    let ok = w.grant(json!({"args_digest": digest}));
    let d = with(&ok);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    assert_eq!(d.calls[0].args_digest.as_deref(), Some(digest.as_str()));
    assert_eq!(with(&ok).denial.unwrap().reason, Reason::ApprovalReplayed);

    let rows = [
        (
            "other args",
            json!({"args_digest": "AAAA", "jti": "j2"}),
            Reason::ApprovalMismatch,
        ),
        (
            "other subject",
            json!({"args_digest": digest, "sub": "mallory", "jti": "j3"}),
            Reason::ApprovalMismatch,
        ),
        (
            "other tool",
            json!({"args_digest": digest, "tool": "get_order", "jti": "j4"}),
            Reason::ApprovalMismatch,
        ),
        (
            "expired",
            json!({"args_digest": digest, "exp": now - 1, "jti": "j5"}),
            Reason::ApprovalExpired,
        ),
        (
            "too old",
            json!({"args_digest": digest, "iat": now - 3600, "exp": now + 60, "jti": "j6"}),
            Reason::ApprovalExpired,
        ),
        (
            "wrong audience",
            json!({"args_digest": digest, "aud": "elsewhere", "jti": "j7"}),
            Reason::ApprovalInvalid,
        ),
        (
            "no approver",
            json!({"args_digest": digest, "approver": null, "jti": "j8"}),
            Reason::ApprovalInvalid,
        ),
        (
            "blank approver",
            json!({"args_digest": digest, "approver": " \t", "jti": "j8b"}),
            Reason::ApprovalInvalid,
        ),
        (
            "no jti",
            json!({"args_digest": digest, "jti": null}),
            Reason::ApprovalInvalid,
        ),
        (
            "another issuer",
            json!({"args_digest": digest, "iss": "https://approvals.evil.example", "jti": "j13"}),
            Reason::ApprovalInvalid,
        ),
        (
            "audience list without ours",
            json!({"args_digest": digest, "aud": ["elsewhere"], "jti": "j14"}),
            Reason::ApprovalInvalid,
        ),
        (
            // Beyond the 30 s of clock skew: minted ahead to be good for longer.
            "issued in the future",
            json!({"args_digest": digest, "iat": now + 3600, "exp": now + 7200, "jti": "j15"}),
            Reason::ApprovalInvalid,
        ),
        (
            // Addressed to several gateways, it would run once at each.
            "audience list naming others too",
            json!({"args_digest": digest, "aud": ["elsewhere", "aigate"], "jti": "j16"}),
            Reason::ApprovalInvalid,
        ),
        (
            "valid only from tomorrow",
            json!({"args_digest": digest, "nbf": now + 86_400, "jti": "j17"}),
            Reason::ApprovalInvalid,
        ),
        (
            "nbf after exp",
            json!({"args_digest": digest, "nbf": now + 200, "exp": now + 100, "jti": "j18"}),
            Reason::ApprovalInvalid,
        ),
        (
            "nbf not whole seconds",
            json!({"args_digest": digest, "nbf": "soon", "jti": "j19"}),
            Reason::ApprovalInvalid,
        ),
        (
            "the subject of another identity provider",
            json!({"args_digest": digest, "sub_iss": "https://partner.example.net", "jti": "j20"}),
            Reason::ApprovalMismatch,
        ),
        (
            // One person acting in two tenants: the grant was for the other one.
            "the subject in another tenant",
            json!({"args_digest": digest, "tenant": "globex", "jti": "j24"}),
            Reason::ApprovalMismatch,
        ),
        (
            "a tenant that is no string",
            json!({"args_digest": digest, "tenant": 7, "jti": "j25"}),
            Reason::ApprovalInvalid,
        ),
    ];
    for (name, claims, want) in rows {
        assert_eq!(with(&w.grant(claims)).denial.map(|d| d.reason), Some(want), "{name}");
    }
    // A list naming this gateway alone is this gateway's; a grant valid from a moment past
    // is good, and one naming the caller's identity provider too.
    let iss = w.claims(json!({}))["iss"].clone();
    for (claims, jti) in [
        (json!({"aud": ["aigate"]}), "j21"),
        (json!({"nbf": now - 10}), "j22"),
        (json!({"sub_iss": iss}), "j23"),
        (json!({"tenant": "acme"}), "j26"),
    ] {
        let mut claims = claims;
        claims["args_digest"] = json!(digest);
        claims["jti"] = json!(jti);
        let d = with(&w.grant(claims.clone()));
        assert!(d.allowed(), "{claims}: {:?}", d.denial);
    }
    // A grant signed by the identity provider's key, not the approval service's.
    let mut c = w.grant_claims(json!({"args_digest": digest, "jti": "j9"}));
    c.remove("kid");
    assert_eq!(with(&w.idp.sign(&c)).denial.unwrap().reason, Reason::ApprovalInvalid);
    // A mismatched grant is not consumed: the right request can still use its jti.
    let g = w.grant(json!({"args_digest": digest, "jti": "j10"}));
    let other = call("send_email", json!({"to": "eve@example.com"}));
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), g.clone().into_bytes()));
    assert_eq!(
        w.decide(&h, Some(&other)).denial.unwrap().reason,
        Reason::ApprovalMismatch
    );
    assert!(with(&g).allowed());
    // The approval header twice (each line a valid grant for the call): which one a proxy
    // or an upstream would read is anyone's guess, so neither is used, and neither is spent.
    let (a, b) = (
        w.grant(json!({"args_digest": digest, "jti": "j11"})),
        w.grant(json!({"args_digest": digest, "jti": "j12"})),
    );
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), a.clone().into_bytes()));
    h.push(("X-Aigate-Approval".into(), b.into_bytes()));
    let denial = w.decide(&h, Some(&body)).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str(), denial.message.as_str()),
        (
            Reason::ApprovalInvalid,
            "approval.header",
            "the approval header appears more than once: send several grants comma-separated in one header"
        )
    );
    assert!(with(&a).allowed(), "the refused request spent nothing");
}

#[test]
fn internal_failure_fails_closed() {
    let mut w = World::new();
    w.host.shared_fails = true;
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com"});
    let g = w.grant(json!({"args_digest": aigate::digest::args_digest(&args).unwrap()}));
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), g.into_bytes()));
    assert_eq!(
        w.decide(&h, Some(&call("send_email", args))).denial.unwrap().reason,
        Reason::InternalError
    );
}

#[test]
fn responses_have_the_spec_shape() {
    let w = World::new();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let id = "0123456789abcdef0123456789abcdef";

    let d = w.decide(&w.headers(None), Some(&call("get_order", json!({}))));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .contains(&("www-authenticate".into(), "Bearer realm=\"aigate\"".into())));
    assert!(r.headers.contains(&("x-aigate-decision-id".into(), id.into())));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["reason"], "unauthenticated");
    assert_eq!(body["error"]["decision_id"], id);

    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call("refund_order", json!({"customer_id": "c-42"}))),
    );
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 403);
    let challenge = &r.headers.iter().find(|(k, _)| k == "www-authenticate").unwrap().1;
    assert!(
        challenge.starts_with("Bearer realm=\"aigate\", error=\"insufficient_scope\", scope=\"orders.refund\""),
        "{challenge}"
    );

    let mut body = call("get_order", json!({"customer_id": "c-99"}));
    body["id"] = json!("req-7");
    let d = w.decide(&w.headers(Some(&t)), Some(&body));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["error"]["code"], response::JSONRPC_POLICY_DENIED);
    assert_eq!(v["error"]["data"]["reason"], "binding_mismatch");
    assert_eq!(v["error"]["data"]["rule"], "tools.get_order.bind./customer_id");

    let args = json!({"to": "a@example.com"});
    let d = w.decide(&w.headers(Some(&t)), Some(&call("send_email", args.clone())));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let data = &v["error"]["data"];
    assert_eq!(data["reason"], "approval_required");
    assert_eq!(data["tool"], "send_email");
    assert_eq!(data["subject"], "alice");
    let digest = aigate::digest::args_digest(&args).unwrap();
    assert_eq!(data["args_digest"], digest.as_str());
    assert_eq!(
        data["approval_url"],
        format!("https://approvals.example.com/new?tool=send_email&digest={digest}&subject=alice")
    );
    // A subject is escaped into its query parameter: it cannot add parameters of its own.
    let odd = w.token(json!({"sub": "a&tool=x b", "scope": "email.send"}));
    let d = w.decide(&w.headers(Some(&odd)), Some(&call("send_email", args.clone())));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let url = v["error"]["data"]["approval_url"].as_str().unwrap();
    assert_eq!(
        url,
        format!("https://approvals.example.com/new?tool=send_email&digest={digest}&subject=a%26tool%3Dx%20b")
    );
    assert!(!url.contains("&tool=x"), "{url}");
    // The tenant the caller acts in is in the data, and fills `{tenant}`.
    assert_eq!(data["tenant"], "acme");
    let w2 = World::with(|p| {
        p["approval"]["request_url"] = json!("https://approvals.example.com/{tenant}/new?digest={digest}");
    });
    let t2 = w2.token(json!({"scope": "email.send"}));
    let d = w2.decide(&w2.headers(Some(&t2)), Some(&call("send_email", args.clone())));
    let r = response::render(&w2.policy, &d, d.denial.as_ref().unwrap(), id);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["error"]["data"]["approval_url"],
        format!("https://approvals.example.com/acme/new?digest={digest}")
    );

    let batch = json!([call("get_order", json!({"customer_id": "c-42"})), {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "nope"}}]);
    let d = w.decide(&w.headers(Some(&t)), Some(&batch));
    let r = response::render(&w.policy, &d, d.denial.as_ref().unwrap(), id);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["id"], 9);
    assert_eq!(v[0]["error"]["data"]["reason"], "tool_unknown");
}

#[test]
fn audit_names_the_accountable_owner_and_no_secrets() {
    let w = World::new();
    let t = w.token(json!({}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call(
            "refund_order",
            json!({"customer_id": "c-42", "amount": 7, "order_id": "secret-order"}),
        )),
    );
    let line = aigate::audit::record(&w.policy, &d, "abc", 1_700_000_000_000_000_000);
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["time"], "2023-11-14T22:13:20.000Z");
    assert_eq!(v["tool"], "refund_order");
    assert_eq!(v["intent"], "orders.refund");
    assert_eq!(v["impact"], "write");
    assert_eq!(v["owner"], "payments@example.com");
    assert_eq!(v["subject"], "alice");
    assert_eq!(v["issuer"], w.claims(json!({}))["iss"]);
    assert_eq!(v["workload"], "support-agent");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["session"], Value::Null);
    assert_eq!(v["policy_hash"], w.policy.hash);
    assert_eq!(v["policy_hash"].as_str().unwrap().len(), 64);
    // Without bind_session the MCP session presented is named all the same: a session's
    // requests can be traced to the callers who sent them.
    let mut h = w.headers(Some(&t));
    h.push(("mcp-session-id".into(), b"5f2c".to_vec()));
    let traced = w.decide(&h, Some(&call("get_order", json!({"customer_id": "c-42"}))));
    let traced: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &traced, "abc", 0)).unwrap();
    assert_eq!(
        (&traced["session"], &traced["subject"]),
        (&json!("5f2c"), &json!("alice"))
    );
    // A control plane that re-serialises the policy (spacing, key order, escapes) leaves
    // its hash as the release gate reported it; another policy has another hash.
    let doc = policy_doc();
    let compact = aigate::policy::compile(doc.to_string().as_bytes()).unwrap();
    let reordered = format!(
        "{{\n  {}\n}}",
        doc.as_object()
            .unwrap()
            .iter()
            .rev()
            .map(|(k, v)| format!("\"{k}\" : {}", serde_json::to_string_pretty(v).unwrap()))
            .collect::<Vec<_>>()
            .join(",\n  ")
            .replace("\"default_owner\"", "\"default\\u005fowner\"")
    );
    assert_ne!(reordered, doc.to_string());
    assert_eq!(
        aigate::policy::compile(reordered.as_bytes()).map(|p| p.hash).ok(),
        Some(compact.hash.clone())
    );
    let mut other = doc.clone();
    other["default_owner"] = json!("someone-else@example.com");
    assert_ne!(
        aigate::policy::compile(other.to_string().as_bytes()).unwrap().hash,
        compact.hash
    );
    assert!(!line.contains("secret-order") && !line.contains(&t), "{line}");

    let d = w.decide(&w.headers(Some(&t)), Some(&call("drop_tables", json!({}))));
    let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "x", 0)).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "tool_unknown");
    assert_eq!(
        v["owner"], "support-platform@example.com",
        "unknown tools fall back to the route owner"
    );

    // A data rule's owner answers for the data it opens, allowed or denied by its scope.
    for (token, decision) in [
        (w.token(json!({})), "allow"),
        (w.token(json!({"scope": "orders.read"})), "deny"),
    ] {
        let d = w.decide(
            &w.headers(Some(&token)),
            Some(&rpc("resources/read", json!({"uri": "docs://acme/a"}))),
        );
        let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "r", 0)).unwrap();
        assert_eq!(
            (v["decision"].as_str(), v["rule"].as_str()),
            (Some(decision), Some("data.resources.tenant-docs"))
        );
        assert_eq!(v["owner"], "knowledge@example.com");
    }
    // Outside every rule: no data owner, the route's answers.
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&rpc("resources/read", json!({"uri": "docs://globex/a"}))),
    );
    let v: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "r", 0)).unwrap();
    assert_eq!(
        (v["reason"].as_str(), v["owner"].as_str()),
        (Some("data_boundary"), Some("support-platform@example.com"))
    );

    let m = World::with(|p| p["mode"] = json!("monitor"));
    let d = m.decide(&m.headers(None), Some(&call("get_order", json!({}))));
    let v: Value = serde_json::from_str(&aigate::audit::record(&m.policy, &d, "x", 0)).unwrap();
    assert_eq!(v["decision"], "would_deny");
    assert_eq!(v["mode"], "monitor");
}

#[test]
fn data_rule_config_errors_name_their_path() {
    let errs = |data: Value| {
        let mut doc = policy_doc();
        doc["data"] = data;
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    let rows = [
        (
            json!({"prompts": [{"id": "p", "names": [], "scope": "a"}]}),
            "data.prompts[0].names: list at least one",
        ),
        (
            json!({"prompts": [{"id": "p", "names": ["ok", "su*pport"], "scope": "a"}]}),
            "data.prompts[0].names[1]: a wildcard",
        ),
        (
            json!({"prompts": [{"id": "p", "names": ["two words"], "scope": "a"}]}),
            "data.prompts[0].names[0]",
        ),
        (
            json!({"prompts": [{"id": "", "names": ["x"], "scope": "a"}]}),
            "data.prompts[0].id: must not be empty",
        ),
        (
            json!({"prompts": [{"id": "p", "names": ["x"], "scope": "a b"}]}),
            "data.prompts[0].scope",
        ),
        (
            json!({"prompts": [{"id": "p", "names": ["x"]}]}),
            "data.prompts[0].scope: is required",
        ),
        (
            json!({"resources": [{"id": "r", "uri_prefix": "docs/{tenant}/", "scope": "a"}]}),
            "data.resources[0].uri_prefix: must include a URI scheme",
        ),
        // Filled for acme, docs://acme would also cover docs://acme-corp/…
        (
            json!({"resources": [{"id": "r", "uri_prefix": "docs://{tenant}", "scope": "a"}]}),
            "data.resources[0].uri_prefix: {tenant} must be followed by a '/'",
        ),
        (
            json!({"resources": [{"id": "r", "uri_prefix": "docs://{tenant}/{customer_id}", "scope": "a"}]}),
            "data.resources[0].uri_prefix: {customer_id} must be followed by a '/'",
        ),
        (
            json!({"mcp_servers": [{"id": "m", "url_prefix": "https://mcp.example.com/t-{tenant}", "scope": "a"}]}),
            "data.mcp_servers[0].url_prefix: {tenant} must be followed by a '/'",
        ),
    ];
    for (data, want) in rows {
        let e = errs(data.clone());
        assert!(e.iter().any(|m| m.contains(want)), "{data}: want {want}, got {e:?}");
    }
    assert!(errs(json!({"prompts": [{"id": "p", "names": ["*", "support_*"], "scope": "a"}]})).is_empty());
    assert!(errs(
        json!({"resources": [{"id": "r", "uri_prefix": "docs://{tenant}-archive/", "scope": "a"}],
                        "mcp_servers": [{"id": "m", "url_prefix": "https://{tenant}.mcp.example.com/", "scope": "a"}]})
    )
    .is_empty());
}

#[test]
fn a_denied_batch_never_spends_an_approval() {
    let w = World::new();
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com", "subject": "Refund"});
    let grant = w.grant(json!({"args_digest": aigate::digest::args_digest(&args).unwrap(), "jti": "batch-1"}));
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), grant.as_bytes().to_vec()));
    // The approved call comes first; a later element is denied.
    let batch = json!([call("send_email", args.clone()), call("drop_tables", json!({}))]);
    let d = w.decide(&h, Some(&batch));
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ToolUnknown));
    // The grant is still unused: the call alone goes through with it, once.
    let d = w.decide(&h, Some(&call("send_email", args.clone())));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(
        w.decide(&h, Some(&call("send_email", args))).denial.map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
}

#[test]
fn one_grant_runs_one_action_even_twice_in_a_batch() {
    let w = World::new();
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com", "subject": "Refund"});
    let grant = |jti: &str| w.grant_for(&args, jti);
    let with = |value: String, body: &Value| w.decide_approved(&t, &value, body);
    let twice = json!([call("send_email", args.clone()), call("send_email", args.clone())]);
    // One grant for the same e-mail sent twice: the second copy is a replay...
    let d = with(grant("twice-1"), &twice);
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ApprovalReplayed));
    assert_eq!(d.calls.iter().map(|c| c.allowed).collect::<Vec<_>>(), [true, false]);
    // ... refused before anything was spent: the grant still sends it once.
    assert!(with(grant("twice-1"), &call("send_email", args.clone())).allowed());
    // Two grants for the two copies: each call takes its own.
    let d = with(format!("{},{}", grant("twice-2"), grant("twice-3")), &twice);
    assert!(d.allowed(), "{:?}", d.denial);
}

#[test]
fn a_batch_refused_at_its_second_grant_gives_the_first_back() {
    let w = World::new();
    let t = w.token(json!({}));
    let (a, b) = (json!({"to": "a@example.com"}), json!({"to": "b@example.com"}));
    let grant = |args: &Value, jti: &str| w.grant_for(args, jti);
    let with = |value: String, body: &Value| w.decide_approved(&t, &value, body);
    // b's grant is spent first, alone.
    assert!(with(grant(&b, "spent-b"), &call("send_email", b.clone())).allowed());
    // A batch of a (fresh grant) and b (spent grant): a's grant is claimed first, then b's
    // is found used: the batch is refused and a's claim is undone.
    let batch = json!([call("send_email", a.clone()), call("send_email", b.clone())]);
    let d = with(format!("{},{}", grant(&a, "fresh-a"), grant(&b, "spent-b")), &batch);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ApprovalReplayed));
    assert!(with(grant(&a, "fresh-a"), &call("send_email", a.clone())).allowed());
    assert_eq!(
        with(grant(&a, "fresh-a"), &call("send_email", a))
            .denial
            .map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
}

#[test]
fn a_list_argument_is_declared_by_max_items() {
    let w = World::with(|p| {
        p["tools"]["send_email"]["constraints"]["/to"] =
            json!({"required": true, "suffix_in": ["@example.com"], "max_items": 3});
    });
    let t = w.token(json!({}));
    let reason = |to: Value| {
        let d = w.decide(&w.headers(Some(&t)), Some(&call("send_email", json!({"to": to}))));
        d.denial.map(|x| x.reason)
    };
    // Judged element by element, then the approval: the arguments themselves pass.
    assert_eq!(
        reason(json!(["a@example.com", "b@example.com"])),
        Some(Reason::ApprovalRequired)
    );
    for bad in [
        json!([]),
        json!(["a@example.com", "eve@evil.com"]),
        json!(["a@example.com", "b@example.com", "c@example.com", "d@example.com"]),
        json!("a@example.com"),
    ] {
        assert_eq!(reason(bad.clone()), Some(Reason::ArgumentViolation), "{bad}");
    }
    // A suffix that is not a mail domain is plain text: spaces and commas are fine.
    let w = World::with(|p| {
        p["tools"]["send_email"]["constraints"]["/subject"] = json!({"suffix_in": [" (ref)"]});
    });
    let t = w.token(json!({}));
    let d = w.decide(
        &w.headers(Some(&t)),
        Some(&call(
            "send_email",
            json!({"to": "a@example.com", "subject": "Hello, Bob (ref)"}),
        )),
    );
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ApprovalRequired));
}

#[test]
fn a_used_grant_is_remembered_until_no_policy_could_accept_it() {
    use aigate::request::SharedData;
    let w = World::new(); // approval.max_age_seconds: 600
    let t = w.token(json!({}));
    let args = json!({"to": "bob@example.com"});
    let now = w.host.now;
    let grant = w.grant(json!({
        "args_digest": aigate::digest::args_digest(&args).unwrap(),
        "jti": "year-long", "iat": now - 5, "exp": now + 365 * 86400
    }));
    let mut h = w.headers(Some(&t));
    h.push(("x-aigate-approval".into(), grant.into_bytes()));
    assert!(w.decide(&h, Some(&call("send_email", args))).allowed());
    // The single entry in the replay store expires a day (the longest max_age a policy may
    // set) after iat, not with the grant's exp, nor with this policy's max_age: a reload
    // raising max_age_seconds must not make the spent grant good again.
    let expiries: Vec<u64> = (0..aigate::ledger::BUCKETS)
        .filter_map(|b| w.host.get(&format!("aigate.approvals.{b}")))
        .flat_map(|(v, _)| {
            String::from_utf8(v)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| line.split_once(':').map(|(_, e)| u64::from_str_radix(e, 16).unwrap()))
        .collect();
    assert_eq!(expiries, vec![now - 5 + aigate::approval::MAX_AGE_CEILING + 1]);
}

#[test]
fn approval_config_errors_name_their_path() {
    let errs = |pointer: &str, value: Value| {
        let mut doc = policy_doc();
        // A member or an element not there yet is added.
        match doc.pointer_mut(pointer) {
            Some(at) => *at = value,
            None => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                match doc.pointer_mut(parent).unwrap() {
                    Value::Array(items) => items.push(value),
                    parent => parent[key] = value,
                }
            }
        }
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    let idp = policy_doc()["identity"]["jwt"]["issuers"][0]["issuer"].clone();
    let mut idp_key_as_approvals = policy_doc()["identity"]["jwt"]["issuers"][0]["jwks"]["keys"][0].clone();
    idp_key_as_approvals["kid"] = json!("approvals-9");
    let age = "approval.max_age_seconds: must be between 1 and 86400";
    // The identity provider's public Ed25519 key as the approval service's HMAC secret, as
    // pasted (its `x`) and as a PEM file of it: whoever reads the published JWKS can sign.
    let idp_x = idp_key()["x"].as_str().unwrap().to_string();
    let spki = [
        &[0x30u8, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00][..],
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&idp_x).unwrap(),
    ]
    .concat();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(spki)
    );
    let public_secret =
        "approval.jwks.keys[0]: its secret (k) is or holds the public key identity.jwt.issuers[0].jwks.keys[0]";
    for (pointer, value, want) in [
        (
            "/approval/jwks",
            json!({"keys": [{"kty": "oct", "kid": "a-1", "k": idp_x}]}),
            public_secret,
        ),
        (
            "/approval/jwks",
            json!({"keys": [{"kty": "oct", "kid": "a-1", "k": b64(pem.as_bytes())}]}),
            public_secret,
        ),
        // Within one set too: a secret made of its own public key.
        (
            "/identity/jwt/issuers/0/jwks/keys/1",
            json!({"kty": "oct", "kid": "i-1", "k": idp_x}),
            "identity.jwt.issuers[0].jwks.keys[1]: its secret (k) is or holds the public key identity.jwt.issuers[0].jwks.keys[0]",
        ),
        ("/approval/max_age_seconds", json!(0), age),
        ("/approval/max_age_seconds", json!(86401), age),
        // A grant signed by the identity provider would be an access token too.
        (
            "/approval/issuer",
            idp.clone(),
            "approval.issuer: must differ from every identity.jwt issuer",
        ),
        // Nor by another spelling of it.
        (
            "/approval/issuer",
            json!(format!("{}/", idp.as_str().unwrap().to_uppercase())),
            "approval.issuer: must differ from every identity.jwt issuer",
        ),
        // The identity provider's key, under another kid: it could sign approvals.
        (
            "/approval/jwks",
            json!({"keys": [idp_key_as_approvals]}),
            "approval.jwks.keys[0]: is also a key of identity issuer",
        ),
        // Each header the policy names carries one thing, and none HTTP or MCP gives a meaning.
        (
            "/approval/header",
            json!("Authorization"),
            "approval.header: \"authorization\" already means something else",
        ),
        (
            "/identity/jwt/header",
            json!("x-aigate-approval"),
            "approval.header: is also identity.jwt.header",
        ),
        (
            "/identity/jwt/header",
            json!("Content-Type"),
            "identity.jwt.header: \"content-type\" already means something else",
        ),
        (
            "/identity/bind_session",
            json!({"claim": "sid", "header": "X-Aigate-Approval"}),
            "approval.header: is also identity.bind_session.header",
        ),
        (
            "/identity/bind_session",
            json!({"claim": "sid", "header": "mcp-method"}),
            "identity.bind_session.header: \"mcp-method\" already means something else",
        ),
        (
            "/identity/bind_session",
            json!({"claim": "sid", "header": "x-http-method-override"}),
            "identity.bind_session.header: \"x-http-method-override\" already means",
        ),
        // One header to servers that read `_` as `-`.
        (
            "/identity/jwt/header",
            json!("X_Aigate_Approval"),
            "approval.header: is also identity.jwt.header",
        ),
        (
            "/approval/header",
            json!("x_envoy_original_path"),
            "approval.header: \"x-envoy-original-path\" already means",
        ),
        (
            "/approval/header",
            json!("Proxy-Authorization"),
            "approval.header: \"proxy-authorization\" already means",
        ),
        // An owner answers for something only if it names someone.
        (
            "/tools/send_email/owner",
            json!(" "),
            "tools.send_email.owner: must not be empty",
        ),
        ("/routes/0/owner", json!(""), "routes[0].owner: must not be empty"),
        (
            "/tools/send_email/owner",
            json!("\u{200b}"),
            "tools.send_email.owner: must name someone",
        ),
        ("/default_owner", json!("\u{2060}-"), "default_owner: must name someone"),
        ("/default_owner", json!("\u{3164}"), "default_owner: must name someone"),
        (
            "/data/resources/0/owner",
            json!(""),
            "data.resources[0].owner: must not be empty",
        ),
    ] {
        let e = errs(pointer, value.clone());
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{pointer} = {value}: want {want}, got {e:?}"
        );
    }
    assert!(errs("/approval/max_age_seconds", json!(86400)).is_empty());
    // MCP's own session header is the one a session is bound to by default.
    let session = json!({"claim": "sid", "header": "Mcp-Session-Id"});
    assert!(errs("/identity/bind_session", session).is_empty());
    // More than five minutes of clock skew would keep expired tokens and grants alive.
    let e = errs("/identity/clock_skew_seconds", json!(301));
    assert!(
        e.iter()
            .any(|m| m.starts_with("identity.clock_skew_seconds: more than 300 seconds")),
        "{e:?}"
    );
    assert!(errs("/identity/clock_skew_seconds", json!(300)).is_empty());
}

#[test]
fn one_header_carries_a_grant_per_approved_call() {
    let w = World::new();
    let t = w.token(json!({}));
    let (a, b) = (json!({"to": "a@example.com"}), json!({"to": "b@example.com"}));
    let grant = |args: &Value, jti: &str| w.grant_for(args, jti);
    let with = |value: String, body: &Value| w.decide_approved(&t, &value, body);
    // A batch of two approved e-mails: each call finds its own grant, in any order.
    let batch = json!([call("send_email", a.clone()), call("send_email", b.clone())]);
    let d = with(format!("{} , {}", grant(&b, "b-1"), grant(&a, "a-1")), &batch);
    assert!(d.allowed(), "{:?}", d.denial);
    assert!(d
        .calls
        .iter()
        .all(|c| c.approver.as_deref() == Some("carol@example.com")));
    // One grant for two calls: the other call's grant is missing (its refusal is the
    // mismatch of the grant on offer).
    let d = with(grant(&a, "a-2"), &batch);
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ApprovalMismatch));
    // ... and the refused batch did not spend it.
    assert!(with(grant(&a, "a-2"), &call("send_email", a.clone())).allowed());
    // The grant meant for the call decides the reason: here it was already used.
    let d = with(
        format!("{}, {}", grant(&b, "b-9"), grant(&a, "a-1")),
        &call("send_email", a.clone()),
    );
    assert_eq!(d.denial.map(|x| x.reason), Some(Reason::ApprovalReplayed));
    // Bounded: more than 32 grants is refused before any is verified.
    let many = (0..33)
        .map(|i| grant(&a, &format!("m-{i}")))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        with(many, &call("send_email", a)).denial.map(|x| x.reason),
        Some(Reason::ApprovalInvalid)
    );
}

#[test]
fn a_numeric_tenant_claim_names_the_tenant_by_its_text() {
    let w = World::new();
    let read = |uri: &str| rpc("resources/read", json!({"uri": uri}));
    let t = w.token(json!({"tenant": 42}));
    let d = w.decide(&w.headers(Some(&t)), Some(&read("docs://42/handbook.md")));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.principal.unwrap().tenant.as_deref(), Some("42"));
    assert_eq!(
        reason_of(&w, Some(&t), &read("docs://acme/handbook.md")),
        Some(Reason::DataBoundary)
    );
    // A number that is not an exact integer, or a structure, names no tenant.
    for tenant in [json!(42.5), json!(["42"]), json!(true)] {
        let t = w.token(json!({"tenant": tenant}));
        assert_eq!(
            reason_of(&w, Some(&t), &read("docs://42/handbook.md")),
            Some(Reason::DataBoundary),
            "{tenant}"
        );
    }
    // A subject must be a string; the refusal says so.
    let t = w.token(json!({"sub": 7}));
    let d = w
        .decide(&w.headers(Some(&t)), Some(&read("docs://acme/a")))
        .denial
        .unwrap();
    assert_eq!(d.reason, Reason::TokenInvalid);
    assert!(d.message.contains("non-string \"sub\""), "{}", d.message);
}

#[test]
fn an_mcp_route_publishes_its_protected_resource_metadata() {
    let w = World::with(|p| {
        p["routes"][0]["protected_resource"] =
            json!({"resource": "https://gateway.example.com/mcp", "scopes_supported": ["orders.read"]})
    });
    // Served without a token, to any client: the first step of an OAuth sign-in.
    let mut h = w.headers(None);
    h[0].1 = b"GET".to_vec();
    h[1].1 = b"/.well-known/oauth-protected-resource/mcp".to_vec();
    let d = w.decide_raw(&h, None);
    assert!(d.allowed() && d.metadata, "{:?}", d.denial);
    assert!(d.principal.is_none() && d.identity.is_none());
    let route = &w.policy.routes[d.route.unwrap()];
    let doc: Value = serde_json::from_str(&route.protected_resource.as_ref().unwrap().document).unwrap();
    assert_eq!(
        doc,
        json!({"resource": "https://gateway.example.com/mcp",
               "authorization_servers": ["https://idp.example.com"],
               "bearer_methods_supported": ["header"], "scopes_supported": ["orders.read"]})
    );
    // On a host-scoped route, only for its host.
    let scoped = World::with(|p| {
        p["routes"][0]["protected_resource"] = json!({"resource": "https://gateway.example.com/mcp"});
        p["routes"][0]["host"] = json!("mcp.example.com");
    });
    assert!(!scoped.decide_raw(&h, None).metadata);
    let mut own = h.clone();
    own[2].1 = b"mcp.example.com:443".to_vec();
    assert!(scoped.decide_raw(&own, None).metadata);
    // Only a GET of that path: anything else is judged as before.
    h[0].1 = b"POST".to_vec();
    assert_eq!(
        w.decide_raw(&h, Some(b"{}")).denial.unwrap().reason,
        Reason::RouteUnmatched
    );

    // Challenges point at it: 401 without a token, 403 for a missing scope.
    let metadata = "resource_metadata=\"https://gateway.example.com/.well-known/oauth-protected-resource/mcp\"";
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let challenge = |d: &aigate::engine::Decision| {
        let reply = response::render(&w.policy, d, d.denial.as_ref().unwrap(), "id");
        reply
            .headers
            .iter()
            .find(|(k, _)| k == "www-authenticate")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let anonymous = w.decide(&w.headers(None), Some(&body));
    assert!(challenge(&anonymous).ends_with(metadata), "{}", challenge(&anonymous));
    let t = w.token(json!({"scope": "tickets.read"}));
    let unscoped = w.decide(&w.headers(Some(&t)), Some(&body));
    let c = challenge(&unscoped);
    assert!(c.contains("insufficient_scope") && c.ends_with(metadata), "{c}");
}

#[test]
fn protected_resource_metadata_is_checked_when_the_policy_loads() {
    let errors = |pr: Value, mut edit: Box<dyn FnMut(&mut Value)>| {
        let mut p = policy_doc();
        p["routes"][0]["protected_resource"] = pr;
        edit(&mut p);
        aigate::policy::compile(p.to_string().as_bytes())
            .err()
            .map(|e| e.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("; "))
    };
    let none = || -> Box<dyn FnMut(&mut Value)> { Box::new(|_| {}) };
    let e = errors(json!({"resource": "http://gateway.example.com/mcp"}), none()).unwrap();
    assert!(e.contains("routes[0].protected_resource.resource"), "{e}");
    let e = errors(json!({"resource": "https://gw.example.com/mcp", "extra": 1}), none()).unwrap();
    assert!(e.contains("extra"), "{e}");
    let e = errors(
        json!({"resource": "https://gw.example.com/mcp", "authorization_servers": ["idp"]}),
        none(),
    )
    .unwrap();
    assert!(e.contains("routes[0].protected_resource.authorization_servers"), "{e}");
    // Behind jwt_authn the policy knows no issuer: the servers must be named.
    let behind_envoy = || -> Box<dyn FnMut(&mut Value)> {
        Box::new(|p: &mut Value| {
            let identity = p["identity"].as_object_mut().unwrap();
            identity.remove("jwt");
            identity.insert("source".into(), json!("jwt_authn"));
            identity.insert("jwt_authn".into(), json!({"payload_key": "jwt_payload"}));
        })
    };
    let e = errors(json!({"resource": "https://gw.example.com/mcp"}), behind_envoy()).unwrap();
    assert!(e.contains("authorization_servers"), "{e}");
    assert!(errors(
        json!({"resource": "https://gw.example.com/mcp", "authorization_servers": ["https://idp.example.com"]}),
        behind_envoy()
    )
    .is_none());
}

#[test]
fn refusals_say_what_to_fix() {
    let w = World::new();
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let denial = |h: &[(String, Vec<u8>)], body: &Value| w.decide(h, Some(body)).denial.unwrap();
    // Two credentials some client joined into one header.
    let t = w.token(json!({}));
    let mut joined = w.headers(None);
    joined.push(("authorization".into(), format!("Bearer {t}, Bearer {t}").into_bytes()));
    let d = denial(&joined, &body);
    assert_eq!(d.reason, Reason::TokenInvalid);
    assert!(d.message.contains("more than one value"), "{}", d.message);
    // The workload no ceiling covers is named.
    let rogue = w.token(json!({"azp": "rogue-agent"}));
    let d = denial(&w.headers(Some(&rogue)), &body);
    assert_eq!(d.reason, Reason::WorkloadUntrusted);
    assert!(d.message.contains("\"rogue-agent\""), "{}", d.message);
    // A binding says which side is missing: the claim, or the argument.
    let unbound = w.token(json!({"customer_id": null}));
    let d = denial(&w.headers(Some(&unbound)), &body);
    assert_eq!(d.reason, Reason::BindingMismatch);
    assert!(d.message.contains("does not carry"), "{}", d.message);
    let d = denial(&w.headers(Some(&t)), &call("get_order", json!({})));
    assert_eq!(d.reason, Reason::BindingMismatch);
    assert!(d.message.contains("is required"), "{}", d.message);
}

#[test]
fn a_refusal_no_rule_covers_is_not_put_on_a_rule_reached_before_it() {
    let w = World::new();
    let t = w.token(json!({"scope": "orders.read docs.read"}));
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "docs://acme/handbook"}},
        {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "docs://globex/contract"}}
    ]);
    let d = w.decide(&w.headers(Some(&t)), Some(&batch));
    assert_eq!(d.denial.as_ref().unwrap().reason, Reason::DataBoundary);
    let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "id", 0)).unwrap();
    // The route's owner answers, not the acme rule's beside the refused read.
    let route_owner = w.policy.routes[d.route.unwrap()].owner.clone().unwrap();
    assert_eq!(line["owner"].as_str(), Some(route_owner.as_str()), "{line}");
}

#[test]
fn a_batch_refused_before_an_approval_was_examined_names_the_call_that_refused_it() {
    // send_email passes its own checks but its grant is never examined: the refund beside
    // it refuses the batch first. The e-mail is not an allowed call, and the refund, not
    // the e-mail, answers for the refusal.
    let w = World::new();
    let t = w.token(json!({"scope": "orders.read orders.refund email.send"}));
    let batch = json!([
        call("send_email", json!({"to": "bob@example.com", "subject": "hi"})),
        call("refund_order", json!({"customer_id": "c-42", "amount": 1000}))
    ]);
    let d = w.decide(&w.headers(Some(&t)), Some(&batch));
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ArgumentViolation));
    let allowed: Vec<(&str, bool)> = d.calls.iter().map(|c| (c.tool.as_str(), c.allowed)).collect();
    assert_eq!(allowed, [("send_email", false), ("refund_order", false)]);
    let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "b", 0)).unwrap();
    assert_eq!(
        (&line["tool"], &line["impact"], &line["owner"]),
        (&json!("refund_order"), &json!("write"), &json!("payments@example.com")),
        "{line}"
    );
    assert_eq!(line["calls"][0]["allowed"], false, "{line}");
    assert!(line["calls"][0]["approver"].is_null(), "{line}");
    // The same e-mail alone is refused for want of its approval, and answers for it.
    let d = w.decide(&w.headers(Some(&t)), Some(&batch[0]));
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ApprovalRequired));
    assert_eq!(
        aigate::audit::deciding_call(&d).map(|c| c.tool.as_str()),
        Some("send_email")
    );
}

#[test]
fn a_batch_is_audited_under_the_method_of_the_message_that_decided() {
    let w = World::new();
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}});
    let method = |batch: Value| {
        let d = w.decide(&w.headers(Some(&t)), Some(&batch));
        let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "m", 0)).unwrap();
        (line["decision"].as_str().unwrap().to_string(), line["method"].clone())
    };
    // Allowed: the first message's. Refused: the message refused, not the one before it.
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    assert_eq!(method(json!([init, ping])), ("allow".into(), json!("initialize")));
    // A client's response leading the batch names no method: the call after it does.
    let response = json!({"jsonrpc": "2.0", "id": "s-1", "result": {}});
    let lookup = call("get_order", json!({"customer_id": "c-42"}));
    assert_eq!(method(json!([response, lookup])), ("allow".into(), json!("tools/call")));
    let refund = call("refund_order", json!({"customer_id": "c-42", "amount": 1}));
    assert_eq!(method(json!([init, refund])), ("deny".into(), json!("tools/call")));
    // A grant missing is a tools/call's, whatever came first.
    let mail = call("send_email", json!({"to": "bob@example.com", "subject": "hi"}));
    assert_eq!(method(json!([ping, mail])), ("deny".into(), json!("tools/call")));
}

#[test]
fn a_refusal_names_only_the_approver_of_a_grant_meant_for_the_call() {
    // Carol approved the e-mail to a@; a call to b@ with only her grant is refused, and
    // the record must not say she approved b@.
    let w = World::new();
    let t = w.token(json!({"scope": "email.send"}));
    let approved = json!({"to": "a@example.com", "subject": "hi"});
    let other = json!({"to": "b@example.com", "subject": "hi"});
    let d = w.decide_approved(&t, &w.grant_for(&approved, "carol-a"), &call("send_email", other));
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ApprovalMismatch));
    assert_eq!(d.calls[0].approver, None, "{:?}", d.calls);
    let line: Value = serde_json::from_str(&aigate::audit::record(&w.policy, &d, "m", 0)).unwrap();
    assert!(line["approver"].is_null(), "{line}");
    // The grant meant for the call, refused (here: too old), still names who approved it.
    let stale = w.grant(json!({"args_digest": aigate::digest::args_digest(&approved).unwrap(),
                               "jti": "carol-old", "iat": w.host.now - 3600, "exp": w.host.now + 60}));
    let d = w.decide_approved(&t, &stale, &call("send_email", approved));
    assert_eq!(d.denial.as_ref().map(|x| x.reason), Some(Reason::ApprovalExpired));
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
}

#[test]
fn a_spent_grant_first_in_the_header_does_not_hide_a_fresh_one() {
    // The same e-mail approved twice: the client sends both grants, the spent one first.
    let w = World::new();
    let t = w.token(json!({"scope": "email.send"}));
    let email = json!({"to": "a@example.com", "subject": "hi"});
    let (first, second) = (w.grant_for(&email, "twice-1"), w.grant_for(&email, "twice-2"));
    let body = call("send_email", email);
    assert!(w.decide_approved(&t, &first, &body).allowed());
    let both = format!("{first},{second}");
    let d = w.decide_approved(&t, &both, &body);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    // Both spent now: refused as replayed, nothing else to try.
    assert_eq!(
        w.decide_approved(&t, &both, &body).denial.map(|x| x.reason),
        Some(Reason::ApprovalReplayed)
    );
}

#[test]
fn the_deepest_depth_limit_a_policy_may_set_is_the_one_enforced() {
    let w = World::with(|p| p["limits"]["max_json_depth"] = json!(aigate::policy::MAX_JSON_DEPTH));
    let t = w.token(json!({}));
    // The body, params and arguments objects, then `arrays` nested arrays.
    let body = |arrays: usize| {
        let deep = format!("{}{}", "[".repeat(arrays), "]".repeat(arrays));
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search_docs","arguments":{{"query":"x","deep":{deep}}}}}}}"#
        )
    };
    let at_limit = aigate::policy::MAX_JSON_DEPTH - 3;
    let d = w.decide_raw(&w.headers(Some(&t)), Some(body(at_limit).as_bytes()));
    assert!(d.allowed(), "{:?}", d.denial);
    let d = w.decide_raw(&w.headers(Some(&t)), Some(body(at_limit + 1).as_bytes()));
    let denial = d.denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::BodyMalformed, "limits.max_json_depth")
    );
    assert!(denial.message.contains("= 127"), "{}", denial.message);
}

/// A sampling result carrying the tool calls the client's model chose: the server that
/// offered the tools runs them.
fn sampled(calls: &[(&str, Value)]) -> Value {
    let content: Vec<Value> = std::iter::once(json!({"type": "text", "text": "On it."}))
        .chain(
            calls
                .iter()
                .map(|(name, input)| json!({"type": "tool_use", "id": "tu", "name": name, "input": input})),
        )
        .collect();
    json!({"role": "assistant", "model": "agent-model", "stopReason": "toolUse", "content": content})
}

#[test]
fn tools_the_clients_model_calls_for_a_server_are_judged_as_the_callers_calls() {
    let w = World::new();
    // Alice may look orders up and send mail, not refund.
    let t = w.token(json!({"scope": "orders.read email.send"}));
    let decide = |body: &Value| w.decide(&w.headers(Some(&t)), Some(body));
    let mine = json!({"customer_id": "c-42"});
    let theirs = json!({"customer_id": "c-7"});
    let refund = json!({"customer_id": "c-42", "amount": 1});
    // Two shapes: the client's JSON-RPC response to the server's sampling request
    // (sessions), and the retried request carrying it in `inputResponses` (multi-round-trip).
    let response = |calls: &[(&str, Value)]| json!({"jsonrpc": "2.0", "id": 5, "result": sampled(calls)});
    let retried = |calls: &[(&str, Value)]| {
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "get_order", "arguments": mine, "requestState": "opaque",
            "inputResponses": {"plan": sampled(calls), "ask": {"action": "accept", "content": {"ok": true}}}}})
    };
    for shape in [&response as &dyn Fn(&[(&str, Value)]) -> Value, &retried] {
        let d = decide(&shape(&[("get_order", mine.clone())]));
        assert!(d.allowed(), "{:?}", d.denial);
        assert!(
            d.calls.iter().all(|c| c.tool == "get_order" && c.allowed),
            "{:?}",
            d.calls
        );
        for (calls, reason) in [
            (vec![("refund_order", refund.clone())], Reason::ScopeMissing),
            (vec![("get_order", theirs.clone())], Reason::BindingMismatch),
            (vec![("drop_tables", json!({}))], Reason::ToolUnknown),
            (
                vec![
                    ("get_order", mine.clone()),
                    ("send_email", json!({"to": "bob@example.com"})),
                ],
                Reason::ApprovalRequired,
            ),
        ] {
            let d = decide(&shape(&calls));
            let denial = d
                .denial
                .as_ref()
                .unwrap_or_else(|| panic!("{calls:?} allowed: {:?}", d.calls));
            assert_eq!(denial.reason, reason, "{calls:?}: {}", denial.message);
            let last = d.calls.last().unwrap();
            assert_eq!((last.tool.as_str(), last.allowed), (calls.last().unwrap().0, false));
        }
    }
    // An approval for exactly the call the model chose lets it run, at the action gate.
    let email = json!({"to": "bob@example.com", "subject": "Refund"});
    let d = w.decide_approved(&t, &w.grant_for(&email, "sampled"), &response(&[("send_email", email)]));
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.calls[0].approver.as_deref(), Some("carol@example.com"));
    // What a server's reader would take for the judged members is refused.
    for result in [
        json!({"Content": [{"type": "tool_use", "name": "refund_order", "input": refund}]}),
        json!({"content": [{"type": "tool_use", "Name": "refund_order", "name": "get_order", "input": mine}]}),
        json!({"content": {"type": "tool_use", "name": "refund_order", "input": "{}"}}),
        json!({"content": [{"type": "tool_use", "input": {}}]}),
    ] {
        let body = json!({"jsonrpc": "2.0", "id": 5, "result": result});
        assert_eq!(reason_of(&w, Some(&t), &body), Some(Reason::BodyMalformed), "{body}");
    }
    let bad = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "get_order", "arguments": mine, "inputResponses": ["not", "an", "object"]}});
    assert_eq!(reason_of(&w, Some(&t), &bad), Some(Reason::BodyMalformed));
    let snake = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "get_order", "arguments": mine, "input_responses": {"plan": sampled(&[("refund_order", refund)])}}});
    assert_eq!(reason_of(&w, Some(&t), &snake), Some(Reason::BodyMalformed));
}

#[test]
fn an_mcp_session_is_its_openers_alone() {
    let mut w = World::new();
    let key = aigate::sessions::SealKey::new(vec![9; 32]);
    w.policy.session_seal = Some(key.clone());
    let alice = w.token(json!({}));
    let bob = w.token(json!({"sub": "bob"}));
    let body = call("get_order", json!({"customer_id": "c-42"}));
    let opened = w.decide(&w.headers(Some(&alice)), Some(&rpc("initialize", json!({}))));
    let sealed = aigate::sessions::seal(&key, "support-mcp", opened.principal.as_ref().unwrap(), "s-1").unwrap();
    let presenting = |token: &str, session: &str| {
        let mut h = w.headers(Some(token));
        h.push(("mcp-session-id".into(), session.as_bytes().to_vec()));
        w.decide(&h, Some(&body))
    };
    // Its opener reaches the session: the server gets its own id.
    let d = presenting(&alice, &sealed);
    assert!(d.allowed(), "{:?}", d.denial);
    assert_eq!(d.upstream_session.as_deref(), Some("s-1"));
    // Once the key is rotated (the old one retired), the session goes on; dropped, it ends.
    let mut rotated = World::new();
    rotated.policy.session_seal = Some(aigate::sessions::SealKey::new(vec![10; 32]).with_retired(vec![vec![9; 32]]));
    let mut dropped = World::new();
    dropped.policy.session_seal = Some(aigate::sessions::SealKey::new(vec![10; 32]));
    for (w2, goes_on) in [(&rotated, true), (&dropped, false)] {
        let mut w2h = w2.headers(Some(&alice));
        w2h.push(("mcp-session-id".into(), sealed.as_bytes().to_vec()));
        let d = w2.decide(&w2h, Some(&body));
        assert_eq!(
            d.upstream_session.as_deref(),
            goes_on.then_some("s-1"),
            "{:?}",
            d.denial
        );
    }
    // Another caller holding the id, or anyone presenting the server's bare id, does not:
    // 404, as MCP servers answer a session they do not know, so clients open a new one.
    for (token, session) in [
        (&bob, sealed.as_str()),
        (&alice, "s-1"),
        (&alice, "s-1.AAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let d = presenting(token, session);
        let denial = d.denial.clone().unwrap();
        assert_eq!(
            (denial.reason, denial.rule.as_str()),
            (Reason::SessionMismatch, "routes.support-mcp.sessions"),
            "{session}"
        );
        assert_eq!(d.upstream_session, None);
        let reply = response::render(&w.policy, &d, &denial, "abc");
        assert_eq!(reply.status, 404, "{session}");
        assert!(
            !reply.headers.iter().any(|(k, _)| k == "www-authenticate"),
            "{:?}",
            reply.headers
        );
    }
    // Under the underscored name a CGI-style server reads as the header, or as a trailer,
    // the session is not one aigate checked: refused.
    let mut aliased = w.headers(Some(&alice));
    aliased.push(("mcp_session_id".into(), b"s-1".to_vec()));
    let denial = w.decide(&aliased, Some(&body)).denial.unwrap();
    assert_eq!(
        (denial.reason, denial.rule.as_str()),
        (Reason::BodyMalformed, "headers")
    );
    let pending = w.decide(&w.headers(Some(&alice)), Some(&body));
    let trailer = aigate::engine::trailers_problem(&w.policy, &pending, &["Mcp-Session-Id".to_string()]).unwrap();
    assert_eq!(trailer.rule, "trailers");
    let mut twice = w.headers(Some(&alice));
    twice.push(("mcp-session-id".into(), sealed.as_bytes().to_vec()));
    twice.push(("mcp-session-id".into(), sealed.as_bytes().to_vec()));
    assert_eq!(reason_of_headers(&w, &twice, &body), Some(Reason::BodyMalformed));
    // A route passing sessions, and monitor mode, seal nothing and check nothing.
    for (field, value) in [("sessions", json!("pass")), ("mode", json!("monitor"))] {
        let mut lax = World::with(|p| {
            if field == "mode" {
                p["mode"] = value.clone();
            } else {
                p["routes"][0][field] = value.clone();
            }
        });
        lax.policy.session_seal = Some(key.clone());
        let mut h = lax.headers(Some(&bob));
        h.push(("mcp-session-id".into(), b"s-1".to_vec()));
        let d = lax.decide(&h, Some(&body));
        assert!(d.denial.is_none() || field == "mode", "{field}: {:?}", d.denial);
        assert_eq!(d.upstream_session, None, "{field}");
    }
}

fn reason_of_headers(w: &World, h: &[(String, Vec<u8>)], body: &Value) -> Option<Reason> {
    w.decide(h, Some(body)).denial.map(|d| d.reason)
}

#[test]
fn session_settings_are_checked() {
    let errs = |edit: &dyn Fn(&mut Value)| {
        let mut doc = policy_doc();
        edit(&mut doc);
        match aigate::policy::compile(doc.to_string().as_bytes()) {
            Ok(p) => (vec![], p.session_seal.is_some()),
            Err(e) => (e.into_iter().map(|e| e.to_string()).collect::<Vec<_>>(), false),
        }
    };
    let (e, _) = errs(&|d| {
        d["routes"].as_array_mut().unwrap().push(
            json!({"id": "chat", "prefix": "/v1/chat/completions", "protocol": "openai_chat", "sessions": "bind"}),
        );
        d["models"] = json!({"allow": ["*"]});
    });
    assert!(
        e.iter()
            .any(|m| m.contains("routes[1].sessions: applies only to MCP routes")),
        "{e:?}"
    );
    let (e, _) = errs(&|d| d["session_key"] = json!("c2hvcnQ"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("session_key: must hold at least 32 bytes")),
        "{e:?}"
    );
    let (e, _) = errs(&|d| d["session_key"] = json!("not base64url!"));
    assert!(
        e.iter().any(|m| m.starts_with("session_key: must be base64url")),
        "{e:?}"
    );
    let (e, sealed) = errs(&|d| d["session_key"] = json!(b64(&[3u8; 32])));
    assert!(e.is_empty() && sealed, "{e:?}");
    // Retired keys: only beside a current one, each a key, none repeated, at most four.
    let (e, sealed) = errs(&|d| {
        d["session_key"] = json!(b64(&[3u8; 32]));
        d["retired_session_keys"] = json!([b64(&[4u8; 32]), b64(&[5u8; 32])]);
    });
    assert!(e.is_empty() && sealed, "{e:?}");
    for (retired, current, wanted) in [
        (
            json!([b64(&[4u8; 32])]),
            None,
            "retired_session_keys: needs session_key",
        ),
        (
            json!(["c2hvcnQ"]),
            Some(3u8),
            "retired_session_keys[0]: must hold at least 32 bytes",
        ),
        (
            json!([b64(&[4u8; 32]), "a+b"]),
            Some(3),
            "retired_session_keys[1]: must be base64url",
        ),
        (
            json!([b64(&[3u8; 32])]),
            Some(3),
            "retired_session_keys[0]: repeats a key given before it",
        ),
        (
            json!([b64(&[4u8; 32]), b64(&[4u8; 32])]),
            Some(3),
            "retired_session_keys[1]: repeats a key",
        ),
        (
            json!((10u8..15).map(|b| b64(&[b; 32])).collect::<Vec<_>>()),
            Some(3),
            "retired_session_keys: at most 4 keys",
        ),
    ] {
        let (e, _) = errs(&|d| {
            if let Some(c) = current {
                d["session_key"] = json!(b64(&[c; 32]));
            }
            d["retired_session_keys"] = retired.clone();
        });
        assert!(e.iter().any(|m| m.starts_with(wanted)), "{wanted}: {e:?}");
    }
    // Without one, a policy seals nothing until a proxy gives it its own key.
    let (e, sealed) = errs(&|_| {});
    assert!(e.is_empty() && !sealed, "{e:?}");
}
