//! The step panel of `chronik-tui repro`: every step with its verdict, the current one marked,
//! and what the current (or last run) step expects with what was seen.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{fit, pane};
use crate::scenario::drive::StepsState;
use crate::tui::theme::Theme;

/// Rows the panel wants (borders included), at most `max`: a row per step, the status row,
/// and a row per expectation of the step with the most.
pub fn height(s: &StepsState, max: u16) -> u16 {
    let detail = s.steps.iter().map(|r| r.expects.len()).max().unwrap_or(0);
    (s.steps.len() + detail + 3).min(usize::from(max)).max(5) as u16
}

/// Draws the panel.
pub fn draw(f: &mut Frame, area: Rect, theme: &Theme, s: &StepsState) {
    let total = s.steps.len();
    let passed = s
        .steps
        .iter()
        .filter(|r| r.report.as_ref().is_some_and(|r| r.passed))
        .count();
    let title = format!(
        " Steps {passed}/{total} passed · n next · r run on · b restart · {} ",
        s.scenario
    );
    let block = pane(Span::styled(title, theme.title), false, theme);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    for (i, row) in s.steps.iter().enumerate() {
        let (word, style) = match &row.report {
            Some(r) if r.passed => ("PASS", theme.ok),
            Some(_) => ("FAIL", theme.malformed),
            None => ("    ", theme.dim),
        };
        let here = if i == s.next { "▶" } else { " " };
        let text = format!("{here}{:>2}. {word} {} — {}", i + 1, row.name, row.plan);
        lines.push(Line::from(Span::styled(fit(&text, width), style)));
    }
    // The detail: the step just run (with its outcomes), else the next one's expectations.
    let shown = s
        .next
        .checked_sub(1)
        .filter(|i| s.steps[*i].report.is_some());
    let status = s
        .busy
        .clone()
        .or_else(|| s.note.clone())
        .unwrap_or_else(|| match s.steps.get(s.next) {
            Some(next) => format!("next: step {} {}", s.next + 1, next.name),
            None => "every step has run".into(),
        });
    lines.push(Line::from(Span::styled(fit(&status, width), theme.header)));
    if let Some(i) = shown {
        if let Some(r) = &s.steps[i].report {
            for o in &r.outcomes {
                let (mark, style) = if o.held {
                    ("ok ", theme.ok)
                } else {
                    ("NOT", theme.malformed)
                };
                let text = format!("  {mark} {} ({})", o.expected, o.evidence);
                lines.push(Line::from(Span::styled(fit(&text, width), style)));
            }
        }
    } else if let Some(next) = s.steps.get(s.next) {
        for e in &next.expects {
            lines.push(Line::from(Span::styled(
                fit(&format!("  expects {e}"), width),
                theme.dim,
            )));
        }
    }
    // Keep the current step in view when the panel is short.
    let rows = inner.height as usize;
    let skip = if lines.len() > rows {
        s.next.saturating_sub(rows.saturating_sub(5))
    } else {
        0
    };
    let visible: Vec<Line> = lines.into_iter().skip(skip).take(rows).collect();
    f.render_widget(Paragraph::new(visible).style(theme.base), inner);
}
