//! Maps and sets keyed by name, as plain vectors searched from the end.
//!
//! init's lookup tables (the kernel module index in phase A, the devices already tried) are
//! built once and then asked a few dozen to a few hundred questions. `HashMap` would bring
//! hashbrown and std's randomly keyed SipHash into PID 1, about 10 KiB of code, and sorting the
//! entries for binary search about as much again (every sort is its own instance). A linear
//! scan costs far less than what surrounds each lookup: resolving a modalias already matches
//! it against every alias glob of the module tree.

/// A map from names to values. When a name was given twice, the later value counts, as after
/// one insert following the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<V> NameMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `pairs`, in any order; of pairs with the same name the last one counts.
    pub fn from_pairs(pairs: Vec<(String, V)>) -> Self {
        Self { entries: pairs }
    }

    /// Where the value of `name` is: the last entry with that name.
    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().rposition(|(k, _)| k == name)
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        let i = self.position(name)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets the value of `name`, replacing any earlier one.
    pub fn insert(&mut self, name: &str, value: V) {
        match self.position(name).and_then(|i| self.entries.get_mut(i)) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((name.to_owned(), value)),
        }
    }

    /// Applies `change` to the value of `name`, inserted as `V::default()` first if it has none.
    pub fn update(&mut self, name: &str, change: impl FnOnce(&mut V))
    where
        V: Default,
    {
        if !self.contains_key(name) {
            self.entries.push((name.to_owned(), V::default()));
        }
        if let Some((_, v)) = self.position(name).and_then(|i| self.entries.get_mut(i)) {
            change(v);
        }
    }

    /// Number of entries (a name given twice counts twice; depmod's files repeat none).
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
impl<V> std::ops::Index<&str> for NameMap<V> {
    type Output = V;

    fn index(&self, name: &str) -> &V {
        match self.get(name) {
            Some(v) => v,
            None => panic!("no entry {name}"),
        }
    }
}

/// A set of names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet {
    names: Vec<String>,
}

impl NameSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name`; returns whether it was new.
    pub fn insert(&mut self, name: &str) -> bool {
        if self.contains(name) {
            return false;
        }
        self.names.push(name.to_owned());
        true
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Number of names.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.names.len()
    }
}

impl FromIterator<String> for NameSet {
    /// Keeps every name as given: a repeated name is found all the same.
    fn from_iter<I: IntoIterator<Item = String>>(names: I) -> Self {
        Self {
            names: names.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_what_was_built_in_any_order() {
        let m = NameMap::from_pairs(
            ["virtio", "ext4", "jbd2", "crc16", "a", "zz"]
                .iter()
                .enumerate()
                .map(|(i, n)| ((*n).to_owned(), i))
                .collect(),
        );
        assert_eq!(m.len(), 6);
        assert_eq!(m.get("virtio"), Some(&0));
        assert_eq!(m.get("zz"), Some(&5));
        assert_eq!(m.get("ext"), None);
        assert!(m.contains_key("a") && !m.contains_key(""));
    }

    #[test]
    fn the_last_of_repeated_names_counts_as_with_inserts() {
        let pairs: Vec<(String, i32)> = vec![
            ("b".into(), 1),
            ("a".into(), 2),
            ("b".into(), 3),
            ("c".into(), 4),
            ("b".into(), 5),
            ("a".into(), 6),
        ];
        let built = NameMap::from_pairs(pairs.clone());
        let mut inserted = NameMap::new();
        for (k, v) in pairs {
            inserted.insert(&k, v);
        }
        for m in [&built, &inserted] {
            assert_eq!((m["a"], m["b"], m["c"]), (6, 5, 4));
        }
        assert_eq!(inserted.len(), 3, "inserts replace");
    }

    #[test]
    fn update_inserts_a_default_once() {
        let mut m: NameMap<Vec<i32>> = NameMap::new();
        m.update("m", |v| v.push(1));
        m.update("b", |v| v.push(2));
        m.update("m", |v| v.push(3));
        assert_eq!(m["m"], [1, 3]);
        assert_eq!(m["b"], [2]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn sets_report_whether_a_name_was_new() {
        let mut s: NameSet = ["x".to_owned(), "y".to_owned()].into_iter().collect();
        assert!(!s.insert("y"));
        assert!(s.insert("a"));
        assert!(s.contains("a") && s.contains("x") && !s.contains("b"));
        assert_eq!(s.len(), 3);
    }
}
