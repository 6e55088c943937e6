//! Redirects in answers. An answer aigate judges may instead send the client elsewhere:
//! the LLM SDKs (httpx, `follow_redirects`) and fetch-based MCP clients follow a `307`
//! or `308` with the whole request, conversation included, to wherever `Location` points.
//! What comes back from another origin never passes through the gateway, so it is never
//! judged. A redirect that stays on the request's origin comes back through the gateway.

/// Whether `location` (the answer's `Location` header: `Err` when it is given more than
/// once) leads off the origin the request was made to (`scheme`, `authority`). A
/// reference without a scheme or authority (`/v2/chat`, `v2/chat`, `?page=2`) stays on it;
/// an absolute URL stays only with the same scheme and authority. Anything else, or
/// anything that is not plain visible ASCII, leads off it: clients resolve odd references
/// differently (a backslash is a slash to WHATWG URL parsers).
pub fn leaves_origin(location: Result<Option<&[u8]>, crate::request::Repeated>, scheme: &str, authority: &str) -> bool {
    let Ok(location) = location else {
        return true;
    };
    let Some(location) = location else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(location) else {
        return true;
    };
    let text = text.trim_matches([' ', '\t']);
    if !text.bytes().all(|b| b.is_ascii_graphic()) || text.contains('\\') {
        return true;
    }
    if text.starts_with("//") {
        return true;
    }
    // A scheme is letters, digits, `+`, `-` and `.` before the first `:`, ahead of any `/`, `?` or `#`.
    let first_colon = text.find(':');
    let first_delimiter = text.find(['/', '?', '#']);
    let has_scheme = match (first_colon, first_delimiter) {
        (Some(c), Some(d)) => c < d,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !has_scheme {
        return false;
    }
    let Some((their_scheme, rest)) = text.split_once("://") else {
        return true; // `mailto:`, `data:`, `http:x`: not a URL on this origin
    };
    let their_authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !(their_scheme.eq_ignore_ascii_case(scheme) && their_authority.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(location: &str) -> bool {
        leaves_origin(Ok(Some(location.as_bytes())), "https", "gateway.example.com")
    }

    #[test]
    fn redirects_on_the_origin_stay() {
        for l in [
            "/v2/chat/completions",
            "v2/chat",
            "?page=2",
            "#top",
            "https://gateway.example.com/v1/messages",
            "HTTPS://Gateway.Example.com?x=1",
        ] {
            assert!(!leaves(l), "{l}");
        }
        assert!(!leaves_origin(Ok(None), "https", "gateway.example.com"), "no Location");
    }

    #[test]
    fn redirects_elsewhere_leave() {
        for l in [
            "https://evil.example/v1/chat/completions",
            "http://gateway.example.com/v1/messages",
            "https://gateway.example.com:8443/",
            "https://gateway.example.com.evil.example/",
            "https://gateway.example.com@evil.example/",
            "//evil.example/x",
            "/\\evil.example/x",
            "\\\\evil.example",
            "javascript:alert(1)",
            "data:text/plain,hi",
            "/a b",
            "/caf\u{e9}",
        ] {
            assert!(leaves(l), "{l}");
        }
        assert!(leaves_origin(
            Err(crate::request::Repeated),
            "https",
            "gateway.example.com"
        ));
        assert!(leaves_origin(Ok(Some(b"/\xff")), "https", "gateway.example.com"));
    }
}
