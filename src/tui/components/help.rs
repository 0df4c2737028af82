//! The `?` overlay: every key, from the one table the app's key handling is tested against.

use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use super::pane;
use crate::tui::theme::Theme;

/// (section, keys, what they do).
pub const KEYS: &[(&str, &str, &str)] = &[
    ("everywhere", "?", "this help (Esc, q or ? closes it)"),
    ("everywhere", "1 2 3", "views: exchanges, clients, settings"),
    ("everywhere", "Tab / Shift-Tab", "next / previous pane"),
    (
        "everywhere",
        "p",
        "cycle the throttle_time_ms placement: spec → front → omit",
    ),
    (
        "everywhere",
        "/",
        "display filter (empty clears it); Esc cancels",
    ),
    (
        "everywhere",
        ":",
        "command: placement MODE, rule add RULE, mutate add RULE, fault add RULE, …",
    ),
    (
        "everywhere",
        "Space",
        "pause / resume the live list (in the exchange list)",
    ),
    (
        "everywhere",
        "f",
        "follow the selected exchange's connection (again: all)",
    ),
    (
        "everywhere",
        "w",
        "save the exchanges held to a file (pcapng; JSON lines for .json)",
    ),
    (
        "everywhere",
        "Esc",
        "clear the connection and filter, close overlays",
    ),
    ("everywhere", "q, Ctrl-C", "quit (the terminal is restored)"),
    (
        "everywhere",
        "n r b",
        "repro: next step, run on to the end or a failure, restart and rerun",
    ),
    (
        "everywhere",
        "click, wheel",
        "select rows, tree lines and bytes; scroll the pane under the pointer",
    ),
    ("lists", "j k ↑ ↓", "move"),
    ("lists", "PgUp PgDn Ctrl-u Ctrl-d", "page, half page"),
    (
        "lists",
        "g G Home End",
        "first, last (G/End in the exchange list follows the tail)",
    ),
    ("exchange list", "Enter", "open the field tree"),
    ("field tree", "Enter Space", "expand / collapse"),
    (
        "field tree",
        "l → / h ←",
        "expand / collapse or go to the parent",
    ),
    ("field tree", "e / E", "expand / collapse the whole subtree"),
    ("field tree", "t", "jump to throttle_time_ms"),
    (
        "hex",
        "h j k l ← ↓ ↑ →",
        "move the cursor byte; the field owning it is selected",
    ),
    ("hex", "0 $ g G", "row start, row end, first, last byte"),
    ("hex", "r", "switch between request and response frame"),
    ("clients", "Enter", "show that connection's exchanges"),
    (
        "settings",
        "Enter a c m f d",
        "change, add a rule, a cap, a mutation, a fault; delete",
    ),
];

/// Draws the overlay centred over `area`.
pub fn draw(f: &mut Frame, area: Rect, theme: &Theme) {
    let mut sections: Vec<&str> = KEYS.iter().map(|(s, _, _)| *s).collect();
    sections.dedup();
    let height = (KEYS.len() as u16 + sections.len() as u16 + 2).min(area.height);
    let width = 96.min(area.width);
    let [row] = Layout::vertical([Constraint::Length(height)])
        .flex(Flex::Center)
        .areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(width)])
        .flex(Flex::Center)
        .areas(row);
    f.render_widget(Clear, popup);
    let block = pane(" Keys (? or Esc closes) ", true, theme);
    let inner = block.inner(popup);
    f.render_widget(block, popup);
    let mut lines = Vec::new();
    let mut section = "";
    for (s, keys, what) in KEYS {
        if *s != section {
            section = s;
            lines.push(Line::styled(s.to_string(), theme.header));
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {keys:<24}"), theme.tree_name),
            Span::styled(what.to_string(), theme.base),
        ]));
    }
    f.render_widget(Paragraph::new(lines).style(theme.base), inner);
}
