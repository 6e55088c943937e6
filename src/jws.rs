//! Compact JWS (RFC 7515) and JWT verification, plus signing for the CLI and tests.
//!
//! Used for caller identity tokens and for human-approval grants. Algorithms: RS256, ES256,
//! EdDSA (Ed25519) and HS256; verification keys come from an inline JWKS.
//!
//! Everything in a token is hostile. Base64url must be canonical, header and payload go
//! through the strict parser (`crate::json`: no duplicate keys, bounded depth), `crit`
//! extensions are refused, and the algorithm is bound to the key: a token can only pick
//! among keys whose type fits its `alg`, never make a key be used with another algorithm
//! (the classic HS256-keyed-with-an-RSA-public-key confusion).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
// The one `signature` crate behind p256, rsa and ed25519-dalek alike.
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused before any decoding (Envoy's default header
/// limit is 60 KiB, so no legitimate bearer token or grant comes close).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Nesting bound for header and payload JSON.
const MAX_JSON_DEPTH: usize = 16;
const MIN_RSA_BITS: usize = 2048;
const MIN_HMAC_KEY_BYTES: usize = 32;
/// JWK members that only a private key carries (RFC 7518 §6.2.2 and §6.3.2).
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// A supported JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// HMAC with SHA-256.
    Hs256,
}

impl Alg {
    /// The JOSE name (`"RS256"`, `"ES256"`, `"EdDSA"`, `"HS256"`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
        }
    }

    /// Parses a JOSE name; names are case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            "HS256" => Some(Alg::Hs256),
            _ => None,
        }
    }

    /// The JWK `kty` a key for this algorithm has.
    fn kty(self) -> &'static str {
        match self {
            Alg::Rs256 => "RSA",
            Alg::Es256 => "EC",
            Alg::EdDsa => "OKP",
            Alg::Hs256 => "oct",
        }
    }

    /// Each supported kty allows exactly one of our algorithms.
    fn for_kty(kty: &str) -> Option<Alg> {
        match kty {
            "RSA" => Some(Alg::Rs256),
            "EC" => Some(Alg::Es256),
            "OKP" => Some(Alg::EdDsa),
            "oct" => Some(Alg::Hs256),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    /// Not a well-formed compact JWS (the text says which part is wrong).
    Malformed(&'static str),
    /// `alg: none`, in any letter case: unsigned tokens are never accepted.
    AlgNone,
    /// An `alg` this verifier does not implement.
    AlgUnsupported,
    /// The key named by `kid` is not a key for the token's `alg`.
    AlgKeyMismatch,
    /// No key named by `kid`, or no single key fits a token without `kid`.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
}

impl fmt::Display for JwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwsError::Malformed(why) => write!(f, "malformed token: {why}"),
            JwsError::AlgNone => f.write_str("unsigned token (alg none) refused"),
            JwsError::AlgUnsupported => f.write_str("unsupported alg"),
            JwsError::AlgKeyMismatch => f.write_str("alg does not match the key"),
            JwsError::UnknownKid => f.write_str("no matching key"),
            JwsError::BadSignature => f.write_str("signature does not verify"),
        }
    }
}

impl std::error::Error for JwsError {}

// ---------------------------------------------------------------------------------------
// Token structure
// ---------------------------------------------------------------------------------------

/// A compact JWS split and partly decoded; nothing here is trusted yet.
struct Parts<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, exactly as received.
    signing_input: &'a str,
    header: Map<String, Value>,
    payload_b64: &'a str,
    signature_b64: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, JwsError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwsError::Malformed("token too long"));
        }
        let (signing_input, signature_b64) = token
            .rsplit_once('.')
            .ok_or(JwsError::Malformed("token must have three segments"))?;
        let (header_b64, payload_b64) = signing_input
            .split_once('.')
            .ok_or(JwsError::Malformed("token must have three segments"))?;
        if payload_b64.contains('.') {
            return Err(JwsError::Malformed("token must have three segments"));
        }
        if header_b64.is_empty() {
            return Err(JwsError::Malformed("empty header segment"));
        }
        let header = parse_object(&b64_decode(header_b64)?, Segment::Header)?;
        Ok(Parts {
            signing_input,
            header,
            payload_b64,
            signature_b64,
        })
    }

    fn payload(&self) -> Result<Vec<u8>, JwsError> {
        if self.payload_b64.is_empty() {
            // Also refuses RFC 7515 Appendix F detached payloads.
            return Err(JwsError::Malformed("empty payload segment"));
        }
        b64_decode(self.payload_b64)
    }
}

/// Strict base64url: the URL-safe alphabet, no padding, no whitespace, zero trailing bits
/// (so each byte string has exactly one accepted encoding).
fn b64_decode(segment: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwsError::Malformed("invalid base64url"))
}

fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Clone, Copy)]
enum Segment {
    Header,
    Payload,
}

fn parse_object(bytes: &[u8], segment: Segment) -> Result<Map<String, Value>, JwsError> {
    use crate::json::JsonError;
    let parsed = crate::json::parse(bytes, MAX_JSON_DEPTH);
    let why = match (parsed, segment) {
        (Ok(Value::Object(map)), _) => return Ok(map),
        (Ok(_), Segment::Header) => "header is not a JSON object",
        (Ok(_), Segment::Payload) => "payload is not a JSON object",
        (Err(JsonError::DuplicateKey(..)), Segment::Header) => "duplicate key in header",
        (Err(JsonError::DuplicateKey(..)), Segment::Payload) => "duplicate key in payload",
        (Err(JsonError::TooDeep), Segment::Header) => "header nested too deeply",
        (Err(JsonError::TooDeep), Segment::Payload) => "payload nested too deeply",
        (Err(_), Segment::Header) => "header is not valid JSON",
        (Err(_), Segment::Payload) => "payload is not valid JSON",
    };
    Err(JwsError::Malformed(why))
}

/// Reads the claims of a token that at least claims to be signed (an algorithm aigate
/// supports, no `none`, no `crit`, a signature segment), verifying nothing: for comparing
/// a token another verifier checked (Envoy's `jwt_authn`) with what it verified.
pub fn peek_signed_claims(token: &str) -> Result<Map<String, Value>, JwsError> {
    let parts = Parts::split(token)?;
    header_alg(&parts.header)?;
    if parts.signature_b64.is_empty() {
        return Err(JwsError::Malformed("empty signature segment"));
    }
    parse_object(&parts.payload()?, Segment::Payload)
}

/// Reads the claims without verifying anything, only so the caller can find `iss` and
/// pick that issuer's [`KeySet`]. Parsing is as strict as in [`KeySet::verify`]; the result
/// must not be used for any decision.
pub fn peek_claims(token: &str) -> Result<Map<String, Value>, JwsError> {
    let parts = Parts::split(token)?;
    parse_object(&parts.payload()?, Segment::Payload)
}

// ---------------------------------------------------------------------------------------
// Verification keys
// ---------------------------------------------------------------------------------------

