//! User and group resolution from `/etc/passwd` and `/etc/group`.
//!
//! svmgr is a static binary, so it cannot rely on NSS; it reads the two files itself (the
//! root directory is a parameter so tests use a temp dir). A failure here aborts the start:
//! a service never runs as root by accident.

use std::path::Path;

use dynamod_config::{IdSpec, UserSpec};

/// Credentials a service runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the user's groups from `/etc/group` plus the configured ones).
    pub groups: Vec<u32>,
    /// User name, for `USER`/`LOGNAME`.
    pub name: String,
    /// Home directory, for `HOME`.
    pub home: String,
    /// Login shell, for `SHELL`.
    pub shell: String,
}

/// Why credentials could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// No such user in the passwd file.
    #[error("unknown user '{0}'")]
    UnknownUser(String),
    /// No such group in the group file.
    #[error("unknown group '{0}'")]
    UnknownGroup(String),
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, String),
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Shell.
    pub shell: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Member user names.
    pub members: Vec<String>,
}

/// Parses passwd(5) text; malformed lines are skipped.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect()
}

/// Parses group(5) text; malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

fn read(etc: &Path, file: &str) -> Result<String, UserError> {
    let p = etc.join(file);
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(t),
        // A missing file only matters if a name must be looked up in it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(UserError::Read(p.display().to_string(), e.to_string())),
    }
}

/// Resolves a `[service.user]` table against `etc/passwd` and `etc/group`.
pub fn resolve(spec: &UserSpec, etc: &Path) -> Result<Credentials, UserError> {
    let passwd = parse_passwd(&read(etc, "passwd")?);
    let groups = parse_group(&read(etc, "group")?);
    resolve_with(spec, &passwd, &groups)
}

/// [`resolve`] on already parsed files.
pub fn resolve_with(
    spec: &UserSpec,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<Credentials, UserError> {
    let user = match &spec.user {
        None => None,
        Some(IdSpec::Name(n)) => Some(
            passwd
                .iter()
                .find(|p| &p.name == n)
                .cloned()
                .ok_or_else(|| UserError::UnknownUser(n.clone()))?,
        ),
        Some(IdSpec::Id(uid)) => Some(passwd.iter().find(|p| p.uid == *uid).cloned().unwrap_or(
            PasswdEntry {
                name: uid.to_string(),
                uid: *uid,
                // A numeric user without a passwd entry and without a group gets the
                // conventional "nogroup" rather than keeping root's gid 0.
                gid: 65534,
                home: "/".to_owned(),
                shell: "/bin/sh".to_owned(),
            },
        )),
    };
    let lookup_group = |g: &IdSpec| -> Result<u32, UserError> {
        match g {
            IdSpec::Id(id) => Ok(*id),
            IdSpec::Name(n) => groups
                .iter()
                .find(|e| &e.name == n)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::UnknownGroup(n.clone())),
        }
    };
    let gid = match (&spec.group, &user) {
        (Some(g), _) => lookup_group(g)?,
        (None, Some(u)) => u.gid,
        (None, None) => 0,
    };
    let mut supp: Vec<u32> = Vec::new();
    if let Some(u) = &user {
        // initgroups(3): every group listing the user, plus the primary group.
        supp.push(u.gid);
        supp.extend(
            groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == &u.name))
                .map(|g| g.gid),
        );
    }
    for g in &spec.supplementary_groups {
        supp.push(lookup_group(g)?);
    }
    supp.sort_unstable();
    supp.dedup();
    let u = user.unwrap_or(PasswdEntry {
        name: "root".to_owned(),
        uid: 0,
        gid,
        home: "/root".to_owned(),
        shell: "/bin/sh".to_owned(),
    });
    Ok(Credentials {
        uid: u.uid,
        gid,
        groups: supp,
        name: u.name,
        home: u.home,
        shell: u.shell,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        broken line\n";
    const GROUP: &str =
        "root:x:0:\ndaemon:x:1:\nadm:x:4:nobody,daemon\nnogroup:x:65534:\nvideo:x:44:\n";

    fn spec(user: Option<IdSpec>, group: Option<IdSpec>, supp: Vec<IdSpec>) -> UserSpec {
        UserSpec {
            user,
            group,
            supplementary_groups: supp,
        }
    }

    fn resolve_t(s: &UserSpec) -> Result<Credentials, UserError> {
        resolve_with(s, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn named_user_gets_primary_and_member_groups() {
        let c = resolve_t(&spec(Some(IdSpec::Name("nobody".into())), None, vec![])).unwrap();
        assert_eq!((c.uid, c.gid), (65534, 65534));
        assert_eq!(c.groups, vec![4, 65534]);
        assert_eq!(c.home, "/nonexistent");
    }

    #[test]
    fn explicit_group_and_supplementary_groups_apply() {
        let c = resolve_t(&spec(
            Some(IdSpec::Name("daemon".into())),
            Some(IdSpec::Name("video".into())),
            vec![IdSpec::Id(1000)],
        ))
        .unwrap();
        assert_eq!(c.gid, 44);
        assert_eq!(c.groups, vec![1, 4, 1000]);
    }

    #[test]
    fn unknown_user_and_group_are_errors() {
        assert_eq!(
            resolve_t(&spec(Some(IdSpec::Name("ghost".into())), None, vec![])),
            Err(UserError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            resolve_t(&spec(None, Some(IdSpec::Name("ghosts".into())), vec![])),
            Err(UserError::UnknownGroup("ghosts".into()))
        );
    }

    #[test]
    fn numeric_user_without_entry_does_not_keep_gid_zero() {
        let c = resolve_t(&spec(Some(IdSpec::Id(4242)), None, vec![])).unwrap();
        assert_eq!((c.uid, c.gid), (4242, 65534));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(parse_passwd(PASSWD).len(), 3);
        assert_eq!(parse_group("a:x:notanumber:\nb:x:2:\n").len(), 1);
    }
}
