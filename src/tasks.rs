//! MCP tasks bound to the caller they were created for.
//!
//! A server may answer a `tools/call` with a task (MCP 2025-11-25 `CreateTaskResult`, or
//! the tasks extension's `resultType: "task"`) whose result the client fetches later by
//! its id (`tasks/get`, `tasks/result`), steers (`tasks/update`) or stops (`tasks/cancel`).
//! The id is all a request names: a caller holding another's task id would read that
//! caller's result. So aigate notes, when the answer creating a task reaches a caller,
//! that the task is that caller's, in a ledger shared by the proxy's workers; a request
//! naming a task is allowed only for a task noted for its caller. The caller is its
//! token's issuer, subject, tenant and workload, not its session: a task outlives the
//! connection that created it.

use crate::identity::Principal;
use crate::ledger::Ledger;
use crate::request::Host;
use serde_json::{Map, Value};

/// The tasks each caller may follow, until they expire.
pub const TASKS: Ledger = Ledger {
    name: "aigate.tasks",
    entries: "tasks",
};

/// The caller a task is bound to: the parts of its identity that stay the same across its
/// sessions and tokens, each apart from the next.
fn caller(p: &Principal) -> String {
    let issuer = p.claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    [
        issuer,
        &p.subject,
        p.tenant.as_deref().unwrap_or_default(),
        p.workload.as_deref().unwrap_or_default(),
    ]
    .join("\0")
}

/// Whether task `id` was created for `p` and is still bound to it.
pub fn owns(host: &dyn Host, p: &Principal, id: &str) -> bool {
    TASKS.contains(host.shared(), &caller(p), id, host.now())
}

/// The task a result creates, if it is one: `{"task": {"taskId": …}}` (MCP 2025-11-25) or
/// `{"resultType": "task", "taskId": …}` (the tasks extension).
pub fn created(result: &Map<String, Value>) -> Option<&Map<String, Value>> {
    if let Some(task) = result.get("task").and_then(Value::as_object) {
        return Some(task);
    }
    (result.get("resultType").and_then(Value::as_str) == Some("task")).then_some(result)
}

/// Binds the task a server created (the object holding its `taskId`) to `p`, for its
/// lifetime (`ttl`, or `ttlMs`, in milliseconds; none or `null` is unlimited) but at most
/// `max_seconds`. Refused when the task has no id, or when it cannot be noted.
pub fn bind(host: &dyn Host, p: &Principal, task: &Map<String, Value>, max_seconds: u64) -> Result<(), String> {
    let id = task
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or("the server created a task without a taskId")?;
    let ttl = ["ttl", "ttlMs"]
        .iter()
        .find_map(|k| task.get(*k).and_then(Value::as_u64))
        .map_or(max_seconds, |ms| ms.div_ceil(1000).clamp(1, max_seconds));
    let now = host.now();
    TASKS.insert(host.shared(), &caller(p), id, now.saturating_add(ttl), now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{MemoryShared, SharedData};
    use serde_json::json;

    struct At(std::cell::Cell<u64>, MemoryShared);

    fn at(now: u64) -> At {
        At(std::cell::Cell::new(now), MemoryShared::default())
    }

    impl Host for At {
        fn now(&self) -> u64 {
            self.0.get()
        }
        fn peer_uri_san(&self) -> Option<String> {
            None
        }
        fn jwt_payload(&self, _: &str, _: &str) -> Option<Map<String, Value>> {
            None
        }
        fn shared(&self) -> &dyn SharedData {
            &self.1
        }
    }

    fn principal(iss: &str, sub: &str, tenant: Option<&str>, workload: Option<&str>) -> Principal {
        let claims = json!({"iss": iss, "sub": sub}).as_object().cloned().unwrap();
        Principal {
            subject: sub.into(),
            workload: workload.map(Into::into),
            tenant: tenant.map(Into::into),
            scopes: Vec::new(),
            ceiling: None,
            issuer: None,
            session: Some("s1".into()),
            exp: None,
            iat: None,
            claims: claims.into(),
        }
    }

    fn task(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_task_is_its_callers_alone() {
        let host = at(1000);
        let alice = principal("idp", "alice", Some("acme"), Some("agent-a"));
        bind(&host, &alice, &task(json!({"taskId": "t1", "ttl": 60_000})), 86_400).unwrap();
        assert!(owns(&host, &alice, "t1"));
        assert!(!owns(&host, &alice, "t2"), "never created");
        let mut other_session = alice.clone();
        other_session.session = Some("s2".into());
        assert!(owns(&host, &other_session, "t1"), "a task outlives its session");
        for other in [
            principal("idp", "bob", Some("acme"), Some("agent-a")),
            principal("idp", "alice", Some("globex"), Some("agent-a")),
            principal("idp", "alice", Some("acme"), Some("agent-b")),
            principal("other-idp", "alice", Some("acme"), Some("agent-a")),
            // The parts are kept apart: "alice\0acme" is not "alic" + "e\0acme".
            principal("idp", "alice\0acme", None, Some("agent-a")),
        ] {
            assert!(!owns(&host, &other, "t1"), "{other:?}");
        }
    }

    #[test]
    fn a_binding_lasts_the_tasks_lifetime_at_most_the_limit() {
        let host = at(1000);
        let alice = principal("idp", "alice", None, None);
        bind(&host, &alice, &task(json!({"taskId": "short", "ttl": 1500})), 100).unwrap();
        bind(&host, &alice, &task(json!({"taskId": "ext", "ttlMs": 30_000})), 100).unwrap();
        bind(&host, &alice, &task(json!({"taskId": "unlimited", "ttl": null})), 100).unwrap();
        bind(&host, &alice, &task(json!({"taskId": "long", "ttl": 10_000_000})), 100).unwrap();
        let owned_at = |now: u64, id: &str| {
            host.0.set(now);
            owns(&host, &alice, id)
        };
        assert!(owned_at(1001, "short"));
        assert!(!owned_at(1002, "short"), "1.5 s rounds up to 2");
        assert!(owned_at(1029, "ext"));
        assert!(!owned_at(1030, "ext"));
        assert!(owned_at(1099, "unlimited") && owned_at(1099, "long"));
        assert!(!owned_at(1100, "unlimited") && !owned_at(1100, "long"));
    }

    #[test]
    fn created_tasks_are_read_in_both_shapes() {
        let core = task(json!({"task": {"taskId": "a", "status": "working"}}));
        assert_eq!(created(&core).and_then(|t| t.get("taskId")), Some(&json!("a")));
        let ext = task(json!({"resultType": "task", "taskId": "b", "status": "working"}));
        assert_eq!(created(&ext).and_then(|t| t.get("taskId")), Some(&json!("b")));
        let polled = task(json!({"resultType": "complete", "taskId": "b", "status": "completed"}));
        assert_eq!(created(&polled), None, "a task's state is no new task");
        let host = at(0);
        let alice = principal("idp", "alice", None, None);
        let no_id = task(json!({"resultType": "task", "taskId": 7}));
        assert!(bind(&host, &alice, &no_id, 100).is_err());
    }
}
