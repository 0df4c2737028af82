//! A scenario stepped by hand: the terminal UI sends `next`, `run` and `restart`, a task carries
//! them out on the [`Runner`], and the UI draws the shared [`StepsState`] on its tick.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::run::{Runner, StepReport};
use super::{Action, Scenario};

/// What the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepCommand {
    /// Run the next step.
    Next,
    /// Run to the end, or to the first step whose expectations do not all hold.
    RunAll,
    /// Restart the broker and run the steps before the current one again (the settings stay
    /// as they are now, so a knob flipped between steps is kept).
    Restart,
}

/// One step as the panel shows it.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub name: String,
    /// What it will do (`kafka-python-2 produce`, `set placement spec`).
    pub plan: String,
    /// What it expects, described.
    pub expects: Vec<String>,
    /// Its last run, if it ran.
    pub report: Option<StepReport>,
}

/// The scenario as far as it has run.
#[derive(Debug, Clone)]
pub struct StepsState {
    pub scenario: String,
    pub steps: Vec<StepRow>,
    /// The step `n` runs (from 0); `steps.len()` when all ran.
    pub next: usize,
    /// What is being done right now (`running step 2`), if anything.
    pub busy: Option<String>,
    /// The broker's address.
    pub broker: String,
    /// The last thing worth saying (a failure to restart, say).
    pub note: Option<String>,
}

/// The UI's side: the state to draw and where to send commands.
#[derive(Clone)]
pub struct StepsHandle {
    pub state: Arc<Mutex<StepsState>>,
    tx: mpsc::UnboundedSender<StepCommand>,
}

impl StepsHandle {
    /// A copy of the state now.
    pub fn snapshot(&self) -> StepsState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks for a command; ignored while one runs (said in the state's note).
    pub fn send(&self, cmd: StepCommand) {
        let _ = self.tx.send(cmd);
    }
}

fn plan(step: &super::Step) -> String {
    match &step.action {
        Action::Client(c) => {
            let who = match &c.program {
                super::Program::Known(k) => k.name.to_string(),
                super::Program::Command(argv) => argv.join(" "),
            };
            let what = match c.action {
                super::ClientAction::Produce => "produce",
                super::ClientAction::Consume => "consume",
            };
            format!("{who} {what} {} ({})", c.count, c.topic)
        }
        Action::Send(s) => format!(
            "send {} v{} on {}",
            crate::protocol::registry::api_name(s.api_key),
            s.version,
            s.conn
        ),
        Action::Set(lines) => format!("set {}", lines.join("; ")),
        Action::Wait(d) => format!("wait {}", super::show_duration(*d)),
        Action::Nothing => "check".into(),
    }
}

/// The state of a scenario before any step ran.
pub fn initial_state(scenario: &Scenario, broker: String) -> StepsState {
    StepsState {
        scenario: scenario.name.clone(),
        steps: scenario
            .steps
            .iter()
            .map(|s| StepRow {
                name: s.name.clone(),
                plan: plan(s),
                expects: s.expect.iter().map(|e| e.describe()).collect(),
                report: None,
            })
            .collect(),
        next: 0,
        busy: None,
        broker,
        note: None,
    }
}

/// Starts the task that carries commands out on `runner` (its broker already started).
pub fn spawn(runner: Runner, broker: String) -> StepsHandle {
    let state = Arc::new(Mutex::new(initial_state(&runner.scenario, broker)));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(runner, rx, state.clone()));
    StepsHandle { state, tx }
}

fn with<T>(state: &Mutex<StepsState>, f: impl FnOnce(&mut StepsState) -> T) -> T {
    f(&mut state.lock().unwrap_or_else(|e| e.into_inner()))
}

async fn drive(
    mut runner: Runner,
    mut rx: mpsc::UnboundedReceiver<StepCommand>,
    state: Arc<Mutex<StepsState>>,
) {
    let total = runner.scenario.steps.len();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            StepCommand::Next | StepCommand::RunAll => loop {
                let i = with(&state, |s| s.next);
                if i >= total {
                    with(&state, |s| {
                        s.note = Some("every step has run (b: again)".into())
                    });
                    break;
                }
                with(&state, |s| s.busy = Some(format!("running step {}", i + 1)));
                let report = runner.step(i).await;
                let passed = report.passed;
                with(&state, |s| {
                    s.steps[i].report = Some(report);
                    s.next = i + 1;
                    s.busy = None;
                    s.note = None;
                });
                if cmd == StepCommand::Next || !passed {
                    break;
                }
            },
            StepCommand::Restart => {
                let upto = with(&state, |s| s.next.saturating_sub(1));
                with(&state, |s| s.busy = Some("restarting the broker".into()));
                match runner.restart().await {
                    Ok(addr) => {
                        with(&state, |s| {
                            s.broker = addr.to_string();
                            for row in &mut s.steps {
                                row.report = None;
                            }
                            s.next = 0;
                        });
                        for i in 0..upto {
                            with(&state, |s| {
                                s.busy = Some(format!("replaying step {} of {upto}", i + 1))
                            });
                            let report = runner.step(i).await;
                            with(&state, |s| {
                                s.steps[i].report = Some(report);
                                s.next = i + 1;
                            });
                        }
                        with(&state, |s| {
                            s.busy = None;
                            s.note = Some(format!(
                                "broker restarted on {addr}; replayed {upto} step(s)"
                            ));
                        });
                    }
                    Err(e) => with(&state, |s| {
                        s.busy = None;
                        s.note = Some(format!("restart failed: {e}"));
                    }),
                }
            }
        }
        // Commands sent while this one ran are dropped: each key acts on what it saw.
        while rx.try_recv().is_ok() {}
    }
    runner.stop().await;
}
