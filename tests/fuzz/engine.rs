//! The fuzzing loop: a seeded PRNG, mutations in the manner of libFuzzer's, a time budget,
//! and the checks on every input (no panic, a bounded peak of allocation, an end in time).
//!
//! Iteration `i` of target `t` draws from its own generator, seeded from the run's seed, the
//! target's name and `i`, so `CHRONIK_FUZZ_SEED` replays a run input for input.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ALLOC;

/// Seconds each target runs by default (after its regressions and seeds).
const DEFAULT_SECS: f64 = 6.0;
/// One input that runs longer than this is a failure (the process is ended: a loop cannot
/// be interrupted from outside).
const INPUT_TIMEOUT: Duration = Duration::from_secs(30);
/// No mutated input grows past this.
const MAX_INPUT: usize = 1 << 20;

/// Targets run one at a time even when the test runner runs them on threads of one process,
/// so that the allocation figures are each target's own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A stable hash of a name (FNV-1a), to give each target its own stream of inputs.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the environment asks of a run.
struct Config {
    secs: f64,
    seed: u64,
}

fn config() -> Config {
    let secs = match std::env::var("CHRONIK_FUZZ_SECS") {
        Ok(s) => s
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("CHRONIK_FUZZ_SECS={s:?} is not a number of seconds")),
        Err(_) => DEFAULT_SECS,
    };
    let seed = match std::env::var("CHRONIK_FUZZ_SEED") {
        Ok(s) => s
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("CHRONIK_FUZZ_SEED={s:?} is not a u64")),
        // A new seed each run, so that runs explore different inputs; it is printed.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    };
    Config { secs, seed }
}

/// One fuzz target.
pub struct Target<'a> {
    /// Names the regression folder `tests/fuzz/regressions/NAME/` and the seed stream.
    pub name: &'static str,
    /// Valid inputs to start from.
    pub seeds: Vec<Vec<u8>>,
    /// Runs one input; checks of its own panic.
    pub run: &'a dyn Fn(&[u8]),
    /// Most bytes one input may have allocated at once.
    pub alloc_bound: fn(&[u8]) -> usize,
    /// A change that knows the input's format (another API key, another chunking), applied
    /// to some inputs besides the byte-level mutations.
    pub tweak: Option<fn(&mut Rng, &mut Vec<u8>)>,
}

/// What was wrong with one input.
struct Failure {
    what: String,
}

/// The input being run, for the watchdog.
struct Current {
    label: String,
    started: Instant,
    input: Vec<u8>,
}

/// Runs a target: its saved regressions, its seeds, then mutated inputs until the budget is
/// spent. Panics (the test fails) at the first input that fails a check, saying how to
/// replay it.
pub fn fuzz(t: Target) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let cfg = config();
    let regressions = regression_inputs(t.name);
    eprintln!(
        "fuzz {}: seed {} (CHRONIK_FUZZ_SEED), {} s, {} seeds, {} regressions",
        t.name,
        cfg.seed,
        cfg.secs,
        t.seeds.len(),
        regressions.len()
    );
    assert!(!t.seeds.is_empty(), "fuzz {}: no seeds", t.name);
    let current: Mutex<Option<Current>> = Mutex::new(None);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let mut iterations = 0u64;
    let mut worst_alloc = 0usize;
    std::thread::scope(|s| {
        s.spawn(|| watchdog(t.name, cfg.seed, &current, &done));
        let result = (|| -> Result<(), Failure> {
            for (path, input) in &regressions {
                let label = format!("regression {}", path.display());
                worst_alloc = worst_alloc.max(check(&t, input, &label, &current)?);
            }
            for (i, input) in t.seeds.iter().enumerate() {
                let label = format!("seed {i}");
                worst_alloc = worst_alloc.max(check(&t, input, &label, &current)?);
            }
            // The budget is the mutated inputs' own, after the regressions and seeds.
            let budget = Duration::from_secs_f64(cfg.secs.max(0.0));
            let stream = cfg.seed ^ name_hash(t.name);
            let fuzzing = Instant::now();
            while fuzzing.elapsed() < budget {
                let mut rng = Rng::new(stream.wrapping_add(iterations.wrapping_mul(0x2545_f491)));
                let input = mutated(&t, &mut rng);
                let label = format!("iteration {iterations}");
                let peak = check(&t, &input, &label, &current).map_err(|f| {
                    let saved = save_failure(t.name, cfg.seed, iterations, &input);
                    Failure {
                        what: format!(
                            "{}\n  replay: CHRONIK_FUZZ_SEED={} (iteration {iterations}); \
                             input saved to {}; keep it as a regression case in \
                             tests/fuzz/regressions/{}/",
                            f.what,
                            cfg.seed,
                            saved.display(),
                            t.name
                        ),
                    }
                })?;
                worst_alloc = worst_alloc.max(peak);
                iterations += 1;
            }
            Ok(())
        })();
        done.store(true, Ordering::Relaxed);
        if let Err(f) = result {
            panic!("fuzz {}: {}", t.name, f.what);
        }
    });
    eprintln!(
        "fuzz {}: {} iterations in {:.1} s (seed {}); peak allocation {} MiB in all, {} KiB \
         measured for one input",
        t.name,
        iterations,
        started.elapsed().as_secs_f64(),
        cfg.seed,
        ALLOC.max_allocated() >> 20,
        worst_alloc >> 10
    );
}

