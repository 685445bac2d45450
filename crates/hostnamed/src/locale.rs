//! `org.freedesktop.locale1`: the system locale (`/etc/locale.conf`), the console keymap
//! (`/etc/vconsole.conf`) and the X11 keyboard (`/etc/X11/xorg.conf.d/00-keyboard.conf`, also
//! mirrored as `XKB*` keys in vconsole.conf the way newer systemd releases keep it).

use std::path::Path;

use dynamod_dbus::object::{Interface, Props, Reply};
use dynamod_dbus::{Call, MethodError, method, props, validate};

use crate::daemon::Context;
use crate::envfile::{self, EnvFile};
use crate::tools;

/// The object path.
pub const PATH: &str = "/org/freedesktop/locale1";

/// The interface, as org.freedesktop.locale1(5) documents it.
pub const INTERFACE: Interface = Interface {
    name: "org.freedesktop.locale1",
    methods: &[
        method!("SetLocale", [("locale", "as"), ("interactive", "b")] => []),
        method!("SetVConsoleKeyboard", [
            ("keymap", "s"), ("keymap_toggle", "s"), ("convert", "b"), ("interactive", "b")
        ] => []),
        method!("SetX11Keyboard", [
            ("layout", "s"), ("model", "s"), ("variant", "s"), ("options", "s"),
            ("convert", "b"), ("interactive", "b")
        ] => []),
    ],
    properties: props![
        ("Locale", "as"),
        ("X11Layout", "s"),
        ("X11Model", "s"),
        ("X11Variant", "s"),
        ("X11Options", "s"),
        ("VConsoleKeymap", "s"),
        ("VConsoleKeymapToggle", "s"),
    ],
    signals: &[],
};

const XORG_KEYBOARD: &str = "X11/xorg.conf.d/00-keyboard.conf";

/// An X11 keyboard setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct X11Keyboard {
    /// `XkbLayout`.
    pub layout: String,
    /// `XkbModel`.
    pub model: String,
    /// `XkbVariant`.
    pub variant: String,
    /// `XkbOptions`.
    pub options: String,
}

/// The `Option "XkbLayout" "…"` values of an xorg.conf snippet.
pub fn parse_xorg_keyboard(text: &str) -> X11Keyboard {
    let mut kb = X11Keyboard::default();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split('"')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        if let ["Option", key, value] = words.as_slice() {
            match *key {
                "XkbLayout" => kb.layout = (*value).to_owned(),
                "XkbModel" => kb.model = (*value).to_owned(),
                "XkbVariant" => kb.variant = (*value).to_owned(),
                "XkbOptions" => kb.options = (*value).to_owned(),
                _ => {}
            }
        }
    }
    kb
}

/// The xorg.conf snippet for `kb` (its values are validated: no quotes can occur).
pub fn render_xorg_keyboard(kb: &X11Keyboard) -> String {
    let mut out = String::from(
        "# Written by dynamod-hostnamed (org.freedesktop.locale1); change it with\n\
         # `localectl set-x11-keymap`.\n\
         Section \"InputClass\"\n        Identifier \"system-keyboard\"\n        \
         MatchIsKeyboard \"on\"\n",
    );
    for (key, value) in [
        ("XkbLayout", &kb.layout),
        ("XkbModel", &kb.model),
        ("XkbVariant", &kb.variant),
        ("XkbOptions", &kb.options),
    ] {
        if !value.is_empty() {
            out.push_str(&format!("        Option \"{key}\" \"{value}\"\n"));
        }
    }
    out.push_str("EndSection\n");
    out
}

fn x11_keyboard(ctx: &Context, vconsole: &EnvFile) -> X11Keyboard {
    match std::fs::read_to_string(ctx.etc(XORG_KEYBOARD)) {
        Ok(text) => parse_xorg_keyboard(&text),
        Err(_) => X11Keyboard {
            layout: vconsole.get("XKBLAYOUT").unwrap_or_default().to_owned(),
            model: vconsole.get("XKBMODEL").unwrap_or_default().to_owned(),
            variant: vconsole.get("XKBVARIANT").unwrap_or_default().to_owned(),
            options: vconsole.get("XKBOPTIONS").unwrap_or_default().to_owned(),
        },
    }
}

/// Every property's current value.
pub fn properties(ctx: &Context) -> Props {
    let locale = EnvFile::read(&ctx.etc("locale.conf")).unwrap_or_default();
    let vconsole = EnvFile::read(&ctx.etc("vconsole.conf")).unwrap_or_default();
    let assignments: Vec<String> = locale
        .assignments()
        .filter(|(k, v)| validate::LOCALE_KEYS.contains(k) && !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let kb = x11_keyboard(ctx, &vconsole);
    let mut p = Props::new();
    p.add("Locale", assignments)
        .add("X11Layout", kb.layout)
        .add("X11Model", kb.model)
        .add("X11Variant", kb.variant)
        .add("X11Options", kb.options)
        .add(
            "VConsoleKeymap",
            vconsole.get("KEYMAP").unwrap_or_default().to_owned(),
        )
        .add(
            "VConsoleKeymapToggle",
            vconsole.get("KEYMAP_TOGGLE").unwrap_or_default().to_owned(),
        );
    p
}

/// One line of systemd's `kbd-model-map`: a console keymap and its X11 equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The console keymap.
    pub keymap: String,
    /// The X11 setting (`-` in the file means empty).
    pub x11: X11Keyboard,
}