enum Material {
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
    Ec(p256::ecdsa::VerifyingKey),
    Ed(ed25519_dalek::VerifyingKey),
    /// The keyed state, cloned per verification; the raw secret is not kept.
    Oct(HmacSha256),
}

struct Key {
    kid: Option<String>,
    alg: Alg,
    material: Material,
    /// RFC 7638 thumbprint: the key recognised whatever else its JWK says (kid, alg, use).
    thumbprint: String,
}

impl Key {
    fn verify(&self, input: &[u8], sig: &[u8]) -> Result<(), JwsError> {
        match &self.material {
            Material::Rsa(key) => {
                // The length must equal the modulus size; `verify` checks it.
                let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| JwsError::BadSignature)?;
                key.verify(input, &sig).map_err(|_| JwsError::BadSignature)
            }
            Material::Ec(key) => {
                // JWS uses the fixed 64-byte r||s form (RFC 7518 §3.4), never DER.
                if sig.len() != 64 {
                    return Err(JwsError::Malformed("ES256 signature must be 64 bytes"));
                }
                let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| JwsError::BadSignature)?;
                key.verify(input, &sig).map_err(|_| JwsError::BadSignature)
            }
            Material::Ed(key) => {
                let sig: &[u8; 64] = sig
                    .try_into()
                    .map_err(|_| JwsError::Malformed("EdDSA signature must be 64 bytes"))?;
                // Strict: also refuses small-order R and non-canonical S (no malleability).
                key.verify_strict(input, &ed25519_dalek::Signature::from_bytes(sig))
                    .map_err(|_| JwsError::BadSignature)
            }
            Material::Oct(mac) => {
                let mut mac = mac.clone();
                mac.update(input);
                // Constant-time; a truncated tag is refused.
                mac.verify_slice(sig).map_err(|_| JwsError::BadSignature)
            }
        }
    }
}

/// The verification keys of one issuer (or of the approval service), validated and
/// immutable.
pub struct KeySet {
    keys: Vec<Key>,
}

impl fmt::Debug for KeySet {
    // Names only: an HMAC key is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (k.alg.name(), k.kid.as_deref())))
            .finish()
    }
}

impl KeySet {
    /// Parses an inline JWKS `{"keys":[...]}`: RSA (`n`, `e`), EC P-256 (`x`, `y`),
    /// OKP Ed25519 (`x`) and oct (`k`). Errors name the key index.
    ///
    /// Refused: an empty set, duplicate `kid`s, RSA moduli under 2048 bits, oct keys under
    /// 32 bytes, an `alg` that does not fit the `kty`, a `use` other than `sig`, `key_ops`
    /// without `verify`, and private members (`d`, …) in asymmetric keys.
    pub fn from_jwks(jwks: &Value) -> Result<KeySet, String> {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS must be an object with a \"keys\" array")?;
        if keys.is_empty() {
            return Err("the JWKS has no keys".into());
        }
        let mut out: Vec<Key> = Vec::with_capacity(keys.len());
        for (i, jwk) in keys.iter().enumerate() {
            let key = public_key_from_jwk(jwk).map_err(|e| format!("keys[{i}]: {e}"))?;
            if let Some(kid) = &key.kid {
                if out.iter().any(|k| k.kid.as_ref() == Some(kid)) {
                    return Err(format!("keys[{i}]: duplicate kid {kid:?}"));
                }
            }
            out.push(key);
        }
        Ok(KeySet { keys: out })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always false: an empty set is refused at construction.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each key's `kid` and RFC 7638 thumbprint (base64url of SHA-256), in JWKS order:
    /// the same key in two sets has the same thumbprint.
    pub fn thumbprints(&self) -> impl Iterator<Item = (Option<&str>, &str)> + '_ {
        self.keys.iter().map(|k| (k.kid.as_deref(), k.thumbprint.as_str()))
    }

    /// The algorithms this set can verify, one entry per key.
    pub fn algs(&self) -> impl Iterator<Item = Alg> + '_ {
        self.keys.iter().map(|k| k.alg)
    }

    /// Verifies the signature of a compact JWS and returns its claims (a JSON object).
    /// Claims (`exp`, `aud`, …) are not checked here.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JwsError> {
        let payload = self.verify_payload(token)?;
        parse_object(&payload, Segment::Payload)
    }

    /// Verifies the signature and returns the raw payload bytes (any content).
    pub fn verify_payload(&self, token: &str) -> Result<Vec<u8>, JwsError> {
        let parts = Parts::split(token)?;
        let alg = header_alg(&parts.header)?;
        let key = self.select(alg, header_kid(&parts.header)?)?;
        if parts.signature_b64.is_empty() {
            return Err(JwsError::Malformed("empty signature segment"));
        }
        let payload = parts.payload()?;
        let sig = b64_decode(parts.signature_b64)?;
        key.verify(parts.signing_input.as_bytes(), &sig)?;
        Ok(payload)
    }

    fn select(&self, alg: Alg, kid: Option<&str>) -> Result<&Key, JwsError> {
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or(JwsError::UnknownKid)?;
                if key.alg == alg {
                    Ok(key)
                } else {
                    Err(JwsError::AlgKeyMismatch)
                }
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.alg == alg);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(JwsError::UnknownKid),
                }
            }
        }
    }
}

fn header_alg(header: &Map<String, Value>) -> Result<Alg, JwsError> {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwsError::Malformed("header alg missing or not a string"))?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwsError::AlgNone);
    }
    // We implement no extension, so any critical one must fail (RFC 7515 §4.1.11).
    if header.contains_key("crit") {
        return Err(JwsError::Malformed("crit header is not supported"));
    }
    Alg::from_name(alg).ok_or(JwsError::AlgUnsupported)
}

fn header_kid(header: &Map<String, Value>) -> Result<Option<&str>, JwsError> {
    match header.get("kid") {
        None => Ok(None),
        Some(Value::String(kid)) => Ok(Some(kid)),
        Some(_) => Err(JwsError::Malformed("header kid is not a string")),
    }
}

// ---------------------------------------------------------------------------------------
// JWK parsing
// ---------------------------------------------------------------------------------------

/// The members common to every JWK, checked the same way for public and private keys.
struct JwkCommon<'a> {
    obj: &'a Map<String, Value>,
    kty: &'a str,
    alg: Alg,
    kid: Option<String>,
}

fn jwk_common<'a>(jwk: &'a Value, op: &str) -> Result<JwkCommon<'a>, String> {
    let obj = jwk.as_object().ok_or("a JWK must be a JSON object")?;
    let kty = str_member(obj, "kty")?.ok_or("kty is missing")?;
    let alg = Alg::for_kty(kty).ok_or_else(|| format!("unsupported kty {kty:?} (supported: RSA, EC, OKP, oct)"))?;
    if let Some(declared) = str_member(obj, "alg")? {
        match Alg::from_name(declared) {
            None => {
                return Err(format!(
                    "alg {declared:?} is not supported (supported: RS256, ES256, EdDSA, HS256)"
                ))
            }
            Some(a) if a != alg => {
                return Err(format!("alg {declared} does not fit kty {kty}"));
            }
            Some(_) => {}
        }
    }
    if let Some(usage) = str_member(obj, "use")? {
        if usage != "sig" {
            return Err(format!("use must be \"sig\", not {usage:?}"));
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let allows = ops
            .as_array()
            .ok_or("key_ops must be an array")?
            .iter()
            .any(|o| o.as_str() == Some(op));
        if !allows {
            return Err(format!("key_ops does not include {op:?}"));
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err("kid must be a non-empty string".into()),
    };
    Ok(JwkCommon { obj, kty, alg, kid })
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{name} must be a string")),
    }
}

