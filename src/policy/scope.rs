//! Scope and intent patterns: `orders.read` (exact), `orders.*` (prefix), `*` (anything).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Any,
    /// Stored with the trailing dot: `orders.*` → `orders.`
    Prefix(String),
    Exact(String),
}

/// A pattern read in place, without copying the name: how a scope the policy does not
/// define is judged on every request (the token's text is the pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternRef<'a> {
    Any,
    /// With the trailing dot, as in [`Pattern::Prefix`].
    Prefix(&'a str),
    Exact(&'a str),
}

impl<'a> PatternRef<'a> {
    pub fn parse(s: &'a str) -> Result<PatternRef<'a>, String> {
        if s == "*" {
            return Ok(PatternRef::Any);
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} is not a scope or intent name"));
        }
        match s.strip_suffix('*') {
            Some(stem) if stem.ends_with('.') && !stem.contains('*') && stem.len() > 1 => Ok(PatternRef::Prefix(stem)),
            Some(_) => Err(format!(
                "{s:?}: a wildcard must be the whole last segment, as in \"orders.*\""
            )),
            None if s.contains('*') => Err(format!("{s:?}: a wildcard must be the whole last segment")),
            None => Ok(PatternRef::Exact(s)),
        }
    }

    pub fn matches(self, name: &str) -> bool {
        match self {
            PatternRef::Any => true,
            PatternRef::Prefix(p) => name.starts_with(p) && name.len() > p.len(),
            PatternRef::Exact(e) => e == name,
        }
    }
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        Ok(match PatternRef::parse(s)? {
            PatternRef::Any => Pattern::Any,
            PatternRef::Prefix(p) => Pattern::Prefix(p.to_string()),
            PatternRef::Exact(e) => Pattern::Exact(e.to_string()),
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.as_ref().matches(name)
    }

    fn as_ref(&self) -> PatternRef<'_> {
        match self {
            Pattern::Any => PatternRef::Any,
            Pattern::Prefix(p) => PatternRef::Prefix(p),
            Pattern::Exact(e) => PatternRef::Exact(e),
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
