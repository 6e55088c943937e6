//! HMAC secrets made of public keys: the algorithm confusion attack, set up in the
//! configuration. A JWKS is published; an HS256 secret that is (or holds) one of the
//! policy's public keys — an Ed25519 `x` pasted as `k`, a PEM or OpenSSH file of an RSA or
//! EC key — lets anyone who reads it sign tokens the gateway accepts.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Standard and URL-safe base64, padded or not, as PEM bodies and OpenSSH keys carry them.
const LENIENT: [GeneralPurpose; 2] = [
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
    GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    ),
];

/// A public value shorter than this proves nothing when found: public keys are 32 bytes
/// (Ed25519, a P-256 coordinate) or more.
const MIN_PUBLIC: usize = 16;

fn keys(jwks: &Value) -> impl Iterator<Item = (usize, &Map<String, Value>)> {
    jwks.get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, k)| Some((i, k.as_object()?)))
}

fn bytes(key: &Map<String, Value>, member: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(key.get(member)?.as_str()?).ok()
}

fn is_secret(key: &Map<String, Value>) -> bool {
    key.get("kty").and_then(Value::as_str) == Some("oct")
}

/// The ways a secret's bytes may hold a key: as they are, and, read as text, the base64
/// they carry once armour (`-----BEGIN …`) and line breaks are set aside (a PEM body), and
/// each base64 word on its own (the key of an OpenSSH `ssh-rsa AAAA… comment` line).
fn readings(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![secret.to_vec()];
    let Ok(text) = std::str::from_utf8(secret) else {
        return out;
    };
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----") && !l.contains(':'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    for word in std::iter::once(body.as_str()).chain(text.split_whitespace()) {
        out.extend(LENIENT.iter().filter_map(|e| e.decode(word).ok()));
    }
    out
}

/// The HMAC secrets of several key sets (`(path, JWKS)`) that are, or hold, a public key of
/// any of them: `(path of the secret, message)`. Keys that do not parse are left to
/// `KeySet::from_jwks`.
pub fn made_of_public_keys(sets: &[(String, &Value)]) -> Vec<(String, String)> {
    // (where, its public values: x, y, n)
    let public: Vec<(String, Vec<Vec<u8>>)> = sets
        .iter()
        .flat_map(|(path, jwks)| {
            keys(jwks).filter(|(_, k)| !is_secret(k)).map(move |(i, k)| {
                let values = ["x", "y", "n"]
                    .iter()
                    .filter_map(|m| bytes(k, m))
                    .filter(|b| b.len() >= MIN_PUBLIC)
                    .collect();
                (format!("{path}.keys[{i}]"), values)
            })
        })
        .collect();
    let mut found = Vec::new();
    for (path, jwks) in sets {
        for (i, key) in keys(jwks).filter(|(_, k)| is_secret(k)) {
            let Some(secret) = bytes(key, "k") else {
                continue;
            };
            let readings = readings(&secret);
            let holds = |value: &Vec<u8>| {
                let text = URL_SAFE_NO_PAD.encode(value);
                readings
                    .iter()
                    .any(|r| r.windows(value.len()).any(|w| w == value.as_slice()))
                    || secret.windows(text.len()).any(|w| w == text.as_bytes())
            };
            if let Some((whose, _)) = public.iter().find(|(_, values)| values.iter().any(holds)) {
                found.push((
                    format!("{path}.keys[{i}]"),
                    format!(
                        "its secret (k) is or holds the public key {whose}, which anyone can read: \
                         whoever has it could sign tokens this set accepts"
                    ),
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::json;

    fn b64url(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    /// DER's length octets.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(content);
        out
    }

    /// PEM as openssl writes it: 64 columns, with the given line ending.
    fn pem(label: &str, der: &[u8], eol: &str) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----{eol}{}{eol}-----END {label}-----{eol}",
            lines.join(eol)
        )
    }

    fn found(public: Value, secret: &[u8]) -> Vec<(String, String)> {
        let jwks = json!({"keys": [public, {"kty": "oct", "kid": "hs", "k": b64url(secret)}]});
        made_of_public_keys(&[("identity".to_string(), &jwks)])
    }

    #[test]
    fn pem_and_openssh_files_of_a_public_key_are_found() {
        // An RSA modulus and exponent (the detector reads bytes; no key is checked here).
        let n: Vec<u8> = (0..256u32)
            .map(|i| (i * 7 + 129) as u8 | if i == 0 { 0x80 } else { 0 })
            .collect();
        let e = [1u8, 0, 1];
        let rsa = json!({"kty": "RSA", "kid": "r", "n": b64url(&n), "e": b64url(&e)});
        let int = |v: &[u8]| der(0x02, &[&[0u8][..], v].concat());
        let pkcs1 = der(0x30, &[int(&n), der(0x02, &e)].concat());
        let algorithm = der(
            0x30,
            &[
                der(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let spki = der(0x30, &[algorithm, der(0x03, &[&[0u8][..], &pkcs1].concat())].concat());
        let mpint = |v: &[u8]| [&(v.len() as u32 + 1).to_be_bytes()[..], &[0], v].concat();
        let ssh = [&7u32.to_be_bytes()[..], b"ssh-rsa", &mpint(&e), &mpint(&n)].concat();
        for secret in [
            pem("PUBLIC KEY", &spki, "\n"),
            pem("PUBLIC KEY", &spki, "\r\n"),
            pem("RSA PUBLIC KEY", &pkcs1, "\n"),
            format!("ssh-rsa {} ops@example.com\n", STANDARD.encode(&ssh)),
        ] {
            assert_eq!(found(rsa.clone(), secret.as_bytes()).len(), 1, "{secret}");
        }
        // A P-256 key in PEM: x and y cross line breaks.
        let (x, y): (Vec<u8>, Vec<u8>) = ((1..=32).collect(), (33..=64).collect());
        let ec = json!({"kty": "EC", "crv": "P-256", "kid": "e", "x": b64url(&x), "y": b64url(&y)});
        let prefix = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
        ];
        let spki = [&prefix[..], &x, &y].concat();
        assert_eq!(found(ec.clone(), pem("PUBLIC KEY", &spki, "\n").as_bytes()).len(), 1);
        // The JWK itself, or its x pasted as the secret.
        assert_eq!(found(ec.clone(), ec.to_string().as_bytes()).len(), 1);
        assert_eq!(found(ec.clone(), &x).len(), 1);
        // A secret of its own is none of these.
        assert!(found(ec, &[7u8; 32]).is_empty());
        assert!(found(rsa, b"a long and entirely private shared secret").is_empty());
    }
}
