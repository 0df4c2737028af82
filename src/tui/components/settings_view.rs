//! The settings view: the global placement, the injected throttle value, per-client rules,
//! version caps, response mutations and faults, as a list to edit. Every change is a command
//! of the control language (`placement front`, `rule add …`, `fault add …`), run by the app, so
//! it is recorded like any other.

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
    Mutation(usize),
    AddMutation,
    Fault(usize),
    AddFault,
}

impl Item {
    /// The heading of the section the item is in (none for the first two).
    fn section(&self) -> Option<&'static str> {
        match self {
            Item::Placement | Item::Throttle => None,
            Item::Rule(_) | Item::AddRule => {
                Some("Per-client rules (first match wins over the global placement)")
            }
            Item::Cap(_) | Item::AddCap => {
                Some("Version caps (for connections whose ApiVersions comes later)")
            }
            Item::Mutation(_) | Item::AddMutation => {
                Some("Response mutations (every matching one applied, in order)")
            }
            Item::Fault(_) | Item::AddFault => Some("Faults (every matching one acts)"),
        }
    }
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
    v.extend((1..=k.mutations.len()).map(Item::Mutation));
    v.push(Item::AddMutation);
    v.extend((1..=k.faults.len()).map(Item::Fault));
    v.push(Item::AddFault);
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
                Item::Mutation(_) | Item::AddMutation => Some(add_mutation()),
                Item::Fault(_) | Item::AddFault => Some(add_fault()),
            },
            KeyCode::Char('a') => Some(add_rule()),
            KeyCode::Char('c') => Some(add_cap()),
            KeyCode::Char('m') => Some(add_mutation()),
            KeyCode::Char('f') => Some(add_fault()),
            KeyCode::Char('d') | KeyCode::Delete => match item {
                Item::Rule(n) => Some(SettingsAction::Run(format!("rule del {n}"))),
                Item::Mutation(n) => Some(SettingsAction::Run(format!("mutate del {n}"))),
                Item::Fault(n) => Some(SettingsAction::Run(format!("fault del {n}"))),
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
            " Settings (Enter: change  a: rule  c: cap  m: mutation  f: fault  d: delete) ",
            focused,
            theme,
        );
        let inner = block.inner(area);
        f.render_widget(block, area);
        let mut lines: Vec<Line> = Vec::new();
        let mut selected_line = 0;
        let mut section = None;
        for (i, item) in items.iter().enumerate() {
            if item.section() != section {
                section = item.section();
                lines.push(Line::from(""));
                lines.push(Line::styled(section.unwrap_or_default(), theme.header));
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
                Item::Mutation(n) => (
                    format!("mutation {n}"),
                    knobs
                        .mutations
                        .get(n - 1)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                ),
                Item::AddMutation => (
                    "+ add a mutation".into(),
                    "[MATCH:] move|omit|set|truncate|corrupt crc".into(),
                ),
                Item::Fault(n) => (
                    format!("fault {n}"),
                    knobs
                        .faults
                        .get(n - 1)
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                ),
                Item::AddFault => (
                    "+ add a fault".into(),
                    "[MATCH:] delay|error|drop|close|chunk".into(),
                ),
            };
            let style = if i == self.selected {
                selected_line = lines.len();
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
        // Scrolled so that the selected line shows (and, from the last item, the end).
        let height = inner.height.max(1) as usize;
        let offset = if self.selected + 1 == items.len() {
            lines.len().saturating_sub(height)
        } else {
            selected_line.saturating_sub(height - 1)
        };
        f.render_widget(Paragraph::new(lines).scroll((offset as u16, 0)), inner);
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

fn add_mutation() -> SettingsAction {
    SettingsAction::Ask {
        prompt: "mutate add> ".into(),
        initial: "api=produce:omit produce.response.throttle_time_ms".into(),
        prefix: "mutate add ".into(),
    }
}

fn add_fault() -> SettingsAction {
    SettingsAction::Ask {
        prompt: "fault add> ".into(),
        initial: "api=produce:delay 200ms".into(),
        prefix: "fault add ".into(),
    }
}
