//! Envoy dynamic metadata values, such as jwt_authn's `payload_in_metadata`.
//!
//! Envoy's `get_property` serializes a protobuf *message* as protobuf bytes, but it hands
//! a `Struct` reached by a path over as CEL map "pairs" that lose value types. So the
//! plugin reads the whole `metadata` property (an `envoy.config.core.v3.Metadata`
//! message) and picks the namespace and key out of it here.

use prost::Message;
use prost_types::{value::Kind, Struct, Value as PbValue};
use serde_json::{Map, Number, Value};

/// Depth bound for nested claims, as for request bodies.
const MAX_DEPTH: usize = 16;

/// The fields of `envoy.config.core.v3.Metadata` that matter here.
#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(map = "string, message", tag = "1")]
    filter_metadata: std::collections::HashMap<String, Struct>,
}

/// `filter_metadata[namespace][key]` of serialized dynamic metadata, as a JSON object.
pub fn payload_from_metadata(bytes: &[u8], namespace: &str, key: &str) -> Option<Map<String, Value>> {
    let mut md = Metadata::decode(bytes).ok()?;
    let mut ns = md.filter_metadata.remove(namespace)?;
    match ns.fields.remove(key)?.kind? {
        Kind::StructValue(s) => to_object(s, MAX_DEPTH),
        _ => None,
    }
}

pub fn decode_struct(bytes: &[u8]) -> Option<Map<String, Value>> {
    let s = Struct::decode(bytes).ok()?;
    to_object(s, MAX_DEPTH)
}

fn to_object(s: Struct, depth: usize) -> Option<Map<String, Value>> {
    let depth = depth.checked_sub(1)?;
    s.fields
        .into_iter()
        .map(|(k, v)| Some((k, to_json(v, depth)?)))
        .collect()
}

/// A `Struct` number (a double) as JSON: whole numbers (exp, iat) come back as integers.
fn from_double(n: f64) -> Option<Value> {
    if n.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&n) {
        Some(Value::from(n as u64))
    } else {
        Number::from_f64(n).map(Value::Number)
    }
}

/// A token payload as it reaches the plugin through jwt_authn's metadata, where every
/// number travelled as a double: for replaying a payload written as JSON (`aigate eval`).
pub fn as_metadata(claims: &Map<String, Value>) -> Map<String, Value> {
    fn through(v: &Value) -> Value {
        match v {
            Value::Number(n) => n.as_f64().and_then(from_double).unwrap_or(Value::Null),
            Value::Array(items) => Value::Array(items.iter().map(through).collect()),
            Value::Object(m) => Value::Object(as_metadata(m)),
            other => other.clone(),
        }
    }
    claims.iter().map(|(k, v)| (k.clone(), through(v))).collect()
}

/// Whether every number of `claims` is the same after travelling as a double: integers
/// within 2^53, no `-0`.
pub fn survives_doubles(claims: &Map<String, Value>) -> bool {
    fn exact(v: &Value) -> bool {
        match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u <= 1 << 53,
                (_, Some(i), _) => i.unsigned_abs() <= 1 << 53,
                (_, _, Some(f)) => !(f == 0.0 && f.is_sign_negative()),
                _ => false,
            },
            Value::Array(items) => items.iter().all(exact),
            Value::Object(m) => m.values().all(exact),
            _ => true,
        }
    }
    claims.values().all(exact)
}

fn to_json(v: PbValue, depth: usize) -> Option<Value> {
    Some(match v.kind? {
        Kind::NullValue(_) => Value::Null,
        Kind::NumberValue(n) => from_double(n)?,
        Kind::StringValue(s) => Value::String(s),
        Kind::BoolValue(b) => Value::Bool(b),
        Kind::StructValue(s) => Value::Object(to_object(s, depth)?),
        Kind::ListValue(l) => {
            let depth = depth.checked_sub(1)?;
            Value::Array(l.values.into_iter().map(|v| to_json(v, depth)).collect::<Option<_>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::ListValue;
    use std::collections::BTreeMap;

    fn pb(kind: Kind) -> PbValue {
        PbValue { kind: Some(kind) }
    }

    #[test]
    fn round_trips_a_jwt_payload() {
        let mut fields = BTreeMap::new();
        fields.insert("sub".to_string(), pb(Kind::StringValue("alice".into())));
        fields.insert("exp".to_string(), pb(Kind::NumberValue(1_900_000_000.0)));
        fields.insert(
            "scope".to_string(),
            pb(Kind::ListValue(ListValue {
                values: vec![pb(Kind::StringValue("orders.read".into()))],
            })),
        );
        let bytes = Struct { fields }.encode_to_vec();
        let m = decode_struct(&bytes).unwrap();
        assert_eq!(m["sub"], "alice");
        assert_eq!(m["exp"].as_u64(), Some(1_900_000_000));
        assert_eq!(m["scope"][0], "orders.read");
    }

    #[test]
    fn picks_the_payload_out_of_dynamic_metadata() {
        let mut payload = BTreeMap::new();
        payload.insert("sub".to_string(), pb(Kind::StringValue("alice".into())));
        let mut ns = BTreeMap::new();
        ns.insert(
            "jwt_payload".to_string(),
            pb(Kind::StructValue(Struct { fields: payload })),
        );
        let mut md = Metadata::default();
        md.filter_metadata
            .insert("envoy.filters.http.jwt_authn".into(), Struct { fields: ns });
        let bytes = md.encode_to_vec();
        let m = payload_from_metadata(&bytes, "envoy.filters.http.jwt_authn", "jwt_payload").unwrap();
        assert_eq!(m["sub"], "alice");
        assert!(payload_from_metadata(&bytes, "other", "jwt_payload").is_none());
        assert!(payload_from_metadata(&bytes, "envoy.filters.http.jwt_authn", "other").is_none());
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        assert!(decode_struct(&[0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn a_json_payload_replays_as_jwt_authn_hands_it_over() {
        let claims = serde_json::json!({"exp": 1_800_000_600.0, "iat": -5, "big": 18_446_744_073_709_551_615u64,
                                        "nested": {"n": [2.5, 3]}, "sub": "alice"});
        let out = Value::Object(as_metadata(claims.as_object().unwrap()));
        assert_eq!(
            out,
            serde_json::json!({"exp": 1_800_000_600u64, "iat": -5.0, "big": 18_446_744_073_709_551_615.0,
                               "nested": {"n": [2.5, 3]}, "sub": "alice"})
        );
        assert!(out["exp"].is_u64() && out["iat"].is_f64() && out["big"].is_f64());
    }
}
