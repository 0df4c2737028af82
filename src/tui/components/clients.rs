//! The clients view: one row per client connection with what is known of it (software,
//! negotiated versions, requests, the request in flight, placement, health) and, for the
//! selected one, the stall detector's evidence in full.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::{millis, pane, scroll_to, Outcome};
use crate::capture::{now_micros, InFlight};
use crate::diagnose::{ConnInfo, Health};
use crate::protocol::registry;
use crate::tui::theme::Theme;

/// What the clients view shows.
pub struct ClientsData<'a> {
    /// The connection table, sorted by connection.
    pub clients: &'a [ConnInfo],
    /// The request a connection's source is handling now.
    pub in_flight: &'a dyn Fn(u64) -> Option<InFlight>,
    /// The stall detector's thresholds, as text.
    pub thresholds: &'a str,
}

/// The clients pane's state.
#[derive(Debug, Default)]
pub struct ClientsView {
    selected: usize,
    offset: usize,
    /// Connection of the selected row at the last draw.
    pub selected_conn: Option<u64>,
    pub area: Rect,
}

/// Short API names for the versions column.
fn short_api(key: i16) -> String {
    let name = registry::api_name(key);
    match name.as_str() {
        "ApiVersions" => "ApiV".into(),
        "Metadata" => "Meta".into(),
        "Produce" => "Prod".into(),
        "Fetch" => "Fetch".into(),
        "FindCoordinator" => "FindC".into(),
        "InitProducerId" => "InitPid".into(),
        "OffsetCommit" => "OCommit".into(),
        "OffsetFetch" => "OFetch".into(),
        "ListOffsets" => "LOffs".into(),
        "ConsumerGroupHeartbeat" => "CGHb".into(),
        _ => name,
    }
}

/// `ApiV3 Meta12 Prod9 …`: the version last used per API, the interesting ones first.
pub fn versions_text(c: &ConnInfo) -> String {
    let order = [18i16, 3, 0, 1, 2, 10, 11, 14, 12, 68, 8, 9, 22];
    let mut keys: Vec<i16> = order
        .iter()
        .copied()
        .filter(|k| c.negotiated.contains_key(k))
        .collect();
    keys.extend(
        c.negotiated
            .keys()
            .copied()
            .filter(|k| *k >= 0 && !order.contains(k)),
    );
    keys.iter()
        .map(|k| format!("{}{}", short_api(*k), c.negotiated[k]))
        .collect::<Vec<_>>()
        .join(" ")
}

