//! Media types (`Content-Type` values) as aigate accepts them: strictly, because servers
//! and clients read a loose value differently, and the body must be read as aigate read it.

/// RFC 9110 `tchar`: what a media type's names and parameter names are made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The media type itself (`type/subtype`), before its parameters.
fn essence(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim_matches([' ', '\t'])
}

/// Parameters of a media type (`;`-separated), trimmed of HTTP whitespace.
fn parameters(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(';')
        .skip(1)
        .map(|p| p.trim_matches([' ', '\t']))
        .filter(|p| !p.is_empty())
}

/// Text whose `charset` parameter, if any, is `utf-8`, given at most once.
pub fn utf8_charset(value: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    let charsets: Vec<&str> = parameters(v)
        .filter_map(|p| p.split_once('='))
        .filter(|(name, _)| name.trim_matches([' ', '\t']).eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim_matches([' ', '\t', '"']))
        .collect();
    charsets.len() <= 1 && charsets.iter().all(|c| c.eq_ignore_ascii_case("utf-8"))
}

/// One media type, `application/json` or `application/…+json`, in UTF-8. Strict, because
/// servers read a loose value differently: Rack and PHP take `…/x-www-form-urlencoded,
/// application/json` or `…form-urlencoded +json` as a form, whose fields a body can also
/// hold (`{"x":"&amount=100000&"}`).
pub fn is_json_type(value: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    if v.contains(',') || !utf8_charset(value) {
        return false;
    }
    let essence = essence(v).to_ascii_lowercase();
    let Some(("application", subtype)) = essence.split_once('/') else {
        return false;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(is_tchar);
    let parameters_well_formed = parameters(v).all(|p| p.split_once('=').is_some_and(|(name, _)| token(name)));
    token(subtype) && (subtype == "json" || subtype.ends_with("+json")) && parameters_well_formed
}

/// `text/event-stream`, in UTF-8 (clients decode a stream by its declared charset: in
/// UTF-7, `+ACI-` is a quote aigate would not see).
pub fn is_event_stream(value: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(value) else {
        return false;
    };
    !v.contains(',') && utf8_charset(value) && essence(v).eq_ignore_ascii_case("text/event-stream")
}