/// Runs one input under the checks; returns the most it allocated at once, or 0 when that is
/// not known. The allocator keeps only the process's peak: an input's own peak is known when
/// it raised that peak. An input over its bound always does (the seeds and earlier inputs
/// stayed within the same bound over about the same base), so none goes unnoticed.
fn check(
    t: &Target,
    input: &[u8],
    label: &str,
    current: &Mutex<Option<Current>>,
) -> Result<usize, Failure> {
    *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Current {
        label: label.to_string(),
        started: Instant::now(),
        input: input.to_vec(),
    });
    lift_the_limit_on_panic();
    let bound = (t.alloc_bound)(input);
    let before = ALLOC.allocated();
    let peak_before = ALLOC.max_allocated();
    // A hard stop well past the bound, so a runaway allocation ends the process (an abort,
    // "memory allocation of N bytes failed") rather than the machine's memory.
    let _ = ALLOC.set_limit(before.saturating_add(bound.saturating_mul(2)));
    let outcome = catch_unwind(AssertUnwindSafe(|| (t.run)(input)));
    let _ = ALLOC.set_limit(usize::MAX);
    *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let peak = ALLOC.max_allocated();
    let used = if peak > peak_before {
        peak.saturating_sub(before)
    } else {
        0
    };
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        return Err(Failure {
            what: format!("{label} ({} bytes) panicked: {message}", input.len()),
        });
    }
    if used > bound {
        return Err(Failure {
            what: format!(
                "{label} ({} bytes) allocated {} KiB at once, over its bound of {} KiB",
                input.len(),
                used >> 10,
                bound >> 10
            ),
        });
    }
    Ok(used)
}

/// Installs (once) a panic hook that lifts the allocation limit before the default hook
/// reports the panic: with `RUST_BACKTRACE` set, writing the backtrace allocates megabytes
/// (the debug information), which an input's limit would refuse, aborting the report.
fn lift_the_limit_on_panic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = ALLOC.set_limit(usize::MAX);
            report(info);
        }));
    });
}

/// Ends the process when one input runs past [`INPUT_TIMEOUT`], after saving it.
fn watchdog(name: &str, seed: u64, current: &Mutex<Option<Current>>, done: &AtomicBool) {
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let guard = current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = guard
            .as_ref()
            .filter(|c| c.started.elapsed() > INPUT_TIMEOUT)
        {
            let saved = save_failure(name, seed, u64::MAX, &c.input);
            eprintln!(
                "fuzz {name}: {} ran for more than {} s (CHRONIK_FUZZ_SEED={seed}); input saved \
                 to {}",
                c.label,
                INPUT_TIMEOUT.as_secs(),
                saved.display()
            );
            std::process::exit(1);
        }
    }
}

/// A new input: a seed (or two spliced), changed one to eight times.
fn mutated(t: &Target, rng: &mut Rng) -> Vec<u8> {
    let mut data = rng.pick(&t.seeds).clone();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        match (t.tweak, rng.below(8)) {
            (Some(tweak), 0) => tweak(rng, &mut data),
            _ => mutate(rng, &mut data, &t.seeds),
        }
    }
    data.truncate(MAX_INPUT);
    data
}

/// Values that break code at its edges, as big-endian bytes of each width.
const INTERESTING_8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x40, 0xfe, 2];
const INTERESTING_16: [i16; 8] = [0, -1, -2, 1, i16::MAX, i16::MIN, 0x100, 0x7ff];
const INTERESTING_32: [i32; 10] = [
    0,
    -1,
    -2,
    1,
    i32::MAX,
    i32::MIN,
    0x10000,
    0x7fff_fff0,
    1 << 24,
    0xffff,
];
const INTERESTING_64: [i64; 6] = [0, -1, i64::MAX, i64::MIN, 1 << 40, 1];
/// Varints at their limits: the largest 5-byte, an unterminated one, zero, a 10-byte.
const VARINTS: [&[u8]; 6] = [
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x80, 0x80, 0x80, 0x80, 0x80],
    &[0x00],
    &[0xfe, 0xff, 0xff, 0xff, 0x0f],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
];