fn bytes_member(obj: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, String> {
    match str_member(obj, name)? {
        None => Ok(None),
        Some(s) => URL_SAFE_NO_PAD
            .decode(s)
            .map(Some)
            .map_err(|_| format!("{name} is not valid unpadded base64url")),
    }
}

fn required_bytes(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    bytes_member(obj, name)?.ok_or_else(|| format!("{name} is missing"))
}

fn fixed_bytes<const N: usize>(obj: &Map<String, Value>, name: &str) -> Result<[u8; N], String> {
    let bytes = required_bytes(obj, name)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| format!("{name} must be {N} bytes, not {}", bytes.len()))
}

fn require_crv(obj: &Map<String, Value>, kty: &str, crv: &str) -> Result<(), String> {
    if str_member(obj, "crv")? == Some(crv) {
        Ok(())
    } else {
        Err(format!("{kty} key must have crv {crv}"))
    }
}

fn public_key_from_jwk(jwk: &Value) -> Result<Key, String> {
    let JwkCommon { obj, kty, alg, kid } = jwk_common(jwk, "verify")?;
    if alg != Alg::Hs256 {
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(format!(
                "private key member {m:?} must not be in a verification key set"
            ));
        }
    }
    let (material, members) = match alg {
        Alg::Rs256 => {
            let n = rsa::BigUint::from_bytes_be(&required_bytes(obj, "n")?);
            let e = rsa::BigUint::from_bytes_be(&required_bytes(obj, "e")?);
            let bits = n.bits();
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA modulus is {bits} bits; at least {MIN_RSA_BITS} are required"
                ));
            }
            let members = format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64_encode(&e.to_bytes_be()),
                b64_encode(&n.to_bytes_be())
            );
            let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("invalid RSA key: {e}"))?;
            (Material::Rsa(rsa::pkcs1v15::VerifyingKey::new(key)), members)
        }
        Alg::Es256 => {
            require_crv(obj, kty, "P-256")?;
            let x: [u8; 32] = fixed_bytes(obj, "x")?;
            let y: [u8; 32] = fixed_bytes(obj, "y")?;
            let members = format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64_encode(&x),
                b64_encode(&y)
            );
            (Material::Ec(ec_point(&x, &y)?), members)
        }
        Alg::EdDsa => {
            require_crv(obj, kty, "Ed25519")?;
            let x: [u8; 32] = fixed_bytes(obj, "x")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| "x is not a valid Ed25519 public key".to_string())?;
            if key.is_weak() {
                return Err("x is a small-order (weak) Ed25519 key".into());
            }
            let members = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64_encode(&x));
            (Material::Ed(key), members)
        }
        Alg::Hs256 => {
            let (mac, k) = hmac_key(obj)?;
            (
                Material::Oct(mac),
                format!(r#"{{"k":"{}","kty":"oct"}}"#, b64_encode(&hmac_effective_key(&k))),
            )
        }
    };
    // The members are base64url text and fixed names: already RFC 7638's canonical JSON.
    let thumbprint = b64_encode(&<Sha256 as sha2::Digest>::digest(members.as_bytes()));
    Ok(Key {
        kid,
        alg,
        material,
        thumbprint,
    })
}

fn ec_point(x: &[u8; 32], y: &[u8; 32]) -> Result<p256::ecdsa::VerifyingKey, String> {
    let point = p256::EncodedPoint::from_affine_coordinates(&(*x).into(), &(*y).into(), false);
    p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| "x, y is not a point on P-256".to_string())
}

/// The key HMAC-SHA256 computes with (RFC 2104): a secret longer than the block is hashed
/// first, and a shorter one padded with zeros, so `K`, `K‖00` and (for a long `K`) its
/// SHA-256 are one key. Thumbprinted in this form, two secrets that sign alike are
/// recognised as one key.
fn hmac_effective_key(k: &[u8]) -> Vec<u8> {
    let mut key = if k.len() > 64 {
        <Sha256 as sha2::Digest>::digest(k).to_vec()
    } else {
        k.to_vec()
    };
    while key.last() == Some(&0) {
        key.pop();
    }
    key
}

/// The HMAC state and the secret it was made from (for the thumbprint; not kept).
fn hmac_key(obj: &Map<String, Value>) -> Result<(HmacSha256, Vec<u8>), String> {
    let k = required_bytes(obj, "k")?;
    if k.len() < MIN_HMAC_KEY_BYTES {
        return Err(format!(
            "oct key is {} bytes; at least {MIN_HMAC_KEY_BYTES} are required",
            k.len()
        ));
    }
    let mac = HmacSha256::new_from_slice(&k).map_err(|_| "unusable HMAC key".to_string())?;
    Ok((mac, k))
}

// ---------------------------------------------------------------------------------------
// Signing (CLI, approval tooling, tests)
// ---------------------------------------------------------------------------------------

enum SigningMaterial {
    Ed(ed25519_dalek::SigningKey),
    Ec(p256::ecdsa::SigningKey),
    Oct(HmacSha256),
}

/// A private key that signs JWTs: OKP Ed25519 (`d`), EC P-256 (`d`) or oct (`k`).
/// RSA signing is not offered.
pub struct SigningKey {
    kid: Option<String>,
    alg: Alg,
    material: SigningMaterial,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds a signing key from a private JWK. When the JWK also carries the public part
    /// (`x`, `y`), it must match the private part.
    pub fn from_jwk(jwk: &Value) -> Result<SigningKey, String> {
        let JwkCommon { obj, kty, alg, kid } = jwk_common(jwk, "sign")?;
        let material = match alg {
            Alg::Rs256 => return Err("RSA signing keys are not supported (use EdDSA, ES256 or HS256)".into()),
            Alg::EdDsa => {
                require_crv(obj, kty, "Ed25519")?;
                let d: [u8; 32] = fixed_bytes(obj, "d")?;
                let key = ed25519_dalek::SigningKey::from_bytes(&d);
                if let Some(x) = bytes_member(obj, "x")? {
                    if x.as_slice() != key.verifying_key().as_bytes() {
                        return Err("x does not match d".into());
                    }
                }
                SigningMaterial::Ed(key)
            }
            Alg::Es256 => {
                require_crv(obj, kty, "P-256")?;
                let d: [u8; 32] = fixed_bytes(obj, "d")?;
                let key = p256::ecdsa::SigningKey::from_bytes(&d.into())
                    .map_err(|_| "d is not a valid P-256 private key".to_string())?;
                let point = key.verifying_key().to_encoded_point(false);
                for (name, coord) in [("x", point.x()), ("y", point.y())] {
                    if let Some(given) = bytes_member(obj, name)? {
                        if coord.map(AsRef::<[u8]>::as_ref) != Some(given.as_slice()) {
                            return Err(format!("{name} does not match d"));
                        }
                    }
                }
                SigningMaterial::Ec(key)
            }
            Alg::Hs256 => SigningMaterial::Oct(hmac_key(obj)?.0),
        };
        Ok(SigningKey { kid, alg, material })
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id put in the header, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Signs `claims` as a compact JWT with header `{"alg":…,"kid":…,"typ":"JWT"}`.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let mut header = Map::new();
        header.insert("alg".into(), Value::from(self.alg.name()));
        if let Some(kid) = &self.kid {
            header.insert("kid".into(), Value::from(kid.as_str()));
        }
        header.insert("typ".into(), Value::from("JWT"));
        // `Value`'s Display is serde_json's compact serialisation, and cannot fail.
        let header = Value::Object(header).to_string();
        let payload = Value::Object(claims.clone()).to_string();
        self.sign_segments(header.as_bytes(), payload.as_bytes())
    }

