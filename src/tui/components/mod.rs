//! The panes. Each owns its state, draws itself into the area it is given and handles the keys
//! routed to it; none of them knows about the others (the app connects them).

pub mod charts;
pub mod clients;
pub mod exchange_list;
pub mod field_tree;
pub mod help;
pub mod hex_view;
pub mod input;
pub mod settings_view;
pub mod status_bar;
pub mod steps;

use ratatui::layout::{Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders};

use super::theme::Theme;

/// What a component did with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not for this component.
    Ignored,
    /// Handled; redraw.
    Consumed,
}

/// A bordered pane with a title; the border shows whether it has focus.
pub fn pane<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(title)
        .title_style(theme.title)
        .style(theme.base)
}

/// Whether a screen cell lies inside a rectangle.
pub fn contains(area: Rect, column: u16, row: u16) -> bool {
    area.contains(Position { x: column, y: row })
}

/// Keeps `offset` so that `selected` is visible in a window of `height` rows.
pub fn scroll_to(offset: usize, selected: usize, height: usize) -> usize {
    let height = height.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}

/// Cuts text to at most `width` characters, marking the cut with `…`.
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// Pads or cuts text to exactly `width` characters.
pub fn cell(text: &str, width: usize) -> String {
    let t = fit(text, width);
    let n = t.chars().count();
    format!("{t}{}", " ".repeat(width - n.min(width)))
}

/// A key hint such as `p placement` for the bottom line.
pub fn hint<'a>(key: &'a str, what: &'a str, theme: &Theme) -> Vec<Span<'a>> {
    vec![
        Span::styled(key, theme.header),
        Span::styled(format!(" {what}  "), Style::default()),
    ]
}

/// Formats µs as a latency: `0.31ms`, `502ms`, `2.1s`.
pub fn millis(us: i64) -> String {
    if us >= 10_000_000 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if us >= 10_000 {
        format!("{:.0}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}ms", us as f64 / 1000.0)
    }
}

/// `HH:MM:SS.mmm` (UTC) of µs since the epoch.
pub fn clock_ms(micros: i64) -> String {
    let full = crate::capture::render::clock(micros);
    full[..full.len().saturating_sub(3)].to_string()
}

/// `YYYY-MM-DD HH:MM:SS.mmm UTC` of ms since the epoch (proleptic Gregorian calendar).
pub fn date_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Days to civil date (Howard Hinnant's algorithm, public domain description).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03} UTC",
        in_day / 3_600_000,
        (in_day / 60_000) % 60,
        (in_day / 1000) % 60,
        in_day % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_widths() {
        assert_eq!(date_ms(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(date_ms(1_796_083_303_191), "2026-12-01 00:01:43.191 UTC");
        assert_eq!(date_ms(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(cell("ab", 4), "ab  ");
        assert_eq!(scroll_to(0, 30, 10), 21);
        assert_eq!(scroll_to(25, 3, 10), 3);
        assert_eq!(millis(310), "0.31ms");
        assert_eq!(millis(502_000), "502ms");
    }
}
