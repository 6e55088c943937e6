//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for an MCP route: the document that
//! tells an MCP client which authorization servers issue tokens for this endpoint, served
//! by aigate at the well-known path, and the `resource_metadata` its 401 and 403
//! challenges point at. MCP's authorization specification asks every server for both, and
//! clients that sign users in (OAuth) start from them.

use crate::config::ProtectedResourceDoc;

/// Where RFC 9728 serves the metadata: this, then the resource's path.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedResource {
    /// The path the document is served at (`/.well-known/oauth-protected-resource/mcp`).
    pub path: String,
    /// That document's URL: the `resource_metadata` of challenges.
    pub url: String,
    /// The document, as served.
    pub document: String,
}

/// An URL's origin (`https://host[:port]`) and path (`""` for none), when it is one a
/// client may be sent to: `https`, or `http` to a loopback host (local testing), with no
/// query, fragment or user information.
pub fn split_url(url: &str) -> Result<(&str, &str), &'static str> {
    let (scheme, rest) = url.split_once("://").ok_or("must be an absolute https URL")?;
    // It is quoted in challenges: nothing that would end or escape the quote.
    if url.contains(['?', '#', '"', '\\']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must carry no query, fragment, quote, backslash or whitespace");
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(host_end);
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host (and no user information)");
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "::1");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL (http only to a loopback host)"),
    }
    let origin = url.get(..scheme.len() + 3 + authority.len()).unwrap_or(url);
    Ok((origin, path))
}

/// The metadata for `doc`, its authorization servers defaulting to `issuers` (the policy's
/// token issuers). Errors name the field and what is wrong.
pub fn compile(doc: &ProtectedResourceDoc, issuers: &[String]) -> Result<ProtectedResource, (&'static str, String)> {
    let (origin, path) = split_url(&doc.resource).map_err(|m| ("resource", m.to_string()))?;
    // RFC 9728 §3.1: the well-known part goes between the host and the path; a lone `/`
    // after the host is no path.
    let path = if path == "/" { "" } else { path };
    let servers = if doc.authorization_servers.is_empty() {
        issuers.to_vec()
    } else {
        doc.authorization_servers.clone()
    };
    if servers.is_empty() {
        return Err((
            "authorization_servers",
            "required when the policy names no token issuer (identity.source jwt_authn)".into(),
        ));
    }
    for server in &servers {
        split_url(server).map_err(|m| ("authorization_servers", format!("{server:?} {m}")))?;
    }
    if doc
        .scopes_supported
        .iter()
        .any(|s| s.is_empty() || s.contains([' ', '"', '\\']))
    {
        return Err((
            "scopes_supported",
            "a scope is a non-empty name without spaces or quotes".into(),
        ));
    }
    let mut document = serde_json::json!({
        "resource": doc.resource,
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
    });
    if !doc.scopes_supported.is_empty() {
        if let Some(m) = document.as_object_mut() {
            m.insert("scopes_supported".into(), serde_json::json!(doc.scopes_supported));
        }
    }
    let path = format!("{WELL_KNOWN}{path}");
    Ok(ProtectedResource {
        url: format!("{origin}{path}"),
        path,
        document: document.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(resource: &str, servers: &[&str]) -> ProtectedResourceDoc {
        ProtectedResourceDoc {
            resource: resource.into(),
            authorization_servers: servers.iter().map(|s| s.to_string()).collect(),
            scopes_supported: vec![],
        }
    }

    #[test]
    fn the_document_is_served_below_the_well_known_path_of_the_resource() {
        let m = compile(
            &doc("https://gw.example.com/mcp", &[]),
            &["https://idp.example.com".into()],
        )
        .unwrap();
        assert_eq!(m.path, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(m.url, "https://gw.example.com/.well-known/oauth-protected-resource/mcp");
        let v: serde_json::Value = serde_json::from_str(&m.document).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resource": "https://gw.example.com/mcp",
                "authorization_servers": ["https://idp.example.com"], "bearer_methods_supported": ["header"]})
        );
        let root = compile(&doc("https://gw.example.com:8443/", &["https://a.example"]), &[]).unwrap();
        assert_eq!(
            root.url,
            "https://gw.example.com:8443/.well-known/oauth-protected-resource"
        );
        assert!(compile(&doc("http://127.0.0.1:8080/mcp", &["http://localhost:9000"]), &[]).is_ok());
    }

    #[test]
    fn urls_a_client_must_not_be_sent_to_are_refused() {
        for bad in [
            "gw.example.com/mcp",
            "http://gw.example.com/mcp",
            "https://gw.example.com/mcp?x=1",
            "https://gw.example.com/mcp#f",
            "https://gw.example.com/m\"cp",
            "https://user@gw.example.com/mcp",
            "https:///mcp",
            "ftp://gw.example.com/",
        ] {
            assert_eq!(
                compile(&doc(bad, &["https://idp"]), &[]).unwrap_err().0,
                "resource",
                "{bad}"
            );
        }
        assert_eq!(
            compile(&doc("https://gw/mcp", &[]), &[]).unwrap_err().0,
            "authorization_servers"
        );
        assert_eq!(
            compile(&doc("https://gw/mcp", &["http://idp.example.com"]), &[])
                .unwrap_err()
                .0,
            "authorization_servers"
        );
    }
}
