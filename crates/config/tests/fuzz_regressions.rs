//! Inputs found by the fuzz targets in `fuzz/` (see `fuzz/README.md`), kept as tests with the
//! input inlined, so a fixed bug stays fixed without running the fuzzer.

// Helpers outside `#[test]` functions may fail loudly too: a panic is a test failure here.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use dynamod_config::envfile::{self, EnvFileError};
use dynamod_config::{parse_service, parse_supervisor};

/// The diagnostics of a refused file, as displayed.
fn shown(result: Result<impl std::fmt::Debug, Vec<dynamod_config::Diagnostic>>) -> Vec<String> {
    match result {
        Ok(ok) => panic!("accepted: {ok:?}"),
        Err(diags) => diags.iter().map(ToString::to_string).collect(),
    }
}

/// `config_service`: an error reported at the `\n` of a CRLF line had its column one past the
/// end of the line (the `\r` was counted).
#[test]
fn an_error_at_the_end_of_a_crlf_line_has_a_column_inside_the_line() {
    let input: &[u8] = b"service.name = \"probe\"\nservice.exec = [\"/bin/probe\"]\n\
        service.type = \"forking\"\nservice.pidfile = \"/run/probe.pid\"\nservice.\"\r\n\
        environment = { LANG = \"C.n~\"]\n";
    let result = parse_service(Path::new("web.toml"), input);
    // `service."` is 9 characters: column 10 is the end of the line.
    assert_eq!(
        shown(result),
        ["web.toml:5:10: error: invalid TOML: key with no value, expected `=`"]
    );
}

/// `config_supervisor`: the same, on the first line of a supervisor file.
#[test]
fn an_unclosed_header_before_a_crlf_points_at_the_end_of_its_line() {
    let input: &[u8] = b"[\"\r\n\"r-one\"\n\n[\"r-onesuperv'\x01\0\0!se\"\n\n[re#  m\0\0e = \"D";
    let result = parse_supervisor(Path::new("desk.toml"), input);
    assert_eq!(
        shown(result),
        ["desk.toml:1:3: error: invalid TOML: unclosed table, expected `]`"]
    );
}

/// `config_load`: a control character in a name was copied raw into the message (here a tab,
/// which would break one-line log records); it is now escaped like the name itself.
#[test]
fn a_control_character_in_a_name_is_escaped_in_the_message() {
    let input: &[u8] = b"[service]\nname = \"web\"\nexec = [\"/bin/web\"]\n\
        [dependencies]\nafter = [\"bootmis\t\"]\n";
    let result = parse_service(Path::new("web.toml"), input);
    assert_eq!(
        shown(result),
        [
            "web.toml:5:10: error: invalid name `bootmis\\t` for `dependencies.after[0]`: a name \
             may only contain a-z, 0-9, `.`, `_`, `@` and `-`, not `\\t`"
        ]
    );
    let input = b"[service]\nname = \"\\u001bweb\"\nexec = [\"/bin/web\"]\n";
    let shown = shown(parse_service(Path::new("web.toml"), input));
    assert!(shown[0].ends_with("not `\\u{1b}`"), "{shown:?}");
}

/// `envfile`: two byte-order marks were both skipped by `parse_bytes` (which stripped one and
/// then `parse` the other), while `parse` on the same text skipped only one.
#[test]
fn parse_bytes_skips_one_byte_order_mark_like_parse() {
    let input: &[u8] = b"\xEF\xBB\xBF\xEF\xBB\xBF";
    let from_bytes = envfile::parse_bytes(input);
    let from_text = envfile::parse(std::str::from_utf8(input).unwrap());
    assert_eq!(from_bytes, from_text);
    assert_eq!(from_bytes, Err(EnvFileError::MissingEquals { line: 1 }));
    assert_eq!(
        envfile::parse_bytes(b"\xEF\xBB\xBFA=1\n"),
        Ok(vec![("A".to_owned(), "1".to_owned())])
    );
}

/// Found by the `config_load` target in CI: a suggestion quoting another file's service name that
/// held a tab put the raw tab into the message.
#[test]
fn suggested_names_with_control_characters_are_escaped() {
    let services = vec![
        (
            std::path::PathBuf::from("services/a.toml"),
            b"[service]\nname = \"a\"\nexec = [\"/bin/true\"]\n[dependencies]\nafter = [\"sysctl\"]\n".to_vec(),
        ),
        (std::path::PathBuf::from("services/b.toml"), b"[service]\nname = \"\tysctl\"\nexec = [\"/bin/true\"]\n".to_vec()),
    ];
    let cfg = dynamod_config::load_sources(services, Vec::new());
    for d in &cfg.diagnostics {
        assert!(!d.message.contains(char::is_control), "{d}");
    }
}
