//! Colour themes: `themes/*.toml`, one style per named role (list rows by status, hex highlight,
//! status bar, …). The built-in themes are compiled in; `--theme` takes a built-in name or a path.
//! A theme may leave roles out (they fall back to the default theme); an unknown role, colour or
//! modifier is an error that names it. With `NO_COLOR` set, colours are dropped and modifiers kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The built-in themes: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// The theme used when none is named.
pub const DEFAULT: &str = "dark";

macro_rules! roles {
    ($($role:ident: $doc:literal,)*) => {
        /// Every style the UI draws with.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Theme {
            /// The theme's name (from the file).
            pub name: String,
            $(#[doc = $doc] pub $role: Style,)*
        }

        /// The role names a theme file may set.
        pub const ROLES: &[&str] = &[$(stringify!($role)),*];

        impl Theme {
            fn set(&mut self, role: &str, style: Style) -> bool {
                match role {
                    $(stringify!($role) => self.$role = style,)*
                    _ => return false,
                }
                true
            }

            fn map_styles(&mut self, f: impl Fn(Style) -> Style) {
                $(self.$role = f(self.$role);)*
            }

            fn blank(name: String) -> Theme {
                Theme { name, $($role: Style::default(),)* }
            }
        }
    };
}

roles! {
    base: "Text and background of every pane.",
    border: "Borders of panes without focus.",
    border_focused: "The border of the pane with focus.",
    title: "Pane titles.",
    header: "Table headers.",
    selected: "The selected row or tree line.",
    ok: "Answered exchanges without error.",
    error: "Exchanges whose response carries an error code.",
    malformed: "Frames that did not decode.",
    stalled: "Rows of a client the stall detector marks stalled, retrying or disconnecting.",
    pending: "Requests unanswered or without response.",
    marker: "Markers in the exchange list (setting changes).",
    dim: "Secondary text.",
    tree_name: "Field names in the tree.",
    tree_value: "Field values in the tree.",
    tree_note: "Decoder notes in the tree (CRC mismatch, placement).",
    hex_offset: "The offset column of the hex view.",
    hex_bytes: "Bytes in the hex view.",
    hex_highlight: "Bytes of the selected field.",
    hex_cursor: "The hex view's cursor byte.",
    hex_error: "The byte where decoding failed.",
    status_bar: "The status bar.",
    status_alert: "The status bar when a client stalls or a setting differs from spec.",
    input: "The filter and command input line.",
    chart_rate: "The request-rate sparkline.",
    chart_latency: "The latency sparkline.",
    diff_changed: "Replay: a field whose value differs between the recorded and the live response.",
    diff_added: "Replay: a field only the live response has.",
    diff_missing: "Replay: a field only the recorded response has.",
    diff_shifted: "Replay: a field with the same value at another place in the frame.",
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    #[serde(default)]
    styles: BTreeMap<String, StyleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    #[serde(default)]
    modifiers: Vec<String>,
}

fn color(text: &str) -> Result<Color, String> {
    Color::from_str(text).map_err(|_| {
        format!(
            "unknown colour {text:?} (a name such as \"light-cyan\", an index 0-255 or \"#rrggbb\")"
        )
    })
}

fn modifier(text: &str) -> Result<Modifier, String> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "crossed-out" | "crossed_out" => Modifier::CROSSED_OUT,
        _ => {
            return Err(format!(
                "unknown modifier {text:?} (bold, dim, italic, underlined, reversed, crossed-out)"
            ))
        }
    })
}

impl StyleSpec {
    fn style(&self) -> Result<Style, String> {
        let mut s = Style::default();
        if let Some(fg) = &self.fg {
            s = s.fg(color(fg)?);
        }
        if let Some(bg) = &self.bg {
            s = s.bg(color(bg)?);
        }
        for m in &self.modifiers {
            s = s.add_modifier(modifier(m)?);
        }
        Ok(s)
    }
}

