//! The `aigate` command as users run it.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output};

fn aigate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aigate")).args(args).output().unwrap()
}

fn repo(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

fn tmp(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("aigate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.display().to_string()
}

#[test]
fn check_accepts_the_example_policy() {
    let out = aigate(&["check", &repo("examples/policy.json")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("policy ok  sha256:"), "{text}");
    assert!(text.contains("tools      3 (1 read, 1 write, 1 external)"), "{text}");
}

#[test]
fn check_names_the_json_path_of_each_error() {
    let bad = tmp(
        "bad.json",
        r#"{"default_owner":"x","routes":[{"id":"a","prefix":"mcp","protocol":"mcp"}],
        "identity":{"source":"jwt","jwt":{"issuers":[]}},"tools":{"t":{"intent":"a.*","impact":"read"}}}"#,
    );
    let out = aigate(&["check", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("error: routes[0].prefix: must start with '/'"), "{err}");
    assert!(
        err.contains("error: identity.jwt.issuers: at least one issuer is required"),
        "{err}"
    );
    assert!(
        err.contains("error: tools.t.intent: an intent is a plain name"),
        "{err}"
    );
    let unknown = tmp(
        "unknown.json",
        r#"{"default_owner":"x","routes":[],"identity":{"source":"jwt"},"mdoe":"monitor"}"#,
    );
    let err = String::from_utf8(aigate(&["check", &unknown]).stderr).unwrap();
    assert!(err.contains("mdoe: unknown field `mdoe`"), "{err}");
    assert_eq!(aigate(&["check", "/nonexistent/policy.json"]).status.code(), Some(2));
}

#[test]
fn digest_is_the_engines_digest() {
    // Key order, number forms and escapes must not change the digest.
    let a = tmp(
        "a.json",
        r#"{"to":"bob@example.com","amount":1e3,"ratio":1.0,"name":"caf\u00e9","list":[3,[2,1]]}"#,
    );
    let b = tmp(
        "b.json",
        r#"{"list":[3,[2,1]],"name":"café","ratio":1,"amount":1000,"to":"bob@example.com"}"#,
    );
    let da = String::from_utf8(aigate(&["digest", &a]).stdout).unwrap();
    let db = String::from_utf8(aigate(&["digest", &b]).stdout).unwrap();
    assert_eq!(da, db);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&b).unwrap()).unwrap();
    assert_eq!(da.trim(), aigate::digest::args_digest(&v).unwrap());
    let dup = tmp("dup.json", r#"{"to":"a","to":"b"}"#);
    assert_eq!(aigate(&["digest", &dup]).status.code(), Some(1));
}

#[test]
fn approve_mints_a_grant_the_engine_verifies() {
    for alg in ["EdDSA", "HS256"] {
        let out = aigate(&["keygen", "--alg", alg, "--kid", "k1"]);
        assert!(out.status.success());
        let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
        let key = tmp(&format!("key-{alg}.json"), &keys.to_string());
        let args = tmp("args.json", r#"{"to":"bob@example.com","subject":"hi"}"#);
        let out = aigate(&[
            "approve",
            "--key",
            &key,
            "--sub",
            "alice",
            "--tool",
            "send_email",
            "--args",
            &args,
            "--approver",
            "carol@example.com",
            "--ttl",
            "60",
            "--jti",
            "g-1",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let grant = String::from_utf8(out.stdout).unwrap();
        let set = aigate::jws::KeySet::from_jwks(&keys["public"]).unwrap();
        let claims = set.verify(grant.trim()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["tool"], "send_email");
        assert_eq!(claims["jti"], "g-1");
        assert_eq!(claims["approver"], "carol@example.com");
        assert_eq!(claims["aud"], "aigate");
        assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 60);
        let digest = aigate::digest::args_digest(&json!({"subject": "hi", "to": "bob@example.com"})).unwrap();
        assert_eq!(claims["args_digest"], digest.as_str());
    }
}
