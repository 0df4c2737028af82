//! Runtime-mutable knobs shared by the broker and the views (throttle placement, rules, version
//! caps, faults). One object, read on every response, changed from the UI or a control input.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

/// Where ProduceResponse puts `throttle_time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThrottlePlacement {
    /// Where Apache Kafka puts it: after the responses array (v1+).
    #[default]
    Spec,
    /// Before the responses array, as Chronik Stream 0.7.2 did for v1–v8.
    Front,
    /// Left out.
    Omit,
}

/// The knobs.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    pub placement: ThrottlePlacement,
    /// Value written into `throttle_time_ms` of every response that has one.
    pub throttle_ms: i32,
}

/// The shared settings object; subscribers see every change.
pub struct Settings {
    knobs: RwLock<Knobs>,
    tx: watch::Sender<u64>,
}

impl Settings {
    pub fn new(knobs: Knobs) -> Arc<Settings> {
        let (tx, _) = watch::channel(0);
        Arc::new(Settings {
            knobs: RwLock::new(knobs),
            tx,
        })
    }

    /// A copy of the current knobs.
    pub fn get(&self) -> Knobs {
        self.knobs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the knobs and notifies subscribers.
    pub fn update(&self, f: impl FnOnce(&mut Knobs)) {
        {
            let mut k = self.knobs.write().unwrap_or_else(|e| e.into_inner());
            f(&mut k);
        }
        self.tx.send_modify(|n| *n += 1);
    }

    /// A receiver that changes whenever the knobs do.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}
