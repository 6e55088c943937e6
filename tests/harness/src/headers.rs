//! An ordered, multi-valued header map with Envoy's semantics.

use crate::abi::encode_pairs;

/// Header names are stored lower-cased (Envoy's `LowerCaseString`); values are raw bytes
/// (HTTP/1 allows obs-text, so a value need not be UTF-8). Order and duplicates are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

fn lower(key: &[u8]) -> String {
    String::from_utf8_lossy(key).to_ascii_lowercase()
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map, lower-casing names.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut map = Self::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// First value of `key` (what `proxy_get_header_map_value` returns in Envoy).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        let key = lower(key.as_ref());
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_slice())
    }

    /// First value of `key` as text (lossy for non-UTF-8 bytes).
    pub fn get_str(&self, key: impl AsRef<[u8]>) -> Option<String> {
        self.get(key).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// All values of `key`, in order.
    pub fn get_all(&self, key: impl AsRef<[u8]>) -> Vec<&[u8]> {
        let key = lower(key.as_ref());
        self.entries
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub fn contains(&self, key: impl AsRef<[u8]>) -> bool {
        self.get(key).is_some()
    }

    /// Envoy `addCopy`: appends, keeping existing values.
    pub fn add(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.entries.push((lower(key.as_ref()), value.as_ref().to_vec()));
    }

    /// Envoy `setCopy` (used by `proxy_replace_header_map_value`): replaces the value of the
    /// *first* entry with this name and leaves later duplicates alone; adds if absent.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = lower(key.as_ref());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value.as_ref().to_vec(),
            None => self.entries.push((key, value.as_ref().to_vec())),
        }
    }

    /// Removes every entry with this name.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        let key = lower(key.as_ref());
        self.entries.retain(|(k, _)| *k != key);
    }

    /// Replaces the whole map (Envoy `setHeaderMapPairs`: remove all, then `addCopy` each).
    pub fn replace_all(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>) {
        self.entries.clear();
        for (k, v) in pairs {
            self.add(k, v);
        }
    }

    /// The proxy-wasm pairs serialisation of this map.
    pub fn encode(&self) -> Vec<u8> {
        encode_pairs(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_first_only_like_envoy() {
        let mut m = HeaderMap::from_pairs([("X-A", "1"), ("x-a", "2")]);
        m.set("x-a", "3");
        assert_eq!(m.get_all("x-a"), vec![b"3".as_slice(), b"2".as_slice()]);
        m.remove("X-A");
        assert!(m.is_empty());
        m.set("new", "v");
        assert_eq!(m.get_str("NEW").as_deref(), Some("v"));
    }
}