/// One byte-level change.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let len = data.len();
    let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    match rng.below(13) {
        0 if len > 0 => {
            let i = at(rng);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = at(rng);
            data[i] = *rng.pick(&INTERESTING_8);
        }
        // Big-endian (Kafka) or little-endian (most pcap files).
        2 => {
            let v = *rng.pick(&INTERESTING_16);
            let bytes = if rng.one_in(3) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            overwrite(rng, data, &bytes);
        }
        3 => {
            let v = *rng.pick(&INTERESTING_32);
            let bytes = if rng.one_in(3) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            overwrite(rng, data, &bytes);
        }
        4 => {
            let v = *rng.pick(&INTERESTING_64);
            overwrite(rng, data, &v.to_be_bytes());
        }
        5 => {
            // A length or count field set to what is left of the input, give or take one.
            let i = at(rng);
            let left = (len - i.min(len)) as i64 + rng.below(3) as i64 - 1;
            let bytes = (left as i32).to_be_bytes();
            overwrite_at(data, i, &bytes);
        }
        6 => {
            let v = *rng.pick(&VARINTS);
            if rng.one_in(2) {
                overwrite(rng, data, v);
            } else {
                let i = at(rng);
                data.splice(i..i, v.iter().copied());
            }
        }
        7 if len > 0 => {
            let cut = rng.below(len);
            data.truncate(cut);
        }
        8 => {
            let i = at(rng);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(i..i, bytes);
        }
        9 if len > 0 => {
            let i = at(rng);
            let n = 1 + rng.below((len - i).min(64));
            data.drain(i..i + n);
        }
        10 if len > 0 => {
            // A region repeated (many records, elements or segments where one was).
            let i = at(rng);
            let n = 1 + rng.below((len - i).min(256));
            let region = data[i..i + n].to_vec();
            let to = at(rng);
            for _ in 0..1 + rng.below(4) {
                data.splice(to..to, region.iter().copied());
            }
        }
        11 => {
            // Splice: the front of this input, the back of another.
            let other = rng.pick(corpus);
            let keep = if len == 0 { 0 } else { rng.below(len) };
            let from = if other.is_empty() {
                0
            } else {
                rng.below(other.len())
            };
            data.truncate(keep);
            data.extend_from_slice(&other[from..]);
        }
        _ if len > 0 => {
            let i = at(rng);
            let delta = rng.below(33) as i8 - 16;
            data[i] = data[i].wrapping_add(delta as u8);
        }
        _ => data.push(rng.byte()),
    }
}

fn overwrite(rng: &mut Rng, data: &mut Vec<u8>, bytes: &[u8]) {
    let i = if data.is_empty() {
        0
    } else {
        rng.below(data.len())
    };
    overwrite_at(data, i, bytes);
}

/// Writes `bytes` at `i`, growing the input if they run past its end.
fn overwrite_at(data: &mut Vec<u8>, i: usize, bytes: &[u8]) {
    for (k, b) in bytes.iter().enumerate() {
        match data.get_mut(i + k) {
            Some(slot) => *slot = *b,
            None => data.push(*b),
        }
    }
}

fn regression_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/regressions")
        .join(name)
}

/// The saved inputs of a target, in name order.
fn regression_inputs(name: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(dir) = std::fs::read_dir(regression_dir(name)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

/// Writes a failing input under the target directory; returns where.
fn save_failure(name: &str, seed: u64, iteration: u64, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    let path = dir.join(format!("{name}-{seed}-{iteration}.bin"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, input)) {
        eprintln!("fuzz {name}: could not save the failing input: {e}");
    }
    path
}

/// The bound of [`the_checks_fail_on_a_panic_and_on_an_allocation_over_the_bound`].
static SELF_TEST_BOUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The harness can fail: a panic is caught and reported, and so is an input that allocates
/// more than its bound; one within it passes.
#[test]
fn the_checks_fail_on_a_panic_and_on_an_allocation_over_the_bound() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let current = Mutex::new(None);
    // The bound is set so that an input over it raises the process's peak (earlier tests in
    // the same process may have left it high) and stays under the hard stop at twice it.
    let bound = ALLOC.max_allocated() - ALLOC.allocated() + (1 << 20);
    SELF_TEST_BOUND.store(bound, Ordering::Relaxed);
    let target = |run: &'static dyn Fn(&[u8])| Target {
        name: "self_test",
        seeds: vec![vec![]],
        run,
        alloc_bound: |_| SELF_TEST_BOUND.load(Ordering::Relaxed),
        tweak: None,
    };
    let panics = target(&|_| panic!("boom"));
    let failure = check(&panics, &[], "panics", &current).expect_err("a failure");
    assert!(failure.what.contains("panicked: boom"), "{}", failure.what);

    let greedy = target(&|_| {
        let n = SELF_TEST_BOUND.load(Ordering::Relaxed) + (512 << 10);
        std::hint::black_box(vec![1u8; n]);
    });
    let failure = check(&greedy, &[], "greedy", &current).expect_err("a failure");
    assert!(failure.what.contains("over its bound"), "{}", failure.what);

    let modest = target(&|_| {
        std::hint::black_box(vec![1u8; 64 << 10]);
    });
    assert!(check(&modest, &[], "modest", &current).is_ok());
}
