//! Where a ProduceResponse carries `throttle_time_ms`. Apache Kafka writes it after the
//! responses array (v1 and later); Chronik Stream 0.7.2 wrote it before the array for v1–v8,
//! which clients read as a different layout. The embedded broker can encode either, or leave
//! the field out, to show what clients do with each.

use std::fmt;

use serde::Serialize;

use crate::mutate::Mutation;

/// Where ProduceResponse puts `throttle_time_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottlePlacement {
    /// Where Apache Kafka puts it: after the responses array (v1+).
    #[default]
    Spec,
    /// Before the responses array, as Chronik Stream 0.7.2 did for v1–v8.
    Front,
    /// Left out.
    Omit,
}

impl ThrottlePlacement {
    /// All modes, in the order a UI cycles through them.
    pub const ALL: [ThrottlePlacement; 3] = [
        ThrottlePlacement::Spec,
        ThrottlePlacement::Front,
        ThrottlePlacement::Omit,
    ];

    /// The word used on the command line, in commands and in the UI.
    pub fn word(self) -> &'static str {
        match self {
            ThrottlePlacement::Spec => "spec",
            ThrottlePlacement::Front => "front",
            ThrottlePlacement::Omit => "omit",
        }
    }

    /// The mutation that gives a ProduceResponse of `version` this placement's layout: `front`
    /// moves `throttle_time_ms` before the responses array on v1-v8 (Chronik Stream 0.7.2 moved
    /// it there only; on v9+ a leading int32 would stand where the client reads a compact array
    /// length, a framing error no broker shipped), `omit` leaves it out on v1+. `None` where the
    /// response is encoded as the spec has it (spec, v0 which has no such field, front on v9+).
    pub fn preset(self, version: i16) -> Option<Mutation> {
        let throttle = crate::fid!("produce.response.throttle_time_ms");
        match self {
            ThrottlePlacement::Front if (1..=8).contains(&version) => Some(Mutation::Move {
                field: throttle,
                anchor: crate::fid!("produce.response.responses"),
                before: true,
            }),
            ThrottlePlacement::Omit if version >= 1 => Some(Mutation::Omit { field: throttle }),
            _ => None,
        }
    }

    /// The next mode in [`ThrottlePlacement::ALL`], wrapping.
    pub fn next(self) -> ThrottlePlacement {
        let i = Self::ALL.iter().position(|p| *p == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

impl fmt::Display for ThrottlePlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl std::str::FromStr for ThrottlePlacement {
    type Err = String;
    /// A mode's word, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.word().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown placement {s:?}: expected spec, front or omit"))
    }
}
