//! `wit/aigate.wit` is the engine's interface: it must parse as a WIT package and say what
//! the engine does. Its closed sets (reason codes, verdicts, protocols, impacts) are
//! checked against the engine's own, so the WIT world cannot drift from the code.

use aigate::decision::Reason;
use std::path::Path;
use wit_parser::{Resolve, TypeDefKind};

fn enum_cases(resolve: &Resolve, interface: &str, name: &str) -> Vec<String> {
    let (_, iface) = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some(interface))
        .unwrap_or_else(|| panic!("interface {interface} in wit/aigate.wit"));
    let id = iface.types[name];
    match &resolve.types[id].kind {
        TypeDefKind::Enum(e) => e.cases.iter().map(|c| c.name.clone()).collect(),
        other => panic!("{interface}.{name} is {other:?}, not an enum"),
    }
}

fn kebab(s: &str) -> String {
    s.replace('_', "-")
}

fn resolve() -> Resolve {
    let mut resolve = Resolve::default();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    resolve.push_dir(&dir).expect("wit/ parses as a WIT package");
    resolve
}

#[test]
fn the_world_imports_the_host_and_exports_the_engine() {
    let resolve = resolve();
    let (_, world) = resolve
        .worlds
        .iter()
        .find(|(_, w)| w.name == "gate")
        .expect("world gate");
    let imports: Vec<String> = world.imports.keys().map(|k| resolve.name_world_key(k)).collect();
    let exports: Vec<String> = world.exports.keys().map(|k| resolve.name_world_key(k)).collect();
    assert!(imports.iter().any(|n| n == "aigate:gate/host@0.1.0"), "{imports:?}");
    assert_eq!(exports, ["aigate:gate/engine@0.1.0"]);
}

#[test]
fn the_reason_codes_are_the_engines() {
    let engine: Vec<String> = Reason::ALL.iter().map(|r| kebab(r.as_str())).collect();
    assert_eq!(enum_cases(&resolve(), "types", "reason"), engine);
}

#[test]
fn verdicts_protocols_and_impacts_are_the_engines() {
    let resolve = resolve();
    assert_eq!(
        enum_cases(&resolve, "types", "verdict"),
        ["allow", "deny", "would-deny"]
    );
    use aigate::config::Protocol;
    let protocols: Vec<String> = [
        Protocol::Mcp,
        Protocol::OpenaiChat,
        Protocol::OpenaiResponses,
        Protocol::AnthropicMessages,
        Protocol::Action,
    ]
    .into_iter()
    .map(|p| kebab(aigate::audit::protocol_label(Some(p))))
    .collect();
    assert_eq!(enum_cases(&resolve, "types", "protocol"), protocols);
    let impacts: Vec<String> = [
        aigate::config::Impact::Read,
        aigate::config::Impact::Write,
        aigate::config::Impact::External,
    ]
    .into_iter()
    .map(|i| aigate::audit::impact_label(i).to_string())
    .collect();
    assert_eq!(enum_cases(&resolve, "types", "impact"), impacts);
    use aigate::engine::Stage;
    let stages: Vec<&str> = [Stage::Request, Stage::Answer]
        .into_iter()
        .map(aigate::audit::stage_label)
        .collect();
    assert_eq!(enum_cases(&resolve, "types", "stage"), stages);
}
