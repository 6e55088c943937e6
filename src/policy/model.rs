//! Model allow-list patterns: `gpt-4o` (exact), `claude-sonnet-4*` (prefix), `*` (any).

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Any,
    Prefix(String),
    Exact(String),
}

impl ModelPattern {
    pub fn parse(s: &str) -> Result<ModelPattern, String> {
        if s == "*" {
            return Ok(ModelPattern::Any);
        }
        if s.trim().is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} is not a model name"));
        }
        match s.strip_suffix('*') {
            Some(stem) if !stem.contains('*') => Ok(ModelPattern::Prefix(stem.to_string())),
            None if !s.contains('*') => Ok(ModelPattern::Exact(s.to_string())),
            _ => Err(format!("{s:?}: a model pattern may only end with '*'")),
        }
    }

    /// Model ids are compared exactly, as the providers do. A prefix covers the names that
    /// continue it within one path segment: routers and gateways that put the model in a
    /// URL (`/models/{model}`, a deployment path) would read `gpt-4o/../o1-pro` or
    /// `gpt-4o%2F..` as another model than the one the pattern meant.
    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Any => true,
            ModelPattern::Prefix(p) => model
                .strip_prefix(p.as_str())
                .is_some_and(|rest| !rest.contains(['/', '\\', '%', '?', '#']) && !rest.contains("..")),
            ModelPattern::Exact(e) => e == model,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let p = ModelPattern::parse("claude-sonnet-4*").unwrap();
        assert!(p.matches("claude-sonnet-4-5-20250929"));
        assert!(!p.matches("claude-opus-4"));
        assert!(ModelPattern::parse("gpt-4o").unwrap().matches("gpt-4o"));
        assert!(!ModelPattern::parse("gpt-4o").unwrap().matches("gpt-4o-mini"));
        assert!(ModelPattern::parse("*").unwrap().matches(""));
        // A prefix continues within one path segment.
        let p = ModelPattern::parse("gpt-4o*").unwrap();
        for other in [
            "gpt-4o/../o1-pro",
            "gpt-4o%2F..%2Fo1-pro",
            "gpt-4o\\x",
            "gpt-4o..x",
            "gpt-4o?x",
            "gpt-4o#x",
        ] {
            assert!(!p.matches(other), "{other}");
        }
        for same in ["gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4o.1", "gpt-4o:online"] {
            assert!(p.matches(same), "{same}");
        }
        let routed = ModelPattern::parse("openai/*").unwrap();
        assert!(routed.matches("openai/gpt-4o") && !routed.matches("openai/x/../../anthropic/claude"));
        for bad in ["", " ", "gpt*4", "*gpt", "a b"] {
            assert!(ModelPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
