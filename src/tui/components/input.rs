//! A one-line text input (the display filter, the command line, rule editing) with history.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::theme::Theme;

/// What the user did with the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    /// Still editing.
    Editing,
    /// Enter: the text.
    Submit(String),
    /// Esc.
    Cancel,
}

/// Longest text accepted (the filter language has the same bound).
pub const MAX_CHARS: usize = 4096;

/// A line editor: the prompt, the text and a cursor (in characters).
#[derive(Debug, Clone, Default)]
pub struct LineInput {
    pub prompt: String,
    text: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    history_pos: Option<usize>,
}

impl LineInput {
    /// An empty input with a prompt such as `filter> `.
    pub fn new(prompt: &str) -> LineInput {
        LineInput {
            prompt: prompt.to_string(),
            ..LineInput::default()
        }
    }

    /// Starts editing with this text, the cursor at its end.
    pub fn start(&mut self, text: &str) {
        self.text = text.chars().take(MAX_CHARS).collect();
        self.cursor = self.text.len();
        self.history_pos = None;
    }

    /// The text as typed.
    pub fn text(&self) -> String {
        self.text.iter().collect()
    }

    /// Cells the prompt, the text and the cursor after it need to be shown whole.
    pub fn width_wanted(&self) -> usize {
        self.prompt.chars().count() + self.text.len() + 1
    }

    /// Handles a key.
    pub fn on_key(&mut self, key: KeyEvent) -> InputEvent {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Enter => {
                let t = self.text();
                if !t.trim().is_empty() && self.history.last() != Some(&t) {
                    self.history.push(t.clone());
                    if self.history.len() > 100 {
                        self.history.remove(0);
                    }
                }
                self.history_pos = None;
                return InputEvent::Submit(t);
            }
            KeyCode::Esc => return InputEvent::Cancel,
            KeyCode::Char('c') if ctrl => return InputEvent::Cancel,
            KeyCode::Char('u') if ctrl => {
                self.text.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.len(),
            KeyCode::Char('w') if ctrl => {
                let mut start = self.cursor;
                while start > 0 && self.text[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.text[start - 1] != ' ' {
                    start -= 1;
                }
                self.text.drain(start..self.cursor);
                self.cursor = start;
            }
            KeyCode::Char(c) if !ctrl && self.text.len() < MAX_CHARS => {
                self.text.insert(self.cursor, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.text.remove(self.cursor);
            }
            KeyCode::Delete if self.cursor < self.text.len() => {
                self.text.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.text.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.len(),
            KeyCode::Up if !self.history.is_empty() => {
                let pos = match self.history_pos {
                    None => self.history.len() - 1,
                    Some(p) => p.saturating_sub(1),
                };
                self.history_pos = Some(pos);
                let t = self.history[pos].clone();
                self.start(&t);
                self.history_pos = Some(pos);
            }
            KeyCode::Down => {
                if let Some(p) = self.history_pos {
                    if p + 1 < self.history.len() {
                        let t = self.history[p + 1].clone();
                        self.start(&t);
                        self.history_pos = Some(p + 1);
                    } else {
                        self.start("");
                    }
                }
            }
            _ => {}
        }
        InputEvent::Editing
    }

    /// Draws the prompt and text on one line, with the terminal cursor placed.
    pub fn draw(&self, f: &mut Frame, area: Rect, theme: &Theme) {
        let prompt_len = self.prompt.chars().count();
        let room = (area.width as usize).saturating_sub(prompt_len + 1);
        // Scroll horizontally so the cursor stays visible.
        let start = self.cursor.saturating_sub(room);
        let shown: String = self.text[start..].iter().take(room + 1).collect();
        let line = Line::from(vec![
            Span::styled(self.prompt.clone(), theme.header),
            Span::raw(shown),
        ]);
        f.render_widget(Paragraph::new(line).style(theme.input), area);
        let x = area.x
            + (prompt_len + self.cursor - start).min((area.width as usize).saturating_sub(1))
                as u16;
        f.set_cursor_position((x, area.y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn edits_and_history() {
        let mut i = LineInput::new("> ");
        for c in "api == Fetch".chars() {
            i.on_key(key(KeyCode::Char(c)));
        }
        for _ in 0..5 {
            i.on_key(key(KeyCode::Backspace));
        }
        for c in "Produce".chars() {
            i.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(
            i.on_key(key(KeyCode::Enter)),
            InputEvent::Submit("api == Produce".into())
        );
        i.start("");
        i.on_key(key(KeyCode::Up));
        assert_eq!(i.text(), "api == Produce");
        i.on_key(KeyEvent::new(KeyCode::Char('w'), KeyModifiers::CONTROL));
        assert_eq!(i.text(), "api == ");
        assert_eq!(i.on_key(key(KeyCode::Esc)), InputEvent::Cancel);
    }
}
