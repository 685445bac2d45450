//! Man pages and shell completions, generated from the clap definitions in [`crate::cli`], so
//! they cannot drift from `--help`.
//!
//! [`install`] lays the files out under a prefix the way distributions expect them:
//!
//! | file | under `PREFIX/share/` |
//! |---|---|
//! | `dynamodctl.1`, `dynamodctl-<command>.1` | `man/man1/` |
//! | bash completion `dynamodctl` | `bash-completion/completions/` |
//! | zsh completion `_dynamodctl` | `zsh/site-functions/` |
//! | fish completion `dynamodctl.fish` | `fish/vendor_completions.d/` |
//!
//! The install step runs `dynamodctl generate DESTDIR/usr` (a hidden command), or calls
//! [`install`] directly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// The exit statuses for the man page: (code, meaning).
const EXIT_STATUS: [(&str, &str); 6] = [
    ("0", "Success; for is-healthy, the system is healthy."),
    (
        "1",
        "A negative answer: not healthy, the operation failed or was refused as invalid, \
         the configuration has errors (check), a service failed or the wait timed out (wait), \
         no answer within the timeout, svmgr hung up, or a protocol version mismatch.",
    ),
    (
        "2",
        "Usage error: unknown command or option, missing name, bad value.",
    ),
    (
        "3",
        "Permission denied: by svmgr (only root and the control group may change things), or \
         by the socket's permissions.",
    ),
    ("4", "A named service does not exist."),
    (
        "5",
        "svmgr (or, for logs, dynamod-logd) is unreachable: no socket, nobody listening, or no \
         hello within 5 seconds.",
    ),
];

/// The clap command with its final name, as the generators see it.
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Subcommands with a page of their own: not hidden, and not clap's `help`.
fn documented(sub: &clap::Command) -> bool {
    !sub.is_hide_set() && sub.get_name() != "help"
}

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

/// `dynamodctl.1`: clap's sections plus exit status, environment, files and see-also.
pub fn main_page() -> io::Result<Vec<u8>> {
    let cmd = command();
    let man = Man::new(cmd.clone())
        .date("")
        .source("dynamod")
        .manual("dynamod manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    let mut roff = Roff::new();
    section(&mut roff, "EXIT STATUS");
    for (code, meaning) in EXIT_STATUS {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    section(&mut roff, "ENVIRONMENT");
    for (var, what) in [
        (
            "DYNAMOD_SOCKET",
            "The control socket, unless --socket is given.",
        ),
        (
            "DYNAMOD_LOGD_SOCKET",
            "dynamod-logd's query socket for logs, unless --log-socket is given.",
        ),
        (
            "NO_COLOR",
            "When set and not empty, no colour is used even on a terminal.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(var)]);
        roff.text([roman(what)]);
    }
    section(&mut roff, "FILES");
    for (file, what) in [
        (
            "/run/dynamod/control.sock",
            "dynamod-svmgr's control socket.",
        ),
        ("/run/dynamod/logd.sock", "dynamod-logd's query socket."),
        (
            "/etc/dynamod/services, /etc/dynamod/supervisors",
            "The configuration read by check and graph.",
        ),
        ("/var/log/dynamod", "The log files written by dynamod-logd."),
    ] {
        roff.control("TP", []);
        roff.text([italic(file)]);
        roff.text([roman(what)]);
    }
    section(&mut roff, "SEE ALSO");
    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| documented(s))
        .map(|s| format!("dynamodctl-{}(1)", s.get_name()))
        .collect();
    roff.text([roman(subs.join(", "))]);
    roff.to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// `dynamodctl-<command>.1` for every visible subcommand.
pub fn subcommand_pages() -> io::Result<Vec<(String, Vec<u8>)>> {
    let cmd = command();
    let mut pages = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| documented(s)) {
        let name = format!("dynamodctl-{}", sub.get_name());
        let sub = sub.clone().display_name(name.clone());
        let man = Man::new(sub)
            .title(name.clone())
            .date("")
            .source("dynamod")
            .manual("dynamod manual");
        let mut out = Vec::new();
        man.render(&mut out)?;
        pages.push((format!("{name}.1"), out));
    }
    Ok(pages)
}

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "dynamodctl", &mut out);
    out
}

/// Writes every man page and completion under `prefix` (see the module table); returns the
/// files written.
pub fn install(prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let share = prefix.join("share");
    let mut files: Vec<(PathBuf, Vec<u8>)> =
        vec![(share.join("man/man1/dynamodctl.1"), main_page()?)];
    for (name, page) in subcommand_pages()? {
        files.push((share.join("man/man1").join(name), page));
    }
    files.push((
        share.join("bash-completion/completions/dynamodctl"),
        completion(Shell::Bash),
    ));
    files.push((
        share.join("zsh/site-functions/_dynamodctl"),
        completion(Shell::Zsh),
    ));
    files.push((
        share.join("fish/vendor_completions.d/dynamodctl.fish"),
        completion(Shell::Fish),
    ));
    let mut written = Vec::new();
    for (path, bytes) in files {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_main_page_documents_commands_and_exit_codes() {
        let page = text(main_page().unwrap());
        assert!(page.contains(".TH dynamodctl 1"), "{page}");
        assert!(page.contains(".SH \"EXIT STATUS\""), "{page}");
        assert!(page.contains("is\\-healthy"), "{page}");
        assert!(page.contains("dynamodctl\\-logs(1)"), "{page}");
        assert!(!page.contains("generate"), "hidden commands stay out");
    }

    #[test]
    fn every_visible_subcommand_has_a_page() {
        let pages = subcommand_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "dynamodctl-logs.1",
            "dynamodctl-check.1",
            "dynamodctl-wait.1",
        ] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert!(!names.contains(&"dynamodctl-generate.1"));
        assert!(!names.contains(&"dynamodctl-help.1"));
        let logs = &pages
            .iter()
            .find(|(n, _)| n == "dynamodctl-logs.1")
            .unwrap()
            .1;
        assert!(text(logs.clone()).contains("\\-\\-follow"));
    }

    #[test]
    fn completions_know_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = text(completion(shell));
            assert!(script.contains("is-healthy"), "{shell}");
            assert!(script.contains("analyze"), "{shell}");
        }
    }
}
