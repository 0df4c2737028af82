//! Request rate and latency over the last minutes, one bucket per second, as sparklines.

use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::millis;
use crate::tui::theme::Theme;

/// Seconds kept.
const KEEP: i64 = 600;

/// Per-second buckets of requests and their worst latency.
#[derive(Debug, Default)]
pub struct Charts {
    /// second since the epoch -> (requests, max latency µs), within KEEP seconds of `now`.
    buckets: BTreeMap<i64, (u64, u64)>,
    /// The newest second seen (the clock or an exchange).
    now: i64,
}

impl Charts {
    /// Counts one exchange: when its request arrived and its latency.
    pub fn record(&mut self, request_at: i64, latency_us: Option<i64>) {
        let sec = request_at.div_euclid(1_000_000);
        self.advance(sec);
        if sec <= self.now - KEEP {
            return;
        }
        let b = self.buckets.entry(sec).or_default();
        b.0 += 1;
        b.1 = b.1.max(latency_us.unwrap_or(0).max(0) as u64);
    }

    /// Moves the clock on to `sec` (when nothing arrives the charts still move).
    pub fn advance(&mut self, sec: i64) {
        if sec > self.now {
            self.now = sec;
            let keep_from = sec - KEEP + 1;
            self.buckets = self.buckets.split_off(&keep_from);
        }
    }

    /// The last `n` seconds up to now, oldest first: (requests, max latency).
    fn series(&self, n: u16) -> Vec<(u64, u64)> {
        let from = self.now - i64::from(n) + 1;
        (from..=self.now)
            .map(|s| self.buckets.get(&s).copied().unwrap_or_default())
            .collect()
    }

    /// Draws `req/s ▁▂▅ N  max latency ▁▃▁ X` on one line.
    pub fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let [l1, s1, l2, s2] = Layout::horizontal([
            Constraint::Length(14),
            Constraint::Percentage(50),
            Constraint::Length(20),
            Constraint::Percentage(50),
        ])
        .areas(area);
        let rate: Vec<u64> = self.series(s1.width).iter().map(|b| b.0).collect();
        let lat: Vec<u64> = self.series(s2.width).iter().map(|b| b.1).collect();
        let now_rate = rate.iter().rev().nth(1).copied().unwrap_or(0);
        let now_lat = lat.iter().rev().find(|v| **v > 0).copied().unwrap_or(0);
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(" req/s {now_rate:>6} "),
                theme.chart_rate,
            )),
            l1,
        );
        f.render_widget(Sparkline::default().data(&rate).style(theme.chart_rate), s1);
        f.render_widget(
            Paragraph::new(Span::styled(
                format!(" max latency {:>7} ", millis(now_lat as i64)),
                theme.chart_latency,
            )),
            l2,
        );
        f.render_widget(
            Sparkline::default().data(&lat).style(theme.chart_latency),
            s2,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_second_with_gaps_filled() {
        let mut c = Charts::default();
        c.record(10_000_000, Some(300));
        c.record(10_500_000, Some(900));
        c.record(13_000_000, None);
        assert_eq!(c.series(5), vec![(0, 0), (2, 900), (0, 0), (0, 0), (1, 0)]);
        // An exchange older than the clock (the clock ran first) still counts.
        c.advance(20);
        c.record(19_000_000, Some(5));
        assert_eq!(c.series(2), vec![(1, 5), (0, 0)]);
        c.advance(10_000);
        assert!(c.buckets.is_empty());
        c.record(1_000_000, Some(1));
        assert!(c.buckets.is_empty(), "older than the window: not kept");
    }
}