impl ClientsView {
    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent, rows: usize) -> Outcome {
        let last = rows.saturating_sub(1);
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.selected = (self.selected + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => self.selected = 0,
            KeyCode::End | KeyCode::Char('G') => self.selected = last,
            _ => return Outcome::Ignored,
        }
        Outcome::Consumed
    }

    /// Selects a row by screen line (mouse).
    pub fn click(&mut self, row: u16, rows: usize) -> bool {
        let Some(line) = row.checked_sub(self.area.y + 2) else {
            return false;
        };
        let i = self.offset + line as usize;
        if i < rows {
            self.selected = i;
            true
        } else {
            false
        }
    }

    /// Draws the table (clients sorted by connection) and the evidence of the selected one.
    pub fn draw(&mut self, f: &mut Frame, area: Rect, theme: &Theme, data: ClientsData<'_>) {
        let ClientsData {
            clients,
            in_flight,
            thresholds,
        } = data;
        let focused = true;
        let [table_area, detail_area] =
            Layout::vertical([Constraint::Min(5), Constraint::Length(6)]).areas(area);
        self.area = table_area;
        self.selected = self.selected.min(clients.len().saturating_sub(1));
        self.selected_conn = clients.get(self.selected).map(|c| c.conn);
        let open = clients.iter().filter(|c| c.closed.is_none()).count();
        let unhealthy = clients
            .iter()
            .filter(|c| c.health != Health::Healthy)
            .count();
        let block = pane(
            format!(
                " Clients: {} connections, {open} open, {unhealthy} not healthy ",
                clients.len()
            ),
            focused,
            theme,
        );
        let inner = block.inner(table_area);
        f.render_widget(block, table_area);
        let height = inner.height.saturating_sub(1) as usize;
        self.offset = scroll_to(self.offset, self.selected, height);
        let now = now_micros();
        let wide = inner.width >= 120;
        let mut header = vec![
            "conn",
            "client id",
            "software",
            "versions",
            "reqs",
            "in flight",
            "placement",
            "health",
        ];
        if wide {
            header.insert(1, "peer");
        }
        let rows: Vec<Row> = clients
            .iter()
            .enumerate()
            .skip(self.offset)
            .take(height)
            .map(|(i, c)| {
                let flight = in_flight(c.conn)
                    .map(|r| {
                        format!(
                            "{} v{} {}",
                            short_api(r.api_key),
                            r.api_version,
                            millis(now - r.since)
                        )
                    })
                    .unwrap_or_else(|| "-".into());
                let mut cells = vec![
                    c.conn.to_string(),
                    c.client_id.clone().unwrap_or_else(|| "-".into()),
                    c.software().unwrap_or_else(|| "-".into()),
                    versions_text(c),
                    c.requests.to_string(),
                    flight,
                    c.placement.clone().unwrap_or_else(|| "-".into()),
                    c.state(),
                ];
                if wide {
                    cells.insert(1, c.peer.to_string());
                }
                let style = if i == self.selected {
                    theme.selected
                } else if c.health != Health::Healthy {
                    theme.stalled
                } else if c.closed.is_some() {
                    theme.dim
                } else {
                    theme.base
                };
                Row::new(cells).style(style)
            })
            .collect();
        let mut widths = vec![
            Constraint::Length(4),
            Constraint::Length(16),
            Constraint::Length(22),
            Constraint::Min(12),
            Constraint::Length(5),
            Constraint::Length(14),
            Constraint::Length(10),
            // Every state whole (`disconnecting,closed*`), the other columns giving way first
            // on a narrow screen.
            Constraint::Min(ConnInfo::state_width() as u16),
        ];
        if wide {
            widths.insert(1, Constraint::Length(21));
        }
        if clients.is_empty() {
            f.render_widget(
                Paragraph::new("No client has connected yet.").style(theme.dim),
                inner,
            );
        } else {
            f.render_widget(
                Table::new(rows, widths)
                    .header(Row::new(header).style(theme.header))
                    .column_spacing(1),
                inner,
            );
        }
        let block = pane(
            format!(" Evidence (thresholds: {thresholds}) "),
            false,
            theme,
        );
        let inner = block.inner(detail_area);
        f.render_widget(block, detail_area);
        let text = match clients.get(self.selected) {
            None => vec![Line::from("")],
            Some(c) => {
                let mut lines = vec![Line::from(vec![
                    Span::styled(format!("conn {} {} ", c.conn, c.peer), theme.header),
                    Span::styled(
                        c.health.word(),
                        if c.health == Health::Healthy {
                            theme.ok
                        } else {
                            theme.stalled
                        },
                    ),
                    Span::raw(format!(
                        "  requests {}  acks=0 {}  unanswered {}  undecodable responses {}",
                        c.requests, c.no_response, c.unanswered, c.undecodable_responses
                    )),
                ])];
                match &c.evidence {
                    Some(e) => lines.push(Line::from(e.text.clone())),
                    None => lines.push(Line::styled("no evidence against this client", theme.dim)),
                }
                if let Some((by, _, why)) = &c.closed {
                    lines.push(Line::styled(
                        format!("closed by the {by:?}: {why}").to_lowercase(),
                        theme.dim,
                    ));
                }
                lines
            }
        };
        f.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    /// Every state (each health word, open and closed by either side) is shown whole, in the
    /// health column under its title, at the widths the UI is used at.
    #[test]
    fn every_state_is_whole_under_the_health_title() {
        let conns = crate::diagnose::fixtures::every_state();
        for width in [80u16, 120, 160] {
            let mut t = Terminal::new(TestBackend::new(width, 30)).unwrap();
            let mut view = ClientsView::default();
            t.draw(|f| {
                view.draw(
                    f,
                    f.area(),
                    &Theme::default_theme(),
                    ClientsData {
                        clients: &conns,
                        in_flight: &|_| None,
                        thresholds: "-",
                    },
                )
            })
            .unwrap();
            let buf = t.backend().buffer();
            let row = |y: u16| -> Vec<String> {
                (0..width)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect()
            };
            let header = row(1).concat();
            let x = header
                .chars()
                .collect::<Vec<_>>()
                .windows(6)
                .position(|w| w.iter().collect::<String>() == "health")
                .unwrap_or_else(|| panic!("health title at {width}: {header}"));
            for (i, c) in conns.iter().enumerate() {
                let cells = row(2 + i as u16);
                let state = c.state();
                let shown: String =
                    cells[x..(x + ConnInfo::state_width()).min(cells.len())].concat();
                assert_eq!(
                    shown.trim_end(),
                    state,
                    "row {i} at width {width}: {}",
                    cells.concat()
                );
                assert_eq!(cells[x - 1], " ", "row {i} at width {width}");
            }
        }
    }
}
