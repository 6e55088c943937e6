//! MCP tasks bound to the caller they were created for.
//!
//! A server may answer a `tools/call` with a task (MCP 2025-11-25 `CreateTaskResult`, or
//! the tasks extension's `resultType: "task"`) whose result the client fetches later by
//! its id (`tasks/get`, `tasks/result`), steers (`tasks/update`) or stops (`tasks/cancel`).
//! The id is all a request names: a caller holding another's task id would read that
//! caller's result. So aigate notes, when the answer creating a task reaches a caller,
//! that the task is that caller's, in a ledger shared by the proxy's workers; a request
//! naming a task is allowed only for a task noted for its caller on the same route. The
//! caller is its token's issuer, subject, tenant and workload, not its session: a task
//! outlives the connection that created it. The route is part of it: two servers behind
//! one gateway may hand out the same id (a counter, a short id), each for its own caller.

use crate::identity::Principal;
use crate::ledger::{Ledger, Placement};
use crate::policy::Limits;
use crate::request::Host;
use serde_json::{Map, Value};

/// The tasks each caller may follow, until they expire. A caller's tasks share a bucket
/// and count against its quota (`limits.max_tasks_per_caller`): one caller creating tasks
/// without end fills its own share, not the record every caller needs.
pub const TASKS: Ledger = Ledger {
    name: "aigate.tasks",
    entries: "tasks",
    placement: Placement::ByScope,
};

/// The caller a task is bound to, on `route`: the parts of its identity that stay the same
/// across its sessions and tokens, each apart from the next, after the proxy's secret
/// (`Ledger::salt`), so which callers share a bucket cannot be worked out.
fn caller(salt: &str, route: &str, p: &Principal) -> String {
    serde_json::json!([salt, route, caller_id(p)]).to_string()
}

/// Who a caller is for what it opens and follows later (its tasks, its MCP sessions): the
/// parts of its identity that stay the same across its sessions and tokens, its token's
/// issuer, subject, tenant and workload. Written as a JSON array, so no two callers share
/// one (parts holding a separator, or an absent part beside an empty one, cannot collide).
pub fn caller_id(p: &Principal) -> String {
    serde_json::json!([p.claims.get("iss"), p.subject, p.tenant, p.workload]).to_string()
}

/// The tasks bound to `p` on `route` (created for it and unexpired), read once: a request
/// or an answer naming many (a `subscriptions/listen`, a `tasks/list`) costs one read.
pub fn held(host: &dyn Host, route: &str, p: &Principal) -> crate::ledger::Held {
    // No secret, no record yet: nothing is bound.
    match TASKS.salt(host.shared()) {
        Some(salt) => TASKS.held(host.shared(), &caller(&salt, route, p), host.now()),
        None => TASKS.nothing_held(),
    }
}