/// Parses a `kbd-model-map` (columns: keymap, layout, model, variant, options).
pub fn parse_kbd_model_map(text: &str) -> Vec<MapEntry> {
    let field = |s: &str| {
        if s == "-" {
            String::new()
        } else {
            s.to_owned()
        }
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [keymap, layout, model, variant, options] = f.as_slice() else {
                return None;
            };
            Some(MapEntry {
                keymap: (*keymap).to_owned(),
                x11: X11Keyboard {
                    layout: field(layout),
                    model: field(model),
                    variant: field(variant),
                    options: field(options),
                },
            })
        })
        .collect()
}

/// The X11 keyboard for a console keymap.
pub fn keymap_to_x11<'a>(map: &'a [MapEntry], keymap: &str) -> Option<&'a X11Keyboard> {
    map.iter().find(|e| e.keymap == keymap).map(|e| &e.x11)
}

/// The console keymap closest to an X11 keyboard: same first layout required, then the
/// variant, then the model break ties; the first best entry wins.
pub fn x11_to_keymap<'a>(map: &'a [MapEntry], kb: &X11Keyboard) -> Option<&'a str> {
    let first = |s: &str| s.split(',').next().unwrap_or_default().to_owned();
    let layout = first(&kb.layout);
    let mut best: Option<(u32, &MapEntry)> = None;
    for e in map.iter().filter(|e| first(&e.x11.layout) == layout) {
        let score = u32::from(first(&e.x11.variant) == first(&kb.variant)) * 2
            + u32::from(e.x11.model == kb.model);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, e));
        }
    }
    best.map(|(_, e)| e.keymap.as_str())
}

fn kbd_model_map(path: &Path) -> Vec<MapEntry> {
    std::fs::read_to_string(path)
        .map(|t| parse_kbd_model_map(&t))
        .unwrap_or_default()
}

fn file_failed(e: envfile::FileError) -> MethodError {
    let cause = std::error::Error::source(&e)
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    MethodError::failed(format!("Failed to {e}{cause}"))
}

/// Writes the X11 keyboard to 00-keyboard.conf (removed when the layout is empty) and to the
/// `XKB*` keys of vconsole.conf.
fn save_x11(ctx: &Context, vconsole: &mut EnvFile, kb: &X11Keyboard) -> Result<(), MethodError> {
    let path = ctx.etc(XORG_KEYBOARD);
    if kb.layout.is_empty() {
        envfile::remove(&path).map_err(file_failed)?;
    } else {
        envfile::write_atomic(&path, render_xorg_keyboard(kb).as_bytes()).map_err(file_failed)?;
    }
    vconsole.set("XKBLAYOUT", &kb.layout);
    vconsole.set("XKBMODEL", &kb.model);
    vconsole.set("XKBVARIANT", &kb.variant);
    vconsole.set("XKBOPTIONS", &kb.options);
    Ok(())
}

async fn load_console_keymap(ctx: &Context, keymap: &str) {
    if ctx.opts.no_devices || keymap.is_empty() {
        return;
    }
    if let Err(e) = tools::run("loadkeys", &["-q", keymap]).await {
        tracing::warn!("cannot load the console keymap: {e}");
    }
}