    /// Signs arbitrary header and payload bytes (no checks: tests use it to build hostile
    /// tokens with valid signatures).
    fn sign_segments(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", b64_encode(header), b64_encode(payload));
        let sig = self.sign_input(input.as_bytes());
        format!("{input}.{}", b64_encode(&sig))
    }

    fn sign_input(&self, input: &[u8]) -> Vec<u8> {
        match &self.material {
            SigningMaterial::Ed(key) => key.sign(input).to_bytes().to_vec(),
            // RFC 6979 deterministic nonces: no RNG needed.
            SigningMaterial::Ec(key) => {
                let sig: p256::ecdsa::Signature = key.sign(input);
                sig.to_bytes().to_vec()
            }
            SigningMaterial::Oct(mac) => {
                let mut mac = mac.clone();
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// The public JWK to put in a verifier's JWKS; `None` for an HMAC key, which has no
    /// public half.
    pub fn public_jwk(&self) -> Option<Value> {
        let mut jwk = Map::new();
        jwk.insert("kty".into(), self.alg.kty().into());
        match &self.material {
            SigningMaterial::Ed(key) => {
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), b64_encode(key.verifying_key().as_bytes()).into());
            }
            SigningMaterial::Ec(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                jwk.insert("crv".into(), "P-256".into());
                jwk.insert("x".into(), b64_encode(point.x()?).into());
                jwk.insert("y".into(), b64_encode(point.y()?).into());
            }
            SigningMaterial::Oct(_) => return None,
        }
        jwk.insert("alg".into(), self.alg.name().into());
        jwk.insert("use".into(), "sig".into());
        if let Some(kid) = &self.kid {
            jwk.insert("kid".into(), kid.as_str().into());
        }
        Some(Value::Object(jwk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // RFC 7515 Appendix A.1 (HS256).
    const A1_KEY: &str = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    // RFC 7515 Appendix A.2 (RS256).
    const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
    const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

    // RFC 7515 Appendix A.3 (ES256).
    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
    const A3_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";
    const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    // RFC 8037 Appendix A.1/A.2 (key), A.4 (signing) and A.5 (validation), Ed25519.
    const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    const ED_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn rsa_jwk() -> Value {
        json!({"kty": "RSA", "kid": "rsa-1", "n": A2_N, "e": "AQAB"})
    }
    fn ec_jwk() -> Value {
        json!({"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": A3_X, "y": A3_Y})
    }
    fn ed_jwk() -> Value {
        json!({"kty": "OKP", "kid": "ed-1", "crv": "Ed25519", "x": ED_X})
    }
    fn oct_jwk() -> Value {
        json!({"kty": "oct", "kid": "hs-1", "k": A1_KEY})
    }
    fn keyset(keys: &[Value]) -> KeySet {
        KeySet::from_jwks(&json!({ "keys": keys })).unwrap()
    }
    fn all_keys() -> KeySet {
        keyset(&[rsa_jwk(), ec_jwk(), ed_jwk(), oct_jwk()])
    }
    fn hs_signer(kid: Option<&str>) -> SigningKey {
        let mut jwk = json!({"kty": "oct", "k": A1_KEY});
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        SigningKey::from_jwk(&jwk).unwrap()
    }
    fn ed_signer() -> SigningKey {
        SigningKey::from_jwk(&json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "d": ED_D, "x": ED_X})).unwrap()
    }
    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }
    fn rfc_claims() -> Map<String, Value> {
        claims(json!({"iss": "joe", "exp": 1300819380, "http://example.com/is_root": true}))
    }
    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_string).collect()
    }
    /// Flips one bit of the decoded signature and re-encodes it canonically.
    fn with_flipped_signature(token: &str) -> String {
        let s = segments(token);
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        sig[0] ^= 0x01;
        format!("{}.{}.{}", s[0], s[1], b64_encode(&sig))
    }
    /// Swaps the payload for another (validly encoded) one, keeping header and signature.
    fn with_payload(token: &str, payload: &[u8]) -> String {
        let s = segments(token);
        format!("{}.{}.{}", s[0], b64_encode(payload), s[2])
    }

    // --- published vectors -----------------------------------------------------------

    #[test]
    fn rfc7515_a1_hs256() {
        assert_eq!(all_keys().verify(A1_TOKEN).unwrap(), rfc_claims());
        assert_eq!(keyset(&[oct_jwk()]).verify(A1_TOKEN).unwrap(), rfc_claims());
        // HMAC is deterministic: our signer reproduces the published signature.
        let (input, sig) = A1_TOKEN.rsplit_once('.').unwrap();
        assert_eq!(b64_encode(&hs_signer(None).sign_input(input.as_bytes())), sig);
    }

    #[test]
    fn rfc7515_a2_rs256() {
        assert_eq!(all_keys().verify(A2_TOKEN).unwrap(), rfc_claims());
        assert_eq!(keyset(&[rsa_jwk()]).verify(A2_TOKEN).unwrap(), rfc_claims());
    }

    #[test]
    fn rfc7515_a3_es256() {
        assert_eq!(all_keys().verify(A3_TOKEN).unwrap(), rfc_claims());
        // The published private key derives the published public key.
        let signer =
            SigningKey::from_jwk(&json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y, "d": A3_D})).unwrap();
        assert_eq!(signer.alg(), Alg::Es256);
        let public = signer.public_jwk().unwrap();
        assert_eq!((public["x"].as_str(), public["y"].as_str()), (Some(A3_X), Some(A3_Y)));
        let token = signer.sign(&rfc_claims());
        assert_eq!(keyset(&[ec_jwk()]).verify(&token).unwrap(), rfc_claims());
    }

    #[test]
    fn rfc8037_a4_a5_ed25519() {
        // A.4: Ed25519 is deterministic, so signing reproduces the exact signature.
        let (input, sig) = ED_TOKEN.rsplit_once('.').unwrap();
        let signer = ed_signer();
        assert_eq!(b64_encode(&signer.sign_input(input.as_bytes())), sig);
        assert_eq!(signer.public_jwk().unwrap()["x"], ED_X);
        // A.5: it verifies. The payload is text, not a JWT claims object, so `verify`
        // refuses it, but only after the signature passed (that check comes first).
        let keys = all_keys();
        assert_eq!(keys.verify_payload(ED_TOKEN).unwrap(), b"Example of Ed25519 signing");
        assert_eq!(
            keys.verify(ED_TOKEN),
            Err(JwsError::Malformed("payload is not valid JSON"))
        );
        assert_eq!(
            keys.verify(&with_flipped_signature(ED_TOKEN)),
            Err(JwsError::BadSignature)
        );
    }

    // --- refused algorithms and keys -------------------------------------------------

    #[test]
    fn alg_none_is_refused_in_any_case_with_or_without_signature() {
        let keys = all_keys();
        let payload = b64_encode(br#"{"iss":"joe"}"#);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = b64_encode(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            assert_eq!(keys.verify(&format!("{header}.{payload}.")), Err(JwsError::AlgNone));
            let signed = format!("{header}.{payload}.{}", segments(A1_TOKEN)[2]);
            assert_eq!(keys.verify(&signed), Err(JwsError::AlgNone));
        }
        // Even with a kid naming a real key.
        let header = b64_encode(br#"{"alg":"none","kid":"hs-1"}"#);
        assert_eq!(keys.verify(&format!("{header}.{payload}.")), Err(JwsError::AlgNone));
        // A second "alg" hidden behind a duplicate key is not a way around it.
        let dup = hs_signer(None).sign_segments(br#"{"alg":"none","alg":"HS256"}"#, br#"{"iss":"joe"}"#);
        assert_eq!(keys.verify(&dup), Err(JwsError::Malformed("duplicate key in header")));
    }

    #[test]
    fn unsupported_algs() {
        let keys = all_keys();
        for alg in ["HS512", "RS384", "PS256", "ES256K", "hs256", "Ed25519", ""] {
            let header = format!(r#"{{"alg":"{alg}"}}"#);
            let token = hs_signer(None).sign_segments(header.as_bytes(), b"{}");
            assert_eq!(keys.verify(&token), Err(JwsError::AlgUnsupported), "{alg}");
        }
    }

    #[test]
    fn hs256_keyed_with_the_rsa_public_key_is_refused() {
        // The confusion attack: sign HS256 with the (public) RSA JWK as the HMAC secret and
        // hope the verifier feeds the RSA key's bytes to HMAC.
        let keys = keyset(&[rsa_jwk()]);
        let secret = serde_json::to_vec(&rsa_jwk()).unwrap();
        let forge = |kid: Option<&str>| {
            let mut jwk = json!({"kty": "oct", "k": b64_encode(&secret)});
            if let Some(kid) = kid {
                jwk["kid"] = kid.into();
            }
            SigningKey::from_jwk(&jwk).unwrap().sign(&rfc_claims())
        };
        assert_eq!(keys.verify(&forge(Some("rsa-1"))), Err(JwsError::AlgKeyMismatch));
        // Without kid, only keys that fit HS256 are candidates: there are none.
        assert_eq!(keys.verify(&forge(None)), Err(JwsError::UnknownKid));
        // Same with the modulus bytes as the secret.
        let n = URL_SAFE_NO_PAD.decode(A2_N).unwrap();
        let token = SigningKey::from_jwk(&json!({"kty":"oct","kid":"rsa-1","k": b64_encode(&n)}))
            .unwrap()
            .sign(&rfc_claims());
        assert_eq!(keys.verify(&token), Err(JwsError::AlgKeyMismatch));
    }

    #[test]
    fn kid_selects_the_key_and_must_fit_the_alg() {
        let keys = all_keys();
        // Unknown kid.
        let token = hs_signer(Some("nope")).sign(&rfc_claims());
        assert_eq!(keys.verify(&token), Err(JwsError::UnknownKid));
        // Known kid, wrong key type: an EdDSA token naming the EC key.
        let ed = SigningKey::from_jwk(&json!({"kty":"OKP","crv":"Ed25519","kid":"ec-1","d":ED_D})).unwrap();
        assert_eq!(keys.verify(&ed.sign(&rfc_claims())), Err(JwsError::AlgKeyMismatch));
        // HS256 naming the Ed25519 key.
        let token = hs_signer(Some("ed-1")).sign(&rfc_claims());
        assert_eq!(keys.verify(&token), Err(JwsError::AlgKeyMismatch));
        // The right kid verifies.
        let token = hs_signer(Some("hs-1")).sign(&rfc_claims());
        assert_eq!(keys.verify(&token).unwrap(), rfc_claims());
        // A non-string kid is malformed.
        let token = hs_signer(None).sign_segments(br#"{"alg":"HS256","kid":1}"#, b"{}");
        assert_eq!(
            keys.verify(&token),
            Err(JwsError::Malformed("header kid is not a string"))
        );
    }

    #[test]
    fn without_kid_exactly_one_fitting_key_is_required() {
        let other = json!({"kty": "oct", "kid": "hs-2", "k": b64_encode(&[7u8; 32])});
        let token = hs_signer(None).sign(&rfc_claims());
        assert_eq!(
            keyset(&[oct_jwk(), other.clone()]).verify(&token),
            Err(JwsError::UnknownKid)
        );
        assert_eq!(keyset(&[ed_jwk(), ec_jwk()]).verify(&token), Err(JwsError::UnknownKid));
        // One fitting key among keys of other types is enough, kid or not on the key.
        assert_eq!(
            keyset(&[rsa_jwk(), oct_jwk(), ed_jwk()]).verify(&token).unwrap(),
            rfc_claims()
        );
        assert_eq!(
            keyset(&[other.clone(), ed_jwk()]).verify(&token),
            Err(JwsError::BadSignature)
        );
    }

    // --- tampering -------------------------------------------------------------------

    #[test]
    fn tampered_payload_or_signature_fails_for_every_alg() {
        let keys = all_keys();
        let es = SigningKey::from_jwk(&json!({"kty":"EC","crv":"P-256","kid":"ec-1","d":A3_D}))
            .unwrap()
            .sign(&rfc_claims());
        let ed = ed_signer().sign(&rfc_claims());
        let hs = hs_signer(Some("hs-1")).sign(&rfc_claims());
        for token in [A1_TOKEN, A2_TOKEN, A3_TOKEN, es.as_str(), ed.as_str(), hs.as_str()] {
            assert!(keys.verify(token).is_ok(), "{token}");
            let evil = with_payload(token, br#"{"iss":"joe","exp":9999999999}"#);
            assert_eq!(keys.verify(&evil), Err(JwsError::BadSignature), "{token}");
            assert_eq!(keys.verify(&with_flipped_signature(token)), Err(JwsError::BadSignature));
            // Swapping the header (same alg, other formatting) breaks the signature too.
            let s = segments(token);
            let header = URL_SAFE_NO_PAD.decode(&s[0]).unwrap();
            let mut spaced = b" ".to_vec();
            spaced.extend_from_slice(&header);
            let swapped = format!("{}.{}.{}", b64_encode(&spaced), s[1], s[2]);
            assert_eq!(keys.verify(&swapped), Err(JwsError::BadSignature));
        }
    }

    #[test]
    fn signature_length_is_checked() {
        let keys = all_keys();
        let s = segments(A1_TOKEN);
        // A truncated HMAC tag is not accepted.
        let sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        let short = format!("{}.{}.{}", s[0], s[1], b64_encode(&sig[..16]));
        assert_eq!(keys.verify(&short), Err(JwsError::BadSignature));
        // ES256 must be raw r||s; a DER-sized or padded signature is malformed.
        let s = segments(A3_TOKEN);
        let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
        sig.push(0);
        let long = format!("{}.{}.{}", s[0], s[1], b64_encode(&sig));
        assert_eq!(
            keys.verify(&long),
            Err(JwsError::Malformed("ES256 signature must be 64 bytes"))
        );
        // r = 0, s = 0 is refused, not a panic.
        let zero = format!("{}.{}.{}", s[0], s[1], b64_encode(&[0u8; 64]));
        assert_eq!(keys.verify(&zero), Err(JwsError::BadSignature));
        // RSA: a signature with an extra leading zero byte (same integer) is refused.
        let s = segments(A2_TOKEN);
        let mut sig = vec![0u8];
        sig.extend(URL_SAFE_NO_PAD.decode(&s[2]).unwrap());
        let padded = format!("{}.{}.{}", s[0], s[1], b64_encode(&sig));
        assert_eq!(keys.verify(&padded), Err(JwsError::BadSignature));
        // Ed25519 length.
        let s = segments(ED_TOKEN);
        let short = format!("{}.{}.{}", s[0], s[1], b64_encode(&[1u8; 63]));
        assert_eq!(
            keys.verify(&short),
            Err(JwsError::Malformed("EdDSA signature must be 64 bytes"))
        );
    }

    // --- structure -------------------------------------------------------------------

    #[test]
    fn segment_structure_and_base64url_are_strict() {
        let keys = all_keys();
        let [h, p, s]: [String; 3] = segments(A1_TOKEN).try_into().unwrap();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "token must have three segments"),
            (format!("{h}.{p}"), "token must have three segments"),
            (format!("{h}.{p}.{s}.{s}"), "token must have three segments"),
            (format!("{h}.{p}.{s}."), "token must have three segments"),
            (format!("{h}..{p}.{s}"), "token must have three segments"),
            (format!(".{p}.{s}"), "empty header segment"),
            (format!("{h}..{s}"), "empty payload segment"),
            (format!("{h}.{p}."), "empty signature segment"),
            (format!("{h}.{p}.{s}="), "invalid base64url"),
            (format!("{h}=.{p}.{s}"), "invalid base64url"),
            (format!(" {h}.{p}.{s}"), "invalid base64url"),
            (format!("{h}.{p}.{s}\n"), "invalid base64url"),
            (format!("{h}.{p} .{s}"), "invalid base64url"),
            (
                format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
                "invalid base64url",
            ),
            (format!("{h}.{p}x.{s}"), "invalid base64url"),
        ];
        for (token, why) in &cases {
            assert_eq!(keys.verify(token), Err(JwsError::Malformed(why)), "{token:?}");
        }
        // Non-canonical encodings: "AB" and "AA" differ only in trailing bits.
        assert!(b64_decode("AA").is_ok());
        assert_eq!(b64_decode("AB"), Err(JwsError::Malformed("invalid base64url")));
        let last = s.chars().last().unwrap();
        assert_eq!(last, 'k'); // 43 chars: the last one carries 2 unused bits
        let sloppy = format!("{h}.{p}.{}l", &s[..s.len() - 1]);
        assert_eq!(keys.verify(&sloppy), Err(JwsError::Malformed("invalid base64url")));
    }

    #[test]
    fn header_and_payload_must_be_strict_json_objects() {
        let keys = all_keys();
        let hs = hs_signer(None);
        let cases: Vec<(&[u8], &[u8], &str)> = vec![
            (br#"{"alg":"HS256"}"#, b"[1,2]", "payload is not a JSON object"),
            (br#"{"alg":"HS256"}"#, b"\"joe\"", "payload is not a JSON object"),
            (br#"{"alg":"HS256"}"#, b"null", "payload is not a JSON object"),
            (
                br#"{"alg":"HS256"}"#,
                br#"{"sub":"a","sub":"b"}"#,
                "duplicate key in payload",
            ),
            (
                br#"{"alg":"HS256"}"#,
                br#"{"sub":"a","s\u0075b":"b"}"#,
                "duplicate key in payload",
            ),
            (br#"{"alg":"HS256"}"#, br#"{"sub":"a"} x"#, "payload is not valid JSON"),
            (
                br#"{"alg":"HS256"}"#,
                b"{\"sub\":\"\xff\"}",
                "payload is not valid JSON",
            ),
            (br#"{"alg":"HS256"}"#, &[b'['; 17], "payload nested too deeply"),
            (b"[]", b"{}", "header is not a JSON object"),
            (b"", b"{}", "empty header segment"),
            (br#"{"alg":"HS256""#, b"{}", "header is not valid JSON"),
            (br#"{"alg":1}"#, b"{}", "header alg missing or not a string"),
            (br#"{"typ":"JWT"}"#, b"{}", "header alg missing or not a string"),
            (
                br#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                b"{}",
                "crit header is not supported",
            ),
            (br#"{"alg":"HS256","crit":[]}"#, b"{}", "crit header is not supported"),
            (
                br#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
                b"{}",
                "crit header is not supported",
            ),
        ];
        for (header, payload, why) in cases {
            let token = hs.sign_segments(header, payload);
            assert_eq!(keys.verify(&token), Err(JwsError::Malformed(why)), "{token}");
        }
        // Nesting within the limit is fine.
        let ok = hs.sign_segments(br#"{"alg":"HS256"}"#, br#"{"act":{"act":{"sub":"x"}}}"#);
        assert!(keys.verify(&ok).is_ok());
    }

    #[test]
    fn huge_and_garbage_input_is_refused_without_panicking() {
        let keys = all_keys();
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(keys.verify(&huge), Err(JwsError::Malformed("token too long")));
        let huge = format!("{}.{}.{}", "e".repeat(40_000), "e".repeat(40_000), "e");
        assert_eq!(keys.verify(&huge), Err(JwsError::Malformed("token too long")));
        assert_eq!(peek_claims(&huge), Err(JwsError::Malformed("token too long")));
        let deep = hs_signer(None).sign_segments(
            format!(r#"{{"alg":"HS256","x":{}{}}}"#, "[".repeat(5000), "]".repeat(5000)).as_bytes(),
            b"{}",
        );
        assert_eq!(keys.verify(&deep), Err(JwsError::Malformed("header nested too deeply")));
        for odd in ["...", "..", ".", "é.é.é", "\0.\0.\0", "eyJ.eyJ.eyJ"] {
            assert!(keys.verify(odd).is_err(), "{odd:?}");
            assert!(peek_claims(odd).is_err(), "{odd:?}");
        }
        // `{}.{}.{}`: structurally fine, so peek reads it; verify wants an alg.
        assert_eq!(peek_claims("e30.e30.e30"), Ok(Map::new()));
        assert_eq!(
            keys.verify("e30.e30.e30"),
            Err(JwsError::Malformed("header alg missing or not a string"))
        );
        // Pseudo-random strings over the token alphabet, and random mutations of valid
        // tokens: every outcome must be an error, never a panic.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n{}\"";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 300) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                .collect();
            assert!(keys.verify(&s).is_err());
            let _ = peek_claims(&s);
        }
        for base in [A1_TOKEN, A2_TOKEN, A3_TOKEN, ED_TOKEN] {
            // Few rounds: RSA and P-256 verification are slow in unoptimised test builds.
            for _ in 0..60 {
                let mut bytes = base.as_bytes().to_vec();
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
                let mutated = String::from_utf8(bytes).unwrap();
                if mutated != base {
                    assert!(keys.verify(&mutated).is_err(), "{mutated}");
                }
            }
        }
    }

    // --- round trips -----------------------------------------------------------------

    #[test]
    fn sign_then_verify_round_trips() {
        let c = claims(json!({
            "iss": "https://approvals.example", "aud": "aigate", "sub": "cust-42",
            "tool": "send_email", "args_digest": "abc", "jti": "j-1", "iat": 1, "exp": 2,
            "nested": {"unicode": "ünï \u{1F600}", "list": [1, 2.5, null, true]}
        }));
        // EdDSA and ES256: the verifier's JWKS is built from the signer's public JWK.
        let es = SigningKey::from_jwk(&json!({"kty":"EC","crv":"P-256","kid":"ec-1","d":A3_D})).unwrap();
        for signer in [ed_signer(), es] {
            let public = signer.public_jwk().unwrap();
            assert_eq!(public["kid"], json!(signer.kid().unwrap()));
            assert_eq!(public["alg"], json!(signer.alg().name()));
            assert!(public.get("d").is_none());
            let keys = keyset(&[public]);
            let token = signer.sign(&c);
            assert_eq!(keys.verify(&token).unwrap(), c);
            assert_eq!(peek_claims(&token).unwrap(), c);
            let header = URL_SAFE_NO_PAD.decode(segments(&token)[0].as_str()).unwrap();
            let header: Value = serde_json::from_slice(&header).unwrap();
            assert_eq!(
                header,
                json!({"alg": signer.alg().name(), "kid": signer.kid(), "typ": "JWT"})
            );
        }
        // HS256 has no public JWK; the verifier holds the same secret.
        let hs = hs_signer(Some("hs-1"));
        assert_eq!(hs.public_jwk(), None);
        assert_eq!(keyset(&[oct_jwk()]).verify(&hs.sign(&c)).unwrap(), c);
        // An empty claims object is a valid JWT too.
        assert_eq!(keyset(&[oct_jwk()]).verify(&hs.sign(&Map::new())).unwrap(), Map::new());
    }

    #[test]
    fn peek_reads_claims_without_a_key_but_as_strictly() {
        assert_eq!(peek_claims(A2_TOKEN).unwrap(), rfc_claims());
        assert_eq!(peek_claims(&with_flipped_signature(A2_TOKEN)).unwrap(), rfc_claims());
        let dup = hs_signer(None).sign_segments(br#"{"alg":"HS256"}"#, br#"{"iss":"a","iss":"b"}"#);
        assert_eq!(peek_claims(&dup), Err(JwsError::Malformed("duplicate key in payload")));
        assert_eq!(
            peek_claims(ED_TOKEN),
            Err(JwsError::Malformed("payload is not valid JSON"))
        );
        let s = segments(A2_TOKEN);
        assert_eq!(
            peek_claims(&format!("{}.{}", s[0], s[1])),
            Err(JwsError::Malformed("token must have three segments"))
        );
        assert_eq!(
            peek_claims(&format!("e30.{}.{}", s[1], s[2])).unwrap(),
            rfc_claims(),
            "peek does not judge the alg"
        );
    }

    // --- JWKS validation -------------------------------------------------------------

    #[test]
    fn jwks_errors_name_the_key_and_the_problem() {
        let err = |keys: Value| KeySet::from_jwks(&json!({ "keys": keys })).unwrap_err();
        assert_eq!(err(json!([])), "the JWKS has no keys");
        assert_eq!(
            KeySet::from_jwks(&json!([oct_jwk()])).unwrap_err(),
            "a JWKS must be an object with a \"keys\" array"
        );
        assert_eq!(
            err(json!([oct_jwk(), ed_jwk(), oct_jwk()])),
            "keys[2]: duplicate kid \"hs-1\""
        );
        let small_n = b64_encode(&[0xC1; 128]);
        assert_eq!(
            err(json!([ed_jwk(), {"kty":"RSA","n": small_n,"e":"AQAB"}])),
            "keys[1]: RSA modulus is 1024 bits; at least 2048 are required"
        );
        assert_eq!(
            err(json!([{"kty":"oct","k": b64_encode(&[1u8; 31])}])),
            "keys[0]: oct key is 31 bytes; at least 32 are required"
        );
        assert_eq!(
            err(json!([ed_jwk(), {"kty":"EC","crv":"P-384","x":A3_X,"y":A3_Y}])),
            "keys[1]: EC key must have crv P-256"
        );
        assert_eq!(
            err(json!([{"kty":"OKP","crv":"X25519","x":ED_X}])),
            "keys[0]: OKP key must have crv Ed25519"
        );
        assert_eq!(
            err(json!([{"kty":"RSA","alg":"HS256","n":A2_N,"e":"AQAB"}])),
            "keys[0]: alg HS256 does not fit kty RSA"
        );
        assert_eq!(
            err(json!([{"kty":"oct","alg":"RS256","k":A1_KEY}])),
            "keys[0]: alg RS256 does not fit kty oct"
        );
        assert_eq!(
            err(json!([{"kty":"RSA","alg":"PS256","n":A2_N,"e":"AQAB"}])),
            "keys[0]: alg \"PS256\" is not supported (supported: RS256, ES256, EdDSA, HS256)"
        );
        assert_eq!(
            err(json!([{"kty":"OKP","crv":"Ed25519","use":"enc","x":ED_X}])),
            "keys[0]: use must be \"sig\", not \"enc\""
        );
        assert_eq!(
            err(json!([{"kty":"OKP","crv":"Ed25519","key_ops":["sign"],"x":ED_X}])),
            "keys[0]: key_ops does not include \"verify\""
        );
        assert_eq!(
            err(json!([{"kty":"OKP","crv":"Ed25519","x":ED_X,"d":ED_D}])),
            "keys[0]: private key member \"d\" must not be in a verification key set"
        );
        assert_eq!(
            err(json!([{"kty":"EC","crv":"P-256","x":A3_X,"y":A3_Y,"d":A3_D}])),
            "keys[0]: private key member \"d\" must not be in a verification key set"
        );
        assert_eq!(
            err(json!([{"kty":"RSA","n":A2_N,"e":"AQAB","p":"AQAB"}])),
            "keys[0]: private key member \"p\" must not be in a verification key set"
        );
        assert_eq!(
            err(json!([{"kty":"kyber"}])),
            "keys[0]: unsupported kty \"kyber\" (supported: RSA, EC, OKP, oct)"
        );
        assert_eq!(err(json!([{"k":A1_KEY}])), "keys[0]: kty is missing");
        assert_eq!(err(json!(["x"])), "keys[0]: a JWK must be a JSON object");
        assert_eq!(
            err(json!([{"kty":"oct","kid":"","k":A1_KEY}])),
            "keys[0]: kid must be a non-empty string"
        );
        assert_eq!(
            err(json!([{"kty":"oct","k":"AyM1+Sys"}])),
            "keys[0]: k is not valid unpadded base64url"
        );
        assert_eq!(err(json!([{"kty":"RSA","n":A2_N}])), "keys[0]: e is missing");
        assert_eq!(
            err(json!([{"kty":"EC","crv":"P-256","x":A3_X,"y":A3_X}])),
            "keys[0]: x, y is not a point on P-256"
        );
        assert_eq!(
            err(json!([{"kty":"EC","crv":"P-256","x":A3_X,"y":"AAAA"}])),
            "keys[0]: y must be 32 bytes, not 3"
        );
        // The rsa crate's own bounds: modulus at most 4096 bits, a sane exponent.
        let big_n = b64_encode(&[0xC1; 1024]);
        let e = err(json!([{"kty":"RSA","n": big_n,"e":"AQAB"}]));
        assert!(e.starts_with("keys[0]: invalid RSA key: "), "{e}");
        let e = err(json!([{"kty":"RSA","n": A2_N,"e":"AQ"}]));
        assert!(e.starts_with("keys[0]: invalid RSA key: "), "{e}");
        // A small-order Ed25519 point (the identity, y = 1).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            err(json!([{"kty":"OKP","crv":"Ed25519","x": b64_encode(&identity)}])),
            "keys[0]: x is a small-order (weak) Ed25519 key"
        );
        // Accepted: matching alg/use/key_ops, unknown extra members.
        let ok = KeySet::from_jwks(&json!({"keys": [
            {"kty":"OKP","crv":"Ed25519","x":ED_X,"alg":"EdDSA","use":"sig","key_ops":["verify"],"x5t":"zz"},
            {"kty":"RSA","n":A2_N,"e":"AQAB","alg":"RS256"}
        ]}))
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok.algs().collect::<Vec<_>>(), [Alg::EdDsa, Alg::Rs256]);
    }

    #[test]
    fn debug_output_does_not_leak_secrets() {
        let keys = all_keys();
        let dbg = format!("{keys:?}");
        assert!(dbg.contains("hs-1") && dbg.contains("HS256"), "{dbg}");
        assert!(!dbg.contains(A1_KEY) && !dbg.contains("AyM1"), "{dbg}");
        let dbg = format!("{:?}", ed_signer());
        assert!(!dbg.contains(ED_D), "{dbg}");
    }

    #[test]
    fn signing_key_validation() {
        let err = |jwk: Value| SigningKey::from_jwk(&jwk).unwrap_err();
        assert_eq!(
            err(json!({"kty":"RSA","n":A2_N,"e":"AQAB","d":"AQAB"})),
            "RSA signing keys are not supported (use EdDSA, ES256 or HS256)"
        );
        assert_eq!(err(json!({"kty":"OKP","crv":"Ed25519","x":ED_X})), "d is missing");
        assert_eq!(
            err(json!({"kty":"OKP","crv":"Ed25519","d":ED_D,"x":A3_X})),
            "x does not match d"
        );
        assert_eq!(
            err(json!({"kty":"EC","crv":"P-256","d":A3_D,"x":A3_X,"y":A3_X})),
            "y does not match d"
        );
        assert_eq!(
            err(json!({"kty":"EC","crv":"P-256","d": b64_encode(&[0u8; 32])})),
            "d is not a valid P-256 private key"
        );
        assert_eq!(
            err(json!({"kty":"EC","crv":"P-256","d": b64_encode(&[0xFFu8; 32])})),
            "d is not a valid P-256 private key"
        );
        assert_eq!(
            err(json!({"kty":"oct","k":A1_KEY,"key_ops":["verify"]})),
            "key_ops does not include \"sign\""
        );
        assert_eq!(
            err(json!({"kty":"oct","k":"AAAA"})),
            "oct key is 3 bytes; at least 32 are required"
        );
    }

    #[test]
    fn alg_names_round_trip() {
        for alg in [Alg::Rs256, Alg::Es256, Alg::EdDsa, Alg::Hs256] {
            assert_eq!(Alg::from_name(alg.name()), Some(alg));
            assert_eq!(alg.to_string(), alg.name());
            assert_eq!(Alg::for_kty(alg.kty()), Some(alg));
        }
        assert_eq!(Alg::from_name("none"), None);
        assert_eq!(Alg::from_name("es256"), None);
        assert_eq!(JwsError::AlgNone.to_string(), "unsigned token (alg none) refused");
        assert_eq!(
            JwsError::Malformed("invalid base64url").to_string(),
            "malformed token: invalid base64url"
        );
    }
    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1: the thumbprint ignores kid, alg and use.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let set = KeySet::from_jwks(&json!({"keys": [
            {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]}))
        .unwrap();
        let prints: Vec<_> = set.thumbprints().collect();
        assert_eq!(
            prints,
            vec![
                (Some("2011-04-29"), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
                // RFC 8037 §A.3.
                (None, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
            ]
        );
        // An HMAC secret is recognised too, whatever its kid.
        let a = KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "kid": "a", "k": A1_KEY}]})).unwrap();
        let b = KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "kid": "b", "k": A1_KEY, "alg": "HS256"}]})).unwrap();
        assert_eq!(a.thumbprints().next().unwrap().1, b.thumbprints().next().unwrap().1);
        // Secrets HMAC makes one key of: zeros appended, a long secret and its digest.
        let print = |k: &[u8]| {
            KeySet::from_jwks(&json!({"keys": [{"kty": "oct", "k": b64_encode(k)}]}))
                .unwrap()
                .thumbprints()
                .next()
                .unwrap()
                .1
                .to_string()
        };
        let short = [7u8; 32];
        let mut padded = short.to_vec();
        padded.extend([0, 0]);
        assert_eq!(print(&short), print(&padded));
        let long = [9u8; 80];
        assert_eq!(print(&long), print(&<Sha256 as sha2::Digest>::digest(long)));
        assert_ne!(print(&short), print(&[8u8; 32]));
    }
}
