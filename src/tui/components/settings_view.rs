//! The settings view: the global placement, the injected throttle value, per-client rules and
//! version caps, as a list to edit. Every change is a command of the control language
//! (`placement front`, `rule add …`), run by the app, so it is recorded like any other.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{pane, Outcome};
use crate::settings::{api_snake_name, Knobs};
use crate::tui::theme::Theme;

/// What the user asked the settings view for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsAction {
    /// Run this control command.
    Run(String),
    /// Ask for text with this prompt; the command is `prefix` followed by the text.
    Ask {
        prompt: String,
        initial: String,
        prefix: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Placement,
    Throttle,
    Rule(usize),
    AddRule,
    Cap(i16),
    AddCap,
}

/// The settings pane's state.
#[derive(Debug, Default)]
pub struct SettingsView {
    selected: usize,
    pub area: Rect,
}

fn items(k: &Knobs) -> Vec<Item> {
    let mut v = vec![Item::Placement, Item::Throttle];
    v.extend((1..=k.rules.len()).map(Item::Rule));
    v.push(Item::AddRule);
    v.extend(k.caps.keys().map(|a| Item::Cap(*a)));
    v.push(Item::AddCap);
    v
}

impl SettingsView {
    /// Handles a key; returns what to do, if anything.
    pub fn on_key(&mut self, key: KeyEvent, knobs: &Knobs) -> (Outcome, Option<SettingsAction>) {
        let items = items(knobs);
        self.selected = self.selected.min(items.len() - 1);
        let item = items[self.selected].clone();
        let action = match key.code {
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(items.len() - 1);
                None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.selected = self.selected.saturating_sub(1);
                None
            }
            KeyCode::Enter | KeyCode::Char(' ') => match item {
                Item::Placement => Some(SettingsAction::Run(format!(
                    "placement {}",
                    knobs.placement.next()
                ))),
                Item::Throttle => Some(SettingsAction::Ask {
                    prompt: "throttle_time_ms to inject (ms)> ".into(),
                    initial: knobs.throttle_ms.to_string(),
                    prefix: "throttle ".into(),
                }),
                Item::Rule(_) | Item::AddRule => Some(add_rule()),
                Item::Cap(_) | Item::AddCap => Some(add_cap()),
            },
            KeyCode::Char('a') => Some(add_rule()),
            KeyCode::Char('c') => Some(add_cap()),
            KeyCode::Char('d') | KeyCode::Delete => match item {
                Item::Rule(n) => Some(SettingsAction::Run(format!("rule del {n}"))),
                Item::Cap(api) => Some(SettingsAction::Run(format!(
                    "cap clear {}",
                    api_snake_name(api)
                ))),
                _ => None,
            },
            _ => return (Outcome::Ignored, None),
        };
        (Outcome::Consumed, action)
    }

    /// Draws the list.
    pub fn draw(&mut self, f: &mut Frame, area: Rect, focused: bool, theme: &Theme, knobs: &Knobs) {
        self.area = area;
        let items = items(knobs);
        self.selected = self.selected.min(items.len() - 1);
        let block = pane(
            " Settings (Enter: change  a: add rule  c: add cap  d: delete) ",
            focused,
            theme,
        );
        let inner = block.inner(area);
        f.render_widget(block, area);
        let mut lines: Vec<Line> = Vec::new();
        let heading = |lines: &mut Vec<Line>, text: &str| {
            lines.push(Line::from(""));
            lines.push(Line::styled(text.to_string(), theme.header));
        };
        for (i, item) in items.iter().enumerate() {
            match item {
                Item::Rule(1) => heading(
                    &mut lines,
                    "Per-client rules (first match wins over the global placement)",
                ),
                Item::AddRule if knobs.rules.is_empty() => heading(
                    &mut lines,
                    "Per-client rules (first match wins over the global placement)",
                ),
                Item::Cap(_) if Some(item) == items.iter().find(|i| matches!(i, Item::Cap(_))) => {
                    heading(
                        &mut lines,
                        "Version caps (for connections whose ApiVersions comes later)",
                    )
                }
                Item::AddCap if knobs.caps.is_empty() => heading(
                    &mut lines,
                    "Version caps (for connections whose ApiVersions comes later)",
                ),
                _ => {}
            }
            let (label, value) = match item {
                Item::Placement => (
                    "placement of throttle_time_ms".to_string(),
                    format!("{}   (Enter or p: spec → front → omit)", knobs.placement),
                ),
                Item::Throttle => (
                    "injected throttle_time_ms".to_string(),
                    format!("{} ms", knobs.throttle_ms),
                ),
                Item::Rule(n) => (
                    format!("rule {n}"),
                    knobs
                        .rules
                        .get(n - 1)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                ),
                Item::AddRule => (
                    "+ add a rule".into(),
                    "client_id=GLOB,software=GLOB,version=GLOB:MODE".into(),
                ),
                Item::Cap(api) => (
                    format!("cap {}", api_snake_name(*api)),
                    format!("v{}", knobs.caps.get(api).copied().unwrap_or_default()),
                ),
                Item::AddCap => ("+ add a cap".into(), "API=N, e.g. produce=8".into()),
            };
            let style = if i == self.selected {
                theme.selected
            } else {
                theme.base
            };
            lines.push(
                Line::from(vec![
                    Span::styled(format!("  {label:<32}"), theme.tree_name),
                    Span::styled(value, theme.tree_value),
                ])
                .style(style),
            );
        }
        lines.push(Line::from(""));
        lines.push(Line::styled(
            format!(
                "Stall detector thresholds: {}",
                crate::diagnose::ThresholdsMs::from(knobs.stall)
            ),
            theme.dim,
        ));
        f.render_widget(Paragraph::new(lines), inner);
    }
}

fn add_rule() -> SettingsAction {
    SettingsAction::Ask {
        prompt: "rule add> ".into(),
        initial: "software=kafka-python*:front".into(),
        prefix: "rule add ".into(),
    }
}

fn add_cap() -> SettingsAction {
    SettingsAction::Ask {
        prompt: "cap> ".into(),
        initial: "produce=8".into(),
        prefix: "cap ".into(),
    }
}
