//! Judging the tool calls of a model's answer (`model_calls: judge`) with the request's
//! principal: scope, bindings and constraints, as for a call the client sent. An
//! external-impact call is only proposed here; its approval is asked for when the client
//! sends it back (the conversation carries it) or calls the tool.

use super::{Call, Decision, Stage};
use crate::authz;
use crate::decision::{Denial, Reason};
use crate::policy::Policy;
use crate::request::llm::LlmCall;

/// The answer's decision: the request's route and identity, the answer's calls. `calls`
/// is what reading the answer gave (its calls, or why it could not be read).
pub fn on_answer(policy: &Policy, request: &Decision, calls: Result<Vec<LlmCall>, Denial>) -> Decision {
    let mut d = Decision {
        stage: Stage::Answer,
        route: request.route,
        protocol: request.protocol,
        http_method: request.http_method.clone(),
        principal: request.principal.clone(),
        model: request.model.clone(),
        ..Decision::default()
    };
    let Some(principal) = request.principal.as_ref() else {
        d.denial = Some(Denial::new(
            Reason::InternalError,
            "engine",
            "an answer without a principal",
        ));
        return d;
    };
    let calls = match calls {
        Ok(calls) => calls,
        Err(denial) => {
            d.denial = Some(denial);
            return d;
        }
    };
    for c in calls {
        let mut call = Call::new(policy, c.name);
        let result = authz::tool_call(policy, principal, &call.tool, &c.arguments);
        call.allowed = result.is_ok();
        d.calls.push(call);
        if let Err(denial) = result {
            d.denial = Some(denial);
            break;
        }
    }
    d
}
