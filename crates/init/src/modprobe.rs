//! Loading the kernel modules the root device needs, from the module tree in the initramfs
//! (`/lib/modules/<release>`), without udev or modprobe.
//!
//! The index files are depmod's text formats:
//! - `modules.dep`: `kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko` (the
//!   module's whole dependency closure);
//! - `modules.alias`: `alias virtio:d00000002v* virtio_blk` (shell globs over modaliases and
//!   names such as `fs-ext4`);
//! - `modules.softdep`: `softdep ext4 pre: crc32c`;
//! - `modules.builtin`: modules compiled into the kernel (nothing to load).
//!
//! Hardware modules are found the way udev's coldplug finds them: every `modalias` file under
//! `/sys/devices` is matched against the aliases, and loading a bus driver makes new devices
//! (and new modaliases) appear, so the caller repeats until nothing new shows up. Filesystems
//! are loaded by their `fs-<type>` alias before mounting.

use std::path::{Path, PathBuf};

use crate::names::{NameMap, NameSet};

/// One module of `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    /// Path relative to the module directory.
    pub path: PathBuf,
    /// Names of the modules it depends on.
    pub deps: Vec<String>,
}

/// The parsed index of a module directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIndex {
    /// The module directory (`/lib/modules/<release>`).
    pub dir: PathBuf,
    /// By module name.
    pub modules: NameMap<DepEntry>,
    /// (pattern, module name), in file order.
    pub aliases: Vec<(String, String)>,
    /// Module name → (pre, post) soft dependencies (names or aliases).
    pub softdeps: NameMap<(Vec<String>, Vec<String>)>,
    /// Names of built-in modules.
    pub builtin: NameSet,
}

/// The module name of a `.ko` path: the file name without `.ko[.xz|.zst|.gz]`, with `-`
/// written `_` as the kernel does.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// Module names treat `-` and `_` alike; the kernel uses `_`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Parses `modules.dep`.
pub fn parse_dep(text: &str) -> NameMap<DepEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() || path.starts_with('#') {
            continue;
        }
        let deps = deps.split_whitespace().map(module_name).collect();
        out.push((
            module_name(path),
            DepEntry {
                path: PathBuf::from(path),
                deps,
            },
        ));
    }
    NameMap::from_pairs(out)
}

/// Parses `modules.alias`.
pub fn parse_alias(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("alias"), Some(pattern), Some(module)) => {
                    Some((pattern.to_owned(), normalize(module)))
                }
                _ => None,
            }
        })
        .collect()
}

/// Parses `modules.softdep`.
pub fn parse_softdep(text: &str) -> NameMap<(Vec<String>, Vec<String>)> {
    let mut out: NameMap<(Vec<String>, Vec<String>)> = NameMap::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("softdep") {
            continue;
        }
        let Some(module) = w.next() else { continue };
        out.update(&normalize(module), |entry| {
            let mut post = false;
            for word in w {
                match word {
                    "pre:" => post = false,
                    "post:" => post = true,
                    name if post => entry.1.push(name.to_owned()),
                    name => entry.0.push(name.to_owned()),
                }
            }
        });
    }
    out
}

