//! Scope and intent patterns: `orders.read` (exact), `orders.*` (prefix), `*` (anything).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Any,
    /// Stored with the trailing dot: `orders.*` → `orders.`
    Prefix(String),
    Exact(String),
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s == "*" {
            return Ok(Pattern::Any);
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} is not a scope or intent name"));
        }
        match s.strip_suffix('*') {
            Some(stem) if stem.ends_with('.') && !stem.contains('*') && stem.len() > 1 => {
                Ok(Pattern::Prefix(stem.to_string()))
            }
            Some(_) => Err(format!(
                "{s:?}: a wildcard must be the whole last segment, as in \"orders.*\""
            )),
            None if s.contains('*') => Err(format!("{s:?}: a wildcard must be the whole last segment")),
            None => Ok(Pattern::Exact(s.to_string())),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(p) => name.starts_with(p.as_str()) && name.len() > p.len(),
            Pattern::Exact(e) => e == name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = Pattern::parse("orders.*").unwrap();
        assert!(p.matches("orders.read"));
        assert!(p.matches("orders.refund.partial"));
        assert!(!p.matches("orders."));
        assert!(!p.matches("ordersx.read"));
        assert!(Pattern::parse("*").unwrap().matches("x"));
        assert!(Pattern::parse("orders.read").unwrap().matches("orders.read"));
        assert!(!Pattern::parse("orders.read").unwrap().matches("orders.readx"));
        for bad in ["", "or*", "*.read", "orders.*.x", "a b", ".*"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
