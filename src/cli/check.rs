//! `aigate check POLICY`.

use crate::config::{Impact, Mode};
use crate::policy::{self, Policy, TokenSource};
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: &Path, out: &mut String) -> ExitCode {
    let bytes = match super::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match policy::compile(&bytes) {
        Ok(p) => {
            out.push_str(&summary(&p));
            out.push_str(&gate(&p));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {} error(s)", super::name(path), errors.len());
            for e in errors {
                eprintln!("  error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// What the release gate's lints say of a valid policy: settings that are accepted but
/// unsafe to go live with (monitor mode, unmatched requests allowed, a published key…)
/// are shown here too, not only by `aigate readiness`.
fn gate(p: &Policy) -> String {
    use super::lint::Level;
    let findings = super::lint::lint(p);
    if findings.is_empty() {
        return "release gate: no lint findings (aigate readiness also replays known outcomes)\n".into();
    }
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    let mut out = format!(
        "release gate: {errors} error(s), {} warning(s); aigate readiness fails on errors\n",
        findings.len() - errors
    );
    for f in &findings {
        let level = match f.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        out.push_str(&format!("  {level:<8} {}: {}\n", f.lint, f.message));
    }
    out
}

pub fn summary(p: &Policy) -> String {
    let mut out = String::new();
    let mode = match p.mode {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor (never blocks)",
    };
    out.push_str(&format!("policy ok  sha256:{}\n", p.hash));
    out.push_str(&format!("mode       {mode}\n"));
    out.push_str(&format!("routes     {}\n", p.routes.len()));
    for r in &p.routes {
        let mut notes = r.tool.as_ref().map_or(String::new(), |t| format!(" -> tool {t}"));
        if r.protocol.is_llm() && r.tool_offers == crate::config::ToolOffers::Strip {
            notes.push_str(" (strips tools the caller may not use)");
        }
        if r.provider_state == crate::config::ProviderState::Allow {
            notes.push_str(" (continues provider-kept state, unjudged)");
        }
        if r.protocol.is_llm() && r.model_calls == crate::config::ModelCalls::Pass {
            notes.push_str(" (passes model answers unread)");
        }
        if r.protocol == crate::config::Protocol::Action && r.extra_input == crate::config::ExtraInput::Allow {
            notes.push_str(" (passes query and path input unjudged)");
        }
        if r.protocol == crate::config::Protocol::Mcp && r.lists == crate::config::Lists::Pass {
            notes.push_str(" (lists unfiltered)");
        }
        if r.protocol == crate::config::Protocol::Mcp && r.answer_resources == crate::config::AnswerResources::Pass {
            notes.push_str(" (resources in answers unread)");
        }
        if r.protocol == crate::config::Protocol::Mcp && r.tasks == crate::config::Tasks::Pass {
            notes.push_str(" (tasks unbound)");
        }
        if r.protocol == crate::config::Protocol::Mcp && r.sessions == crate::config::Sessions::Pass {
            notes.push_str(" (sessions unbound)");
        }
        if let Some(m) = &r.protected_resource {
            notes.push_str(&format!(" (OAuth metadata at {})", m.path));
        }
        out.push_str(&format!(
            "  {:<20} {:<12} {}{notes}\n",
            r.id,
            r.prefix,
            crate::audit::protocol_label(Some(r.protocol))
        ));
    }
    let identity = match &p.identity.token {
        TokenSource::Jwt { issuers, .. } => format!(
            "jwt verified in the plugin, {} issuer(s), {} key(s)",
            issuers.len(),
            issuers.iter().map(|i| i.keys.len()).sum::<usize>()
        ),
        TokenSource::JwtAuthn { .. } => "jwt verified by Envoy jwt_authn".to_string(),
        TokenSource::Vouched { .. } => "token payloads taken as signed".to_string(),
    };
    out.push_str(&format!("identity   {identity}\n"));
    if let Some(max) = p.identity.max_lifetime {
        out.push_str(&format!("           tokens live at most {max}s\n"));
    }
    out.push_str(&format!("ceilings   {}\n", p.ceilings.len()));
    let count = |i: Impact| p.tools.values().filter(|t| t.impact == i).count();
    out.push_str(&format!(
        "tools      {} ({} read, {} write, {} external)\n",
        p.tools.len(),
        count(Impact::Read),
        count(Impact::Write),
        count(Impact::External)
    ));
    out.push_str(&format!("resources  {}\n", p.resources.len()));
    out.push_str(&format!("prompts    {}\n", p.prompts.len()));
    if p.routes.iter().any(|r| r.protocol.is_llm()) {
        out.push_str(&format!(
            "models     {} allowed to all, {} scope(s) add more\n",
            p.models.len(),
            p.scope_models.len()
        ));
        out.push_str(&format!(
            "data       {} vector store rule(s), {} file rule(s), {} MCP server rule(s)\n",
            p.vector_stores.len(),
            p.files.len(),
            p.mcp_servers.len()
        ));
    }
    out.push_str(&format!(
        "approval   {}\n",
        if p.approval.is_some() {
            "configured"
        } else {
            "not configured: external-impact calls are always denied"
        }
    ));
    out
}