/// The task a result creates, if it is one: `{"task": {"taskId": …}}` (MCP 2025-11-25) or
/// `{"resultType": "task", "taskId": …}` (the tasks extension). A result that also names
/// another task at its top (the extension's shape, or a task's state) is refused: a client
/// of one revision would follow one task, a client of the other another, and only one of
/// them would be the caller's.
pub fn created(result: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, String> {
    let extension = (result.get("resultType").and_then(Value::as_str) == Some("task")).then_some(result);
    let Some(task) = result.get("task").and_then(Value::as_object) else {
        return Ok(extension);
    };
    match result.get("taskId") {
        Some(top) if Some(top) != task.get("taskId") => Err(
            "the result creates task \"task.taskId\" and names another at its top (taskId): clients of one \
             protocol revision would follow one, clients of the other the other"
                .into(),
        ),
        _ => Ok(Some(task)),
    }
}

/// Binds the task a server created (the object holding its `taskId`) to `p` on `route`,
/// for its lifetime (`ttl`, or `ttlMs`, in milliseconds; none or `null` is unlimited) but
/// at most `limits.max_task_seconds`. Refused when the task has no id, a lifetime that is
/// no number, or the caller holds `limits.max_tasks_per_caller` tasks already.
pub fn bind(
    host: &dyn Host,
    route: &str,
    p: &Principal,
    task: &Map<String, Value>,
    limits: &Limits,
) -> Result<(), String> {
    let id = task
        .get("taskId")
        .and_then(Value::as_str)
        .ok_or("the server created a task without a taskId")?;
    let ttl = lifetime(task)?.map_or(limits.max_task_seconds, |ms| {
        // Whole seconds, rounded up: a fraction of a second left is still a second.
        let seconds = (ms / 1000.0).ceil();
        if seconds >= limits.max_task_seconds as f64 {
            limits.max_task_seconds
        } else {
            (seconds as u64).max(1)
        }
    });
    let now = host.now();
    let quota = limits.max_tasks_per_caller;
    let store = host.shared();
    let salt = TASKS
        .salt(store)
        .or_else(|| {
            TASKS.prepare(store);
            TASKS.salt(store)
        })
        .ok_or("the record of tasks is unavailable")?;
    TASKS.insert_within(store, &caller(&salt, route, p), id, now.saturating_add(ttl), now, quota)?;
    Ok(())
}

/// A task's lifetime in milliseconds (`ttl` in MCP 2025-11-25, `ttlMs` in the tasks
/// extension); `None` when unlimited. Clients read `2000.0` or `2e3` as 2000 ms, so any
/// number is taken (below zero, as none left); text is not a lifetime a client reads alike.
fn lifetime(task: &Map<String, Value>) -> Result<Option<f64>, String> {
    match ["ttl", "ttlMs"].iter().find_map(|k| task.get(*k)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(f64::MAX).max(0.0))),
        Some(_) => Err("the server gave a task a lifetime that is not a number".into()),
    }
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

    fn limits(max_task_seconds: u64, max_tasks_per_caller: usize) -> Limits {
        Limits {
            max_task_seconds,
            max_tasks_per_caller,
            ..Limits::for_tests()
        }
    }

    #[test]
    fn a_task_is_its_callers_alone_on_its_route() {
        let host = at(1000);
        let alice = principal("idp", "alice", Some("acme"), Some("agent-a"));
        let l = limits(86_400, 128);
        let owned = |host: &dyn Host, route: &str, p: &Principal, id: &str| held(host, route, p).contains(id);
        bind(
            &host,
            "mcp-a",
            &alice,
            &task(json!({"taskId": "t1", "ttl": 60_000})),
            &l,
        )
        .unwrap();
        assert!(owned(&host, "mcp-a", &alice, "t1"));
        assert!(!owned(&host, "mcp-a", &alice, "t2"), "never created");
        assert!(
            !owned(&host, "mcp-b", &alice, "t1"),
            "another server's task 1 is another task"
        );
        let mut other_session = alice.clone();
        other_session.session = Some("s2".into());
        assert!(
            owned(&host, "mcp-a", &other_session, "t1"),
            "a task outlives its session"
        );
        for other in [
            principal("idp", "bob", Some("acme"), Some("agent-a")),
            principal("idp", "alice", Some("globex"), Some("agent-a")),
            principal("idp", "alice", Some("acme"), Some("agent-b")),
            principal("other-idp", "alice", Some("acme"), Some("agent-a")),
            // The parts are kept apart: "alice\0acme" is not "alic" + "e\0acme".
            principal("idp", "alice\0acme", None, Some("agent-a")),
        ] {
            assert!(!owned(&host, "mcp-a", &other, "t1"), "{other:?}");
        }
    }

    #[test]
    fn a_binding_lasts_the_tasks_lifetime_at_most_the_limit() {
        let host = at(1000);
        let alice = principal("idp", "alice", None, None);
        let l = limits(100, 128);
        for (id, lifetime) in [
            ("short", json!({"ttl": 1500})),
            ("ext", json!({"ttlMs": 30_000})),
            ("float", json!({"ttlMs": 30_000.0})),
            ("fraction", json!({"ttl": 1500.5})),
            ("unlimited", json!({"ttl": null})),
            ("absent", json!({})),
            ("long", json!({"ttl": 10_000_000})),
            ("huge", json!({"ttlMs": 1e300})),
            ("spent", json!({"ttl": -1})),
        ] {
            let mut t = task(lifetime);
            t.insert("taskId".into(), json!(id));
            bind(&host, "r", &alice, &t, &l).unwrap();
        }
        let owned_at = |now: u64, id: &str| {
            host.0.set(now);
            held(&host, "r", &alice).contains(id)
        };
        assert!(owned_at(1001, "short") && owned_at(1001, "fraction") && owned_at(1000, "spent"));
        assert!(!owned_at(1002, "short"), "1.5 s rounds up to 2");
        assert!(!owned_at(1002, "fraction"));
        assert!(!owned_at(1001, "spent"), "a lifetime below zero is a second at most");
        assert!(owned_at(1029, "ext") && owned_at(1029, "float"));
        assert!(!owned_at(1030, "ext") && !owned_at(1030, "float"));
        for id in ["unlimited", "absent", "long", "huge"] {
            assert!(owned_at(1099, id), "{id}");
            assert!(!owned_at(1100, id), "{id}");
        }
        // Text is not a lifetime clients read alike.
        let text = task(json!({"taskId": "text", "ttl": "2000"}));
        assert!(bind(&host, "r", &alice, &text, &l).is_err());
    }

    #[test]
    fn a_caller_holds_at_most_its_quota_of_tasks() {
        let host = at(1000);
        let alice = principal("idp", "alice", None, None);
        let bob = principal("idp", "bob", None, None);
        let l = limits(60, 2);
        for id in ["a", "b"] {
            bind(&host, "r", &alice, &task(json!({"taskId": id})), &l).unwrap();
        }
        let over = bind(&host, "r", &alice, &task(json!({"taskId": "c"})), &l).unwrap_err();
        assert!(over.contains("for one caller already"), "{over}");
        bind(&host, "r", &bob, &task(json!({"taskId": "c"})), &l).unwrap();
        host.0.set(1060);
        bind(&host, "r", &alice, &task(json!({"taskId": "c"})), &l).unwrap();
    }

    #[test]
    fn which_callers_share_a_bucket_is_each_proxys_secret() {
        // Eight callers whose buckets an attacker worked out for one proxy land elsewhere
        // in another: the placement is keyed by the proxy's secret.
        let bucket_of = |host: &dyn Host, sub: &str| {
            let salt = TASKS.salt(host.shared()).unwrap();
            TASKS
                .slot(&caller(&salt, "r", &principal("idp", sub, None, None)), "t")
                .bucket
        };
        let (one, other) = (at(0), at(0));
        TASKS.prepare(one.shared());
        TASKS.prepare(other.shared());
        let subs: Vec<String> = (0..8).map(|i| format!("user-{i}")).collect();
        let placed = |h: &dyn Host| subs.iter().map(|s| bucket_of(h, s)).collect::<Vec<_>>();
        assert_ne!(placed(&one), placed(&other));
        // Before the record exists, nothing is bound and nothing is looked up.
        let fresh = at(0);
        assert!(!held(&fresh, "r", &principal("idp", "a", None, None)).contains("t"));
    }

    #[test]
    fn created_tasks_are_read_in_both_shapes() {
        let id = |r: &Map<String, Value>| created(r).unwrap().and_then(|t| t.get("taskId")).cloned();
        let core = task(json!({"task": {"taskId": "a", "status": "working"}}));
        assert_eq!(id(&core), Some(json!("a")));
        let ext = task(json!({"resultType": "task", "taskId": "b", "status": "working"}));
        assert_eq!(id(&ext), Some(json!("b")));
        let polled = task(json!({"resultType": "complete", "taskId": "b", "status": "completed"}));
        assert_eq!(id(&polled), None, "a task's state is no new task");
        // Both shapes naming one task are that task.
        let both = task(json!({"resultType": "task", "taskId": "c", "task": {"taskId": "c"}}));
        assert_eq!(id(&both), Some(json!("c")));
        // Naming two, or creating one and giving another's state, names which is whose to no one.
        for two in [
            json!({"resultType": "task", "taskId": "ext", "task": {"taskId": "core"}}),
            json!({"task": {"taskId": "new"}, "taskId": "other", "status": "completed"}),
            json!({"task": {"taskId": "new"}, "taskId": 7}),
        ] {
            assert!(created(&task(two.clone())).is_err(), "{two}");
        }
        let host = at(0);
        let alice = principal("idp", "alice", None, None);
        let no_id = task(json!({"resultType": "task", "taskId": 7}));
        assert!(bind(&host, "r", &alice, &no_id, &limits(100, 128)).is_err());
    }
}