impl Theme {
    /// Parses a theme file's text over `fallback` (roles the file leaves out keep its styles).
    pub fn parse(text: &str, fallback: &Theme) -> Result<Theme, String> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut theme = fallback.clone();
        if let Some(n) = file.name {
            theme.name = n;
        }
        for (role, spec) in &file.styles {
            let style = spec.style().map_err(|e| format!("styles.{role}: {e}"))?;
            if !theme.set(role, style) {
                return Err(format!(
                    "styles.{role}: unknown role (known: {})",
                    ROLES.join(", ")
                ));
            }
        }
        Ok(theme)
    }

    /// A built-in theme by name.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name)?;
        let base = Theme::blank(name.to_string());
        // The built-in files are tested to parse; a failure would be a build defect, so the
        // blank theme is an acceptable answer rather than a panic.
        Some(Theme::parse(text, &base).unwrap_or(base))
    }

    /// The default theme.
    pub fn default_theme() -> Theme {
        Theme::builtin(DEFAULT).unwrap_or_else(|| Theme::blank(DEFAULT.into()))
    }

    /// Loads `--theme NAME|PATH`: a built-in name, else a file. On error the caller gets the
    /// message and should fall back to [`Theme::default_theme`].
    pub fn load(spec: &str) -> Result<Theme, String> {
        if let Some(t) = Theme::builtin(spec) {
            return Ok(t);
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            format!(
                "theme {spec:?}: not a built-in theme ({}) and not a readable file: {e}",
                names.join(", ")
            )
        })?;
        Theme::parse(&text, &Theme::default_theme())
            .map_err(|e| format!("theme file {}: {e}", path.display()))
    }

    /// Drops every colour, keeping modifiers, and marks selection by reversing (`NO_COLOR`).
    pub fn without_colour(mut self) -> Theme {
        self.map_styles(|s| Style {
            fg: None,
            bg: None,
            underline_color: None,
            ..s
        });
        self.selected = self.selected.add_modifier(Modifier::REVERSED);
        self.hex_highlight = self.hex_highlight.add_modifier(Modifier::REVERSED);
        self.hex_cursor = self
            .hex_cursor
            .add_modifier(Modifier::UNDERLINED | Modifier::BOLD);
        self.hex_error = self
            .hex_error
            .add_modifier(Modifier::REVERSED | Modifier::UNDERLINED);
        self.malformed = self.malformed.add_modifier(Modifier::UNDERLINED);
        self.status_bar = self.status_bar.add_modifier(Modifier::REVERSED);
        self.status_alert = self.status_alert.add_modifier(Modifier::REVERSED);
        self.marker = self.marker.add_modifier(Modifier::REVERSED);
        self
    }
}

/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Resolves `--theme` as the UI does: the named theme or, when it cannot be loaded, the default
/// with the reason (shown in the status bar); colours dropped under `NO_COLOR`.
pub fn resolve(spec: Option<&str>, no_color: bool) -> (Theme, Option<String>) {
    let (theme, warning) = match spec {
        None => (Theme::default_theme(), None),
        Some(s) => match Theme::load(s) {
            Ok(t) => (t, None),
            Err(e) => (
                Theme::default_theme(),
                Some(format!("{e}; using the {DEFAULT} theme")),
            ),
        },
    };
    if no_color {
        (theme.without_colour(), warning)
    } else {
        (theme, warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_theme_parses_and_sets_every_role() {
        for (name, text) in BUILTIN {
            let blank = Theme::blank(String::new());
            let t = Theme::parse(text, &blank).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(t.name, *name);
            let file: ThemeFile = toml::from_str(text).unwrap();
            for role in ROLES {
                assert!(file.styles.contains_key(*role), "{name} leaves out {role}");
            }
            assert_ne!(t.selected, Style::default(), "{name}");
        }
        let dark = Theme::builtin("dark").unwrap();
        assert_eq!(dark.selected.bg, Some(Color::Cyan));
        assert_eq!(dark.border.fg, Some(Color::DarkGray));
        assert_eq!(
            Theme::builtin("light").unwrap().pending.fg,
            Some(Color::Rgb(0xa0, 0x5a, 0))
        );
    }

    #[test]
    fn a_partial_theme_falls_back_role_by_role() {
        let t = Theme::parse(
            "name = \"mine\"\n[styles]\nok = { fg = \"#102030\" }\n",
            &Theme::default_theme(),
        )
        .unwrap();
        assert_eq!(t.name, "mine");
        assert_eq!(t.ok.fg, Some(Color::Rgb(0x10, 0x20, 0x30)));
        assert_eq!(t.error, Theme::default_theme().error);
    }

    #[test]
    fn malformed_theme_files_give_clear_errors_and_the_default_theme() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[styles\nok = 1", "expected"),
            (
                "[styles]\nok = { fg = \"chartreuse-ish\" }",
                "unknown colour",
            ),
            ("[styles]\nokk = { fg = \"red\" }", "unknown role"),
            (
                "[styles]\nok = { modifiers = [\"blink-fast\"] }",
                "unknown modifier",
            ),
            ("[styles]\nok = { colour = \"red\" }", "unknown field"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.toml"));
            std::fs::write(&path, text).unwrap();
            let spec = path.to_str().unwrap();
            let err = Theme::load(spec).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains(spec), "the error names the file: {err}");
            let (theme, warning) = resolve(Some(spec), false);
            assert_eq!(theme, Theme::default_theme());
            assert!(warning.unwrap().contains("using the dark theme"));
        }
        let err = Theme::load("no-such-theme").unwrap_err();
        assert!(err.contains("dark, light, high-contrast"), "{err}");
    }

    #[test]
    fn a_theme_file_loads_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[styles]\nselected = { bg = \"42\" }").unwrap();
        let (t, w) = resolve(path.to_str(), false);
        assert!(w.is_none());
        assert_eq!(t.selected.bg, Some(Color::Indexed(42)));
    }

    #[test]
    fn no_color_keeps_modifiers_only() {
        let (t, _) = resolve(Some("high-contrast"), true);
        for s in [t.ok, t.selected, t.status_bar, t.hex_highlight] {
            assert_eq!((s.fg, s.bg), (None, None));
        }
        assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
        assert!(t.ok.add_modifier.contains(Modifier::BOLD));
    }
}
