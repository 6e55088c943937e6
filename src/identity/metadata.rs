//! Envoy dynamic metadata values. Envoy's `get_property` hands a metadata `Struct`
//! (such as jwt_authn's `payload_in_metadata`) over as a serialized
//! `google.protobuf.Struct`; this turns it back into JSON claims.

use prost::Message;
use prost_types::{value::Kind, Struct, Value as PbValue};
use serde_json::{Map, Number, Value};

/// Depth bound for nested claims, as for request bodies.
const MAX_DEPTH: usize = 16;

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

fn to_json(v: PbValue, depth: usize) -> Option<Value> {
    Some(match v.kind? {
        Kind::NullValue(_) => Value::Null,
        // Struct numbers are doubles: whole numbers (exp, iat) come back as integers.
        Kind::NumberValue(n) if n.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&n) => {
            Value::from(n as u64)
        }
        Kind::NumberValue(n) => Number::from_f64(n).map(Value::Number)?,
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
    fn garbage_is_none_not_a_panic() {
        assert!(decode_struct(&[0xff, 0xff, 0xff]).is_none());
    }
}