/// Parses `modules.builtin` (one path per line).
pub fn parse_builtin(text: &str) -> NameSet {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

/// Shell-style glob match (`*`, `?`, `[…]` with ranges and `!`/`^` negation), as
/// fnmatch(3) without flags.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index it took up to).
    let mut resume: Option<(usize, usize)> = None;
    while let Some(&c) = t.get(ti) {
        let advanced = match p.get(pi) {
            Some(b'*') => {
                resume = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => class_match(p, pi, c),
            Some(&x) => (x == c).then_some(1),
            None => None,
        };
        match (advanced, resume) {
            (Some(len), _) => {
                pi += len;
                ti += 1;
            }
            // Let the last `*` swallow one more character and try again from there.
            (None, Some((after_star, taken))) => {
                pi = after_star;
                ti = taken + 1;
                resume = Some((after_star, taken + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Matches `c` against the bracket expression starting at `p[start]` (`[`). Returns the
/// expression's length when `c` is in it, `None` when not (or when the bracket is unclosed
/// and `c` is not a literal `[`).
fn class_match(p: &[u8], start: usize, c: u8) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let &x = p.get(i)?;
        if x == b']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&b'-')
            && let Some(&hi) = p.get(i + 2)
            && hi != b']'
        {
            if (x..=hi).contains(&c) {
                found = true;
            }
            i += 3;
        } else {
            if x == c {
                found = true;
            }
            i += 1;
        }
    }
    (found != negate).then_some(i + 1 - start)
}

impl ModuleIndex {
    /// Reads the index of `dir`; `None` when there is no `modules.dep` (no module tree).
    pub fn read(dir: &Path) -> Option<Self> {
        let text = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let dep = std::fs::read_to_string(dir.join("modules.dep")).ok()?;
        Some(Self {
            dir: dir.to_owned(),
            modules: parse_dep(&dep),
            aliases: parse_alias(&text("modules.alias")),
            softdeps: parse_softdep(&text("modules.softdep")),
            builtin: parse_builtin(&text("modules.builtin")),
        })
    }

    /// The modules a name or alias stands for: the module itself when it exists (or is
    /// built in), else every module with a matching alias.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        let n = normalize(name);
        if self.modules.contains_key(&n) || self.builtin.contains(&n) {
            return vec![n];
        }
        let mut out: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if glob_match(pattern, name) && !out.contains(module) {
                out.push(module.clone());
            }
        }
        out
    }
}

/// The kernel side of loading, behind a trait so the ordering logic is tested without a
/// kernel.
pub trait Kernel {
    /// Whether a module of this name is loaded (`/sys/module/<name>`).
    fn is_loaded(&self, name: &str) -> bool;
    /// Loads the module file; `Err` carries a one-line reason.
    fn load(&mut self, path: &Path) -> Result<(), String>;
}

/// The running kernel.
#[derive(Debug, Default)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn is_loaded(&self, name: &str) -> bool {
        Path::new("/sys/module")
            .join(name)
            .join("initstate")
            .exists()
    }

    fn load(&mut self, path: &Path) -> Result<(), String> {
        dynamod_sys::kmod::load_file(path, "")
            .map(|_| ())
            .map_err(|e| crate::setup::chain(&e))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Loading,
    Loaded,
    Failed,
}

/// Loads modules in dependency order, each at most once.
#[derive(Debug)]
pub struct Loader<K: Kernel> {
    index: ModuleIndex,
    kernel: K,
    state: NameMap<State>,
    /// Modalias strings already handled.
    seen_aliases: NameSet,
    /// Modules this loader inserted, in order.
    pub loaded: Vec<String>,
    /// Failures, one line each, for the log.
    pub failures: Vec<String>,
}

impl<K: Kernel> Loader<K> {
    /// A loader over `index`.
    pub fn new(index: ModuleIndex, kernel: K) -> Self {
        Self {
            index,
            kernel,
            state: NameMap::new(),
            seen_aliases: NameSet::new(),
            loaded: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Loads what `name` (a module name or alias) stands for, with its dependencies. Returns
    /// whether at least one module is now present (loaded or built in).
    pub fn load(&mut self, name: &str) -> bool {
        let modules = self.index.resolve(name);
        let mut any = false;
        for m in modules {
            any |= self.load_module(&m);
        }
        any
    }

    fn load_module(&mut self, name: &str) -> bool {
        match self.state.get(name) {
            Some(State::Loaded) => return true,
            Some(State::Failed) => return false,
            // A dependency cycle (broken index): do not recurse forever.
            Some(State::Loading) => return false,
            None => {}
        }
        if self.index.builtin.contains(name) || self.kernel.is_loaded(name) {
            self.state.insert(name, State::Loaded);
            return true;
        }
        let Some(entry) = self.index.modules.get(name).cloned() else {
            self.state.insert(name, State::Failed);
            return false;
        };
        self.state.insert(name, State::Loading);
        let (pre, post) = self.index.softdeps.get(name).cloned().unwrap_or_default();
        for s in &pre {
            // Soft dependencies are best effort by definition.
            self.load(s);
        }
        for d in &entry.deps {
            if !self.load_module(d) {
                self.failures
                    .push(format!("{name}: dependency {d} could not be loaded"));
                self.state.insert(name, State::Failed);
                return false;
            }
        }
        let ok = match self.kernel.load(&self.index.dir.join(&entry.path)) {
            Ok(()) => {
                self.loaded.push(name.to_owned());
                true
            }
            Err(why) => {
                self.failures.push(format!("{name}: {why}"));
                false
            }
        };
        self.state
            .insert(name, if ok { State::Loaded } else { State::Failed });
        for s in &post {
            self.load(s);
        }
        ok
    }

    /// Loads the modules of every modalias not seen before; returns how many modules were
    /// inserted.
    pub fn load_for_modaliases(&mut self, modaliases: &[String]) -> usize {
        let before = self.loaded.len();
        for alias in modaliases {
            if self.seen_aliases.insert(alias) {
                self.load(alias);
            }
        }
        self.loaded.len() - before
    }
}

/// Every non-empty `modalias` under `sys_devices` (normally `/sys/devices`), without following
/// symlinks. Sorted and deduplicated.
pub fn device_modaliases(sys_devices: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![sys_devices.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file()
                && e.file_name() == "modalias"
                && let Ok(text) = std::fs::read_to_string(e.path())
            {
                let t = text.trim();
                if !t.is_empty() {
                    out.push(t.to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_drop_directories_suffixes_and_dashes() {
        assert_eq!(module_name("kernel/fs/ext4/ext4.ko"), "ext4");
        assert_eq!(module_name("kernel/x/crc32c-intel.ko.xz"), "crc32c_intel");
        assert_eq!(module_name("virtio_blk.ko.zst"), "virtio_blk");
    }

    #[test]
    fn depmod_files_parse() {
        let dep = parse_dep(
            "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/lib/crc16.ko\n\
             kernel/lib/crc16.ko:\n# comment: x\n",
        );
        assert_eq!(dep["ext4"].deps, ["jbd2", "crc16"]);
        assert_eq!(dep["ext4"].path, Path::new("kernel/fs/ext4/ext4.ko"));
        assert!(dep["crc16"].deps.is_empty());
        assert_eq!(dep.len(), 2);
        let alias = parse_alias("# Aliases\nalias fs-ext4 ext4\nalias pci:v*d* virtio-pci\nbad\n");
        assert_eq!(
            alias,
            [
                ("fs-ext4".to_owned(), "ext4".to_owned()),
                ("pci:v*d*".to_owned(), "virtio_pci".to_owned())
            ]
        );
        let soft = parse_softdep("softdep ext4 pre: crc32c post: x y\nsoftdep a pre: b\n");
        assert_eq!(
            soft["ext4"],
            (
                vec!["crc32c".to_owned()],
                vec!["x".to_owned(), "y".to_owned()]
            )
        );
        let builtin = parse_builtin("kernel/a/b-c.ko\n\n");
        assert!(builtin.contains("b_c"));
        assert_eq!(builtin.len(), 1);
    }

    #[test]
    fn globs_match_like_fnmatch() {
        let yes = [
            ("virtio:d00000002v*", "virtio:d00000002v00001AF4"),
            (
                "pci:v00001AF4d*sv*sd*bc*sc*i*",
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
            ),
            ("*", ""),
            ("a?c", "abc"),
            ("scsi:t-0x0[45]*", "scsi:t-0x05"),
            ("x[!0-9]y", "xay"),
            ("x[a-c]", "xb"),
            ("[]]", "]"),
            ("a*b*c", "aXXbYYc"),
        ];
        for (p, t) in yes {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        let no = [
            ("virtio:d00000002v*", "virtio:d00000001v00001AF4"),
            ("a?c", "ac"),
            ("x[!0-9]y", "x5y"),
            ("x[a-c]", "xd"),
            ("abc", "abcd"),
            ("a*b*c", "aXXbYY"),
            ("[abc", "a"),
        ];
        for (p, t) in no {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }

    #[derive(Default)]
    struct FakeKernel {
        loaded: Vec<String>,
        refuse: Vec<String>,
        present: Vec<String>,
    }

    impl Kernel for FakeKernel {
        fn is_loaded(&self, name: &str) -> bool {
            self.present.iter().any(|p| p == name)
        }

        fn load(&mut self, path: &Path) -> Result<(), String> {
            let name = module_name(&path.to_string_lossy());
            if self.refuse.contains(&name) {
                return Err("ENODEV".into());
            }
            self.loaded.push(name);
            Ok(())
        }
    }

    fn index() -> ModuleIndex {
        ModuleIndex {
            dir: PathBuf::from("/lib/modules/6.1"),
            modules: parse_dep(
                "kernel/virtio_blk.ko: kernel/virtio.ko kernel/virtio_ring.ko\n\
                 kernel/virtio_ring.ko: kernel/virtio.ko\n\
                 kernel/virtio.ko:\n\
                 kernel/ext4.ko: kernel/jbd2.ko\n\
                 kernel/jbd2.ko:\n\
                 kernel/crc32c_generic.ko:\n\
                 kernel/crc32c-intel.ko:\n\
                 kernel/broken.ko:\n\
                 kernel/needs_broken.ko: kernel/broken.ko\n",
            ),
            aliases: parse_alias(
                "alias virtio:d00000002v* virtio_blk\nalias fs-ext4 ext4\n\
                 alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c-intel\n\
                 alias crc32c crc32c_generic\n",
            ),
            softdeps: parse_softdep("softdep ext4 pre: crc32c\n"),
            builtin: parse_builtin("kernel/loop.ko\n"),
        }
    }

    #[test]
    fn dependencies_load_first_whatever_their_listed_order() {
        let mut l = Loader::new(index(), FakeKernel::default());
        assert!(l.load("virtio_blk"));
        assert_eq!(l.kernel.loaded, ["virtio", "virtio_ring", "virtio_blk"]);
        assert!(
            l.load("virtio-blk"),
            "dashes and underscores are the same name"
        );
        assert_eq!(l.kernel.loaded.len(), 3, "nothing is loaded twice");
    }

    #[test]
    fn aliases_and_soft_dependencies_are_followed() {
        let mut l = Loader::new(index(), FakeKernel::default());
        assert!(l.load("fs-ext4"));
        assert_eq!(l.kernel.loaded, ["crc32c_generic", "jbd2", "ext4"]);
        let mut l = Loader::new(index(), FakeKernel::default());
        assert!(l.load("crypto-crc32c"));
        assert_eq!(l.kernel.loaded, ["crc32c_generic", "crc32c_intel"]);
    }

    #[test]
    fn builtin_and_already_loaded_modules_count_as_present() {
        let kernel = FakeKernel {
            present: vec!["virtio".into()],
            ..FakeKernel::default()
        };
        let mut l = Loader::new(index(), kernel);
        assert!(l.load("loop"));
        assert!(l.load("virtio_blk"));
        assert_eq!(l.kernel.loaded, ["virtio_ring", "virtio_blk"]);
    }

    #[test]
    fn failures_are_reported_and_not_retried() {
        let kernel = FakeKernel {
            refuse: vec!["broken".into()],
            ..FakeKernel::default()
        };
        let mut l = Loader::new(index(), kernel);
        assert!(!l.load("needs_broken"));
        assert!(!l.load("needs_broken"));
        assert_eq!(l.failures.len(), 2, "{:?}", l.failures);
        assert!(l.failures[0].starts_with("broken: ENODEV"));
        assert!(!l.load("no-such-module"));
    }

    #[test]
    fn modaliases_are_handled_once() {
        let mut l = Loader::new(index(), FakeKernel::default());
        let aliases = vec![
            "virtio:d00000002v00001AF4".to_owned(),
            "pci:v00008086d00007010sv*".to_owned(),
        ];
        assert_eq!(l.load_for_modaliases(&aliases), 3);
        assert_eq!(l.load_for_modaliases(&aliases), 0);
    }

    #[test]
    fn modalias_scan_finds_files_in_a_tree() {
        let d = std::env::temp_dir().join(format!("dynamod-modalias-{}", std::process::id()));
        std::fs::create_dir_all(d.join("pci0/virtio1")).unwrap();
        std::fs::write(d.join("pci0/modalias"), "pci:v1\n").unwrap();
        std::fs::write(d.join("pci0/virtio1/modalias"), "virtio:d2\n").unwrap();
        std::fs::write(d.join("pci0/virtio1/other"), "x").unwrap();
        std::fs::write(d.join("empty_modalias_dir_file"), "").unwrap();
        assert_eq!(device_modaliases(&d), ["pci:v1", "virtio:d2"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
