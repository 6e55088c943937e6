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

    /// Model ids are compared exactly, as the providers do.
    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Any => true,
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()),
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
        for bad in ["", " ", "gpt*4", "*gpt", "a b"] {
            assert!(ModelPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