/// Runs one method.
pub async fn call(ctx: &Context, call: &Call, name: &str) -> Result<Reply, MethodError> {
    match name {
        "SetLocale" => {
            let (list, _interactive): (Vec<String>, bool) = call.args()?;
            call.require_root("set the system locale").await?;
            let mut settings: Vec<(String, String)> = Vec::new();
            for item in &list {
                let (key, value) = validate::locale_assignment(item)?;
                settings.retain(|(k, _)| k != key);
                settings.push((key.to_owned(), value.to_owned()));
            }
            let _changes = ctx.changes.lock().await;
            let path = ctx.etc("locale.conf");
            let mut file = EnvFile::read(&path).map_err(file_failed)?;
            // A new locale replaces the old one entirely (locale1(5)).
            for key in validate::LOCALE_KEYS {
                file.set(key, "");
            }
            for (k, v) in &settings {
                file.set(k, v);
            }
            file.save(&path).map_err(file_failed)?;
            tracing::info!(locale = ?list, "system locale changed");
            ctx.changed(PATH, &INTERFACE, properties(ctx), &["Locale"])
                .await;
            Ok(Reply::empty())
        }
        "SetVConsoleKeyboard" => {
            let (keymap, toggle, convert, _interactive): (String, String, bool, bool) =
                call.args()?;
            call.require_root("set the console keymap").await?;
            for k in [&keymap, &toggle] {
                if !k.is_empty() {
                    validate::keymap(k)?;
                }
            }
            let _changes = ctx.changes.lock().await;
            let path = ctx.etc("vconsole.conf");
            let mut vconsole = EnvFile::read(&path).map_err(file_failed)?;
            vconsole.set("KEYMAP", &keymap);
            vconsole.set("KEYMAP_TOGGLE", &toggle);
            let mut changed = vec!["VConsoleKeymap", "VConsoleKeymapToggle"];
            if convert {
                let map = kbd_model_map(&ctx.opts.kbd_model_map);
                match keymap_to_x11(&map, &keymap) {
                    Some(kb) => {
                        save_x11(ctx, &mut vconsole, kb)?;
                        changed.extend(["X11Layout", "X11Model", "X11Variant", "X11Options"]);
                    }
                    None => tracing::info!(keymap = %keymap, "no X11 equivalent for the keymap"),
                }
            }
            vconsole.save(&path).map_err(file_failed)?;
            load_console_keymap(ctx, &keymap).await;
            ctx.changed(PATH, &INTERFACE, properties(ctx), &changed)
                .await;
            Ok(Reply::empty())
        }
        "SetX11Keyboard" => {
            let (layout, model, variant, options, convert, _interactive): (
                String,
                String,
                String,
                String,
                bool,
                bool,
            ) = call.args()?;
            call.require_root("set the X11 keyboard").await?;
            for (what, v) in [
                ("layout", &layout),
                ("model", &model),
                ("variant", &variant),
                ("options", &options),
            ] {
                if !v.is_empty() {
                    validate::x11_field(what, v)?;
                }
            }
            let kb = X11Keyboard {
                layout,
                model,
                variant,
                options,
            };
            let _changes = ctx.changes.lock().await;
            let path = ctx.etc("vconsole.conf");
            let mut vconsole = EnvFile::read(&path).map_err(file_failed)?;
            save_x11(ctx, &mut vconsole, &kb)?;
            let mut changed = vec!["X11Layout", "X11Model", "X11Variant", "X11Options"];
            let mut new_keymap = None;
            if convert {
                let map = kbd_model_map(&ctx.opts.kbd_model_map);
                match x11_to_keymap(&map, &kb) {
                    Some(k) => {
                        vconsole.set("KEYMAP", k);
                        new_keymap = Some(k.to_owned());
                        changed.push("VConsoleKeymap");
                    }
                    None => tracing::info!(layout = %kb.layout, "no console keymap for the layout"),
                }
            }
            vconsole.save(&path).map_err(file_failed)?;
            if let Some(k) = new_keymap {
                load_console_keymap(ctx, &k).await;
            }
            ctx.changed(PATH, &INTERFACE, properties(ctx), &changed)
                .await;
            Ok(Reply::empty())
        }
        other => Err(MethodError::new(
            dynamod_dbus::error::UNKNOWN_METHOD,
            format!("Unknown method '{other}'."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "# keymap layout model variant options\n\
        us us pc105+inet - terminate:ctrl_alt_bksp\n\
        de de pc105 - terminate:ctrl_alt_bksp\n\
        de-latin1-nodeadkeys de pc105 nodeadkeys terminate:ctrl_alt_bksp\n\
        fr fr pc105 - terminate:ctrl_alt_bksp\n";

    #[test]
    fn xorg_keyboard_round_trips() {
        let kb = X11Keyboard {
            layout: "de,us".into(),
            model: "pc105".into(),
            variant: "nodeadkeys".into(),
            options: "grp:alt_shift_toggle".into(),
        };
        assert_eq!(parse_xorg_keyboard(&render_xorg_keyboard(&kb)), kb);
        let only_layout = X11Keyboard {
            layout: "fr".into(),
            ..Default::default()
        };
        let text = render_xorg_keyboard(&only_layout);
        assert!(!text.contains("XkbModel"));
        assert_eq!(parse_xorg_keyboard(&text), only_layout);
    }

    #[test]
    fn console_keymaps_convert_to_x11_and_back() {
        let map = parse_kbd_model_map(MAP);
        assert_eq!(map.len(), 4);
        let de = keymap_to_x11(&map, "de").unwrap();
        assert_eq!(de.layout, "de");
        assert_eq!(de.variant, "");
        assert!(keymap_to_x11(&map, "xx").is_none());
        let nodead = X11Keyboard {
            layout: "de".into(),
            model: "pc105".into(),
            variant: "nodeadkeys".into(),
            options: String::new(),
        };
        assert_eq!(x11_to_keymap(&map, &nodead), Some("de-latin1-nodeadkeys"));
        let plain_de = X11Keyboard {
            layout: "de,us".into(),
            ..Default::default()
        };
        assert_eq!(x11_to_keymap(&map, &plain_de), Some("de"));
        let unknown = X11Keyboard {
            layout: "xx".into(),
            ..Default::default()
        };
        assert_eq!(x11_to_keymap(&map, &unknown), None);
    }
}
