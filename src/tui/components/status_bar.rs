//! The status bar: the settings in force, client health, the store, and the last message.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::diagnose::{ConnInfo, Health};
use crate::settings::{Knobs, ThrottlePlacement};
use crate::tui::theme::Theme;

/// Draws one line: placement, rules, throttle, caps | clients and their health | store; first,
/// a filter being applied and how far it got (`busy`).
#[allow(clippy::too_many_arguments)]
pub fn draw(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    knobs: &Knobs,
    clients: &[ConnInfo],
    store: (usize, usize, u64),
    listen: &str,
    busy: Option<&str>,
) {
    let open: Vec<&ConnInfo> = clients.iter().filter(|c| c.closed.is_none()).collect();
    let count = |h: Health| clients.iter().filter(|c| c.health == h).count();
    let alert = knobs.placement != ThrottlePlacement::Spec
        || !knobs.mutations.is_empty()
        || !knobs.faults.is_empty()
        || count(Health::Stalled) + count(Health::Retrying) + count(Health::Disconnecting) > 0;
    let style = if alert {
        theme.status_alert
    } else {
        theme.status_bar
    };
    let mut text = match busy {
        Some(b) => format!(" {b} (Esc: cancel) │"),
        None => String::new(),
    };
    text.push_str(&format!(" {listen}  placement={}", knobs.placement));
    if !knobs.rules.is_empty() {
        text.push_str(&format!(" rules={}", knobs.rules.len()));
    }
    if knobs.throttle_ms != 0 {
        text.push_str(&format!(" throttle={}ms", knobs.throttle_ms));
    }
    let caps = knobs.caps_text();
    if !caps.is_empty() {
        text.push_str(&format!(" caps={}", caps.join(",")));
    }
    if !knobs.mutations.is_empty() {
        text.push_str(&format!(" mutations={}", knobs.mutations.len()));
    }
    if !knobs.faults.is_empty() {
        text.push_str(&format!(" faults={}", knobs.faults.len()));
    }
    text.push_str(&format!(" │ clients {} open", open.len()));
    for h in [Health::Stalled, Health::Retrying, Health::Disconnecting] {
        let n = count(h);
        if n > 0 {
            text.push_str(&format!(", {n} {h}"));
        }
    }
    let (held, bytes, evicted) = store;
    text.push_str(&format!(
        " │ store {held} ({:.1} MiB",
        bytes as f64 / 1048576.0
    ));
    if evicted > 0 {
        text.push_str(&format!(", {evicted} evicted"));
    }
    text.push(')');
    f.render_widget(
        Paragraph::new(Line::from(Span::raw(text))).style(style),
        area,
    );
}
