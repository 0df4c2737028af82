//! The terminal UI (ratatui + crossterm): the exchange list, field tree and hex view, the
//! clients and settings views, over any source's store. The broker and the dissector know
//! nothing of it; it samples the store on a ~30 fps tick and never makes them wait.
//!
//! The terminal is put back as it was on every way out: quitting, Ctrl-C, SIGTERM, an error and
//! a panic (the panic hook restores it before the message is printed).

pub mod app;
mod blocks;
pub mod components;
pub mod replay;
pub mod theme;

use std::io::{self, Stdout};
use std::time::Duration;

use crossterm::event::{DisableMouseCapture, EnableMouseCapture, EventStream};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

pub use app::{App, AppDeps};

/// Time between ticks (store sampling and redraw): about 30 frames a second.
pub const TICK: Duration = Duration::from_millis(33);

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Puts the terminal back when dropped.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn setup() -> io::Result<(TerminalGuard, Terminal<CrosstermBackend<Stdout>>)> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous(info);
    }));
    enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    Ok((guard, terminal))
}

/// A view that fills the terminal: drawn, fed terminal events, and ticked about 30 times a
/// second (to sample what it shows) until it wants to quit.
pub trait Screen {
    fn draw(&mut self, f: &mut ratatui::Frame);
    fn handle_event(&mut self, event: crossterm::event::Event);
    fn tick(&mut self);
    fn wants_to_quit(&self) -> bool;
}

impl Screen for App {
    fn draw(&mut self, f: &mut ratatui::Frame) {
        App::draw(self, f)
    }
    fn handle_event(&mut self, event: crossterm::event::Event) {
        App::handle_event(self, event)
    }
    fn tick(&mut self) {
        App::tick(self)
    }
    fn wants_to_quit(&self) -> bool {
        self.quit
    }
}

/// Runs a screen until it quits or the process is told to stop (Ctrl-C, SIGTERM, SIGHUP), the
/// terminal put back as it was on every way out.
pub async fn drive(screen: &mut impl Screen) -> anyhow::Result<()> {
    let (_guard, mut terminal) = setup()?;
    terminal.clear()?;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    loop {
        terminal.draw(|f| screen.draw(f))?;
        tokio::select! {
            _ = tick.tick() => screen.tick(),
            ev = events.next() => match ev {
                Some(Ok(e)) => screen.handle_event(e),
                Some(Err(e)) => return Err(anyhow::anyhow!("reading terminal events: {e}")),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hangup.recv() => break,
        }
        if screen.wants_to_quit() {
            break;
        }
    }
    Ok(())
}

/// Runs the UI until the user quits or the process is told to stop.
pub async fn run(deps: AppDeps) -> anyhow::Result<()> {
    drive(&mut App::new(deps)).await
}
