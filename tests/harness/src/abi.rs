//! Proxy-wasm ABI 0.2.1 constants and the "pairs" wire format, as the host sees them.

/// Return status of a host call (`WasmResult` in Envoy / proxy-wasm-cpp-host).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    BadExpression = 5,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    ResultMismatch = 9,
    InternalFailure = 10,
    BrokenConnection = 11,
    Unimplemented = 12,
}

impl Status {
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Log levels (spdlog numbering, which Envoy and the SDK share).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            5 => Self::Critical,
            _ => return None,
        })
    }
}

/// Metric kinds of `proxy_define_metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

impl MetricType {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes` buffer selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BufferType {
    HttpRequestBody,
    HttpResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferType {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequestBody,
            1 => Self::HttpResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Header map selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcReceiveInitialMetadata,
    GrpcReceiveTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapType {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcReceiveInitialMetadata,
            5 => Self::GrpcReceiveTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_continue_stream` / `proxy_close_stream` selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    HttpRequest,
    HttpResponse,
    Downstream,
    Upstream,
}

impl StreamType {
    pub fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::HttpRequest,
            1 => Self::HttpResponse,
            2 => Self::Downstream,
            3 => Self::Upstream,
            _ => return None,
        })
    }
}

/// Which HTTP callback returned an [`Action`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    RequestTrailers,
    ResponseHeaders,
    ResponseBody,
    ResponseTrailers,
}

impl Phase {
    fn is_data(self) -> bool {
        matches!(self, Phase::RequestBody | Phase::ResponseBody)
    }
    fn is_headers(self) -> bool {
        matches!(self, Phase::RequestHeaders | Phase::ResponseHeaders)
    }
}

/// What an HTTP callback returned, decoded the way Envoy decodes it for that callback
/// (`FilterHeadersStatus`, `FilterDataStatus` or `FilterTrailersStatus`).
///
/// The Rust SDK's `Action::Pause` is raw value 1: `StopIteration` for headers and
/// trailers, `StopIterationAndBuffer` for body callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Continue,
    /// Headers/trailers: stop iteration (raw 1).
    StopIteration,
    /// Headers: deprecated `ContinueAndEndStream` (raw 2).
    ContinueAndEndStream,
    /// Headers: raw 3.
    StopAllIterationAndBuffer,
    /// Headers: raw 4.
    StopAllIterationAndWatermark,
    /// Body: raw 1 (the SDK's `Action::Pause`).
    StopIterationAndBuffer,
    /// Body: raw 2.
    StopIterationAndWatermark,
    /// Body: raw 3.
    StopIterationNoBuffer,
    /// A value Envoy does not know for this callback (Envoy treats it as `Continue`).
    Unknown(u32),
}

impl Action {
    pub fn decode(phase: Phase, raw: u32) -> Self {
        match raw {
            0 => Action::Continue,
            1 if phase.is_data() => Action::StopIterationAndBuffer,
            1 => Action::StopIteration,
            2 if phase.is_data() => Action::StopIterationAndWatermark,
            2 if phase.is_headers() => Action::ContinueAndEndStream,
            3 if phase.is_data() => Action::StopIterationNoBuffer,
            3 if phase.is_headers() => Action::StopAllIterationAndBuffer,
            4 if phase.is_headers() => Action::StopAllIterationAndWatermark,
            other => Action::Unknown(other),
        }
    }

    /// True for everything but `Continue` (and values Envoy maps to `Continue`).
    pub fn is_stop(self) -> bool {
        !matches!(
            self,
            Action::Continue | Action::ContinueAndEndStream | Action::Unknown(_)
        )
    }
}

/// Serialises header pairs in the proxy-wasm format: `u32 count`, then `count` times
/// `u32 key_len, u32 value_len`, then each key and value followed by a NUL byte.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.as_ref().len() + v.as_ref().len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Parses the proxy-wasm pairs format. `None` if the buffer is malformed (proxy-wasm-cpp-host
/// then silently uses an empty list; the harness records the anomaly).
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let count = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let mut sizes = Vec::with_capacity(count.min(1024));
    let mut p = 4usize;
    for _ in 0..count {
        let k = u32::from_le_bytes(bytes.get(p..p + 4)?.try_into().ok()?) as usize;
        let v = u32::from_le_bytes(bytes.get(p + 4..p + 8)?.try_into().ok()?) as usize;
        sizes.push((k, v));
        p += 8;
    }
    let mut out = Vec::with_capacity(count.min(1024));
    for (k, v) in sizes {
        let key = bytes.get(p..p + k)?.to_vec();
        if *bytes.get(p + k)? != 0 {
            return None;
        }
        p += k + 1;
        let value = bytes.get(p..p + v)?.to_vec();
        if *bytes.get(p + v)? != 0 {
            return None;
        }
        p += v + 1;
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_matches_sdk_layout() {
        let pairs = [(":method", "GET"), ("x", "")];
        let bytes = encode_pairs(&pairs);
        assert_eq!(
            bytes,
            [
                2, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b':', b'm', b'e', b't', b'h', b'o', b'd',
                0, b'G', b'E', b'T', 0, b'x', 0, 0
            ]
        );
        let back = decode_pairs(&bytes).unwrap();
        assert_eq!(back[0], (b":method".to_vec(), b"GET".to_vec()));
        assert_eq!(back[1], (b"x".to_vec(), Vec::new()));
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        assert!(decode_pairs(&[1, 0, 0]).is_none());
        assert!(decode_pairs(&[1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, b'a']).is_none());
        assert_eq!(decode_pairs(&[0, 0, 0, 0]).unwrap(), Vec::new());
    }

    #[test]
    fn actions_decode_per_phase() {
        assert_eq!(Action::decode(Phase::RequestBody, 1), Action::StopIterationAndBuffer);
        assert_eq!(Action::decode(Phase::RequestHeaders, 1), Action::StopIteration);
        assert_eq!(Action::decode(Phase::RequestTrailers, 3), Action::Unknown(3));
        assert!(!Action::decode(Phase::RequestHeaders, 0).is_stop());
    }
}
