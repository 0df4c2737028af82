//! The broker's CPU per message and its peak memory under real clients, against tansu (a Rust
//! Kafka broker, in memory) measured in the same run.
//!
//! `cargo build --release && cargo bench --bench broker_cpu` starts the release
//! `chronik-tui --headless` broker twice, with capture on (store capped at `--store-max-bytes`
//! 1 MiB, lint, stall detector and the line printer running, stdout to /dev/null) and with
//! `--no-capture`, and then tansu (run with its memory storage engine): `$TANSU`, else `tansu`
//! on PATH, else `target/tansu/bin/tansu`, else built there now from crates.io (about 17 min on
//! 2 cores, once; `BENCH_BUILD_TANSU=0` skips the build). Each broker is fresh for each load,
//! and the same load is driven at each with the clients of the test venv
//! (`benches/broker_cpu_load.py`):
//! - kafka-python: `BENCH_MESSAGES` (default 200000) messages of `BENCH_SIZE` (100) bytes,
//!   acks=1, then a consumer reading them back;
//! - librdkafka (confluent-kafka) at full speed: `BENCH_RDKAFKA_MESSAGES` (1000000) the same way.
//!
//! `BENCH_CHRONIK=PATH` measures another chronik-tui build instead of `target/release`'s.
//!
//! Around each phase it reads the broker's CPU time (user + system) from `/proc/PID/stat`
//! (clock ticks) and, to the nanosecond, from the sum of `/proc/PID/task/*/schedstat`; after the
//! load, the peak resident memory (`VmHWM` in `/proc/PID/status`). It prints µs of broker CPU
//! per message for each, and the ratios capture on / capture off and capture on / tansu.
//! Without tansu the capture-off broker is the only reference. Not a test: figures only.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/knobs.rs"]
mod knobs;
#[path = "common/proc_status.rs"]
mod proc_status;

/// One load: which client, how many messages.
struct Load {
    client: &'static str,
    label: &'static str,
    messages: u64,
}

/// A broker's CPU time so far: (from /proc/PID/stat in clock ticks as seconds, from schedstat).
#[derive(Clone, Copy)]
struct Cpu {
    stat: f64,
    sched: f64,
}

/// What one broker did under one load.
struct Measured {
    produce: Cpu,
    consume: Cpu,
    produce_wall: f64,
    consume_wall: f64,
    peak_rss_mib: f64,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU time of a process (threads that ended included), from /proc/PID/stat.
fn stat_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name in parentheses: state is the first, utime the 12th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks
}

/// CPU time of a process's live threads to the nanosecond (sum of their schedstat).
fn sched_seconds(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 / 1e9
}

fn cpu(pid: u32, ticks: f64) -> Cpu {
    Cpu {
        stat: stat_seconds(pid, ticks),
        sched: sched_seconds(pid),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A broker process, killed when dropped.
struct Running {
    child: Child,
    bootstrap: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` (a broker that will listen on `port`) and waits until it accepts connections.
fn start(mut cmd: Command, port: u16, log: &Path) -> Running {
    let stderr = std::fs::File::create(log).expect("the bench's log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{cmd:?} did not listen on {addr} within 30 s (see {})",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Running {
        child,
        bootstrap: addr.to_string(),
    }
}

/// One phase of the load script; its wall time in seconds.
fn phase(
    python: &Path,
    client: &str,
    what: &str,
    bootstrap: &str,
    messages: u64,
    size: u64,
) -> f64 {
    let t = Instant::now();
    let out = Command::new(python)
        .arg(root().join("benches/broker_cpu_load.py"))
        .args([client, what, bootstrap, "bench", &messages.to_string()])
        .arg(size.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("running the load script");
    assert!(
        out.status.success(),
        "{client} {what} against {bootstrap} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

/// Runs one load against one fresh broker.
fn measure(broker: Running, python: &Path, load: &Load, size: u64, ticks: f64) -> Measured {
    let pid = broker.child.id();
    let b = broker.bootstrap.clone();
    phase(python, load.client, "create", &b, 0, size);
    // Let the broker settle (start-up, topic creation) before the first reading.
    std::thread::sleep(Duration::from_millis(500));
    let c0 = cpu(pid, ticks);
    let produce_wall = phase(python, load.client, "produce", &b, load.messages, size);
    let c1 = cpu(pid, ticks);
    let consume_wall = phase(python, load.client, "consume", &b, load.messages, size);
    let c2 = cpu(pid, ticks);
    let diff = |a: Cpu, b: Cpu| Cpu {
        stat: b.stat - a.stat,
        sched: b.sched - a.sched,
    };
    Measured {
        produce: diff(c0, c1),
        consume: diff(c1, c2),
        produce_wall,
        consume_wall,
        peak_rss_mib: proc_status::peak_rss_mib(&pid.to_string()),
    }
}

/// The tansu version the bench builds when none is found.
const TANSU_VERSION: &str = "0.6.0";

/// The tansu binary: `$TANSU`, else `tansu` on PATH, else the one this bench built into
/// `target/tansu` before, else one built now from crates.io (`cargo install tansu
/// --features dynostore`, about 17 minutes on 2 cores, once; `BENCH_BUILD_TANSU=0` skips it).
fn find_tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    let cached = root().join("target/tansu/bin/tansu");
    on_path
        .or_else(|| cached.is_file().then(|| cached.clone()))
        .or_else(|| build_tansu(&cached))
}

/// Builds tansu into `target/tansu`; `None` (said why) when it cannot be built here.
fn build_tansu(bin: &Path) -> Option<PathBuf> {
    if knobs::env_or::<u8>("BENCH_BUILD_TANSU", 1) == 0 {
        println!("tansu: not found and BENCH_BUILD_TANSU=0: not building it");
        return None;
    }
    println!(
        "tansu: not found ($TANSU, PATH, target/tansu); building tansu {TANSU_VERSION} from \
         crates.io into target/tansu (--features dynostore; about 17 min on 2 cores, once)"
    );
    let log = root().join("target/bench/tansu-build.log");
    let status = std::fs::File::create(&log).and_then(|f| {
        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["install", "tansu", "--locked", "--version", TANSU_VERSION])
            .args(["--features", "dynostore", "--root"])
            .arg(root().join("target/tansu"))
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f)
            .status()
    });
    match status {
        Ok(s) if s.success() && bin.is_file() => Some(bin.to_path_buf()),
        Ok(s) => {
            println!("tansu: the build failed ({s}); see {}", log.display());
            None
        }
        Err(e) => {
            println!("tansu: cannot run cargo install: {e}");
            None
        }
    }
}

/// chronik-tui's broker, headless, with capture on (store capped, stall detector and line
/// printer running) or off (`--no-capture`).
fn start_ours(bin: &Path, capture: bool, store_max_bytes: u64, dir: &Path, name: &str) -> Running {
    let port = free_port();
    let name = format!("{name}-{}", if capture { "on" } else { "off" });
    let mut cmd = Command::new(bin);
    cmd.args(["--headless", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--store-max-bytes", &store_max_bytes.to_string()])
        .arg("--log-file")
        .arg(dir.join(format!("chronik-{name}.log")));
    if !capture {
        cmd.arg("--no-capture");
    }
    start(cmd, port, &dir.join(format!("chronik-{name}.stderr")))
}

fn start_tansu(bin: &Path, dir: &Path, name: &str) -> Running {
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.arg("broker")
        .args(["--storage-engine", "memory://tansu/"])
        .args(["--kafka-listener-url", &url])
        .args(["--kafka-advertised-listener-url", &url])
        .env("RUST_LOG", "warn");
    start(cmd, port, &dir.join(format!("tansu-{name}.stderr")))
}

fn per_message_us(seconds: f64, messages: u64) -> f64 {
    seconds * 1e6 / messages as f64
}

fn main() {
    let size = knobs::env_or::<u64>("BENCH_SIZE", 100);
    let store_max_bytes = knobs::env_or::<u64>("BENCH_STORE_MAX_BYTES", 1 << 20);
    let loads = [
        Load {
            client: "kafka-python",
            label: "kafka-python",
            messages: knobs::env_or::<u64>("BENCH_MESSAGES", 200_000),
        },
        Load {
            client: "confluent",
            label: "librdkafka (confluent-kafka)",
            messages: knobs::env_or::<u64>("BENCH_RDKAFKA_MESSAGES", 1_000_000),
        },
    ];
    let python = root().join("target/venv/bin/python");
    // BENCH_CHRONIK: another build to measure (an older one, for a before and after).
    let ours = std::env::var_os("BENCH_CHRONIK")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/chronik-tui"));
    if !python.exists() {
        println!(
            "broker_cpu: no client venv at {} (scripts/test.sh installs it); nothing measured",
            python.display()
        );
        return;
    }
    if !ours.exists() {
        println!(
            "broker_cpu: build the release binary first (cargo build --release); nothing measured"
        );
        return;
    }
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let tansu = find_tansu();
    let ticks = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "broker CPU per message ({cores} cores; chronik-tui --headless, stdout to /dev/null, \
         --store-max-bytes {store_max_bytes}; messages of {size} B, acks=1)"
    );
    println!(
        "capture on: store, lint, stall detector and line printer running; capture off: the \
         same broker with --no-capture, same run"
    );
    match &tansu {
        Some(t) => println!(
            "reference: tansu {} (memory storage engine), same run",
            t.display()
        ),
        None => println!(
            "reference MISSING: no tansu ($TANSU, PATH, target/tansu, nor a build); the \
             capture-off broker is the only reference below"
        ),
    }
    println!(
        "{:<40} {:>14} {:>14} {:>14} {:>7} {:>7}",
        "broker CPU µs/message: schedstat [stat]",
        "capture on",
        "capture off",
        "tansu",
        "on/off",
        "on/tansu"
    );
    for load in &loads {
        let run = |broker: Running| measure(broker, &python, load, size, ticks);
        let on = run(start_ours(&ours, true, store_max_bytes, &dir, load.client));
        let off = run(start_ours(&ours, false, store_max_bytes, &dir, load.client));
        let reference = tansu
            .as_ref()
            .map(|t| run(start_tansu(t, &dir, load.client)));
        let us = |c: Cpu| per_message_us(c.sched, load.messages);
        let cell = |c: Cpu| {
            format!(
                "{:.3} [{:.2}]",
                us(c),
                per_message_us(c.stat, load.messages)
            )
        };
        let row = |what: &str, pick: fn(&Measured) -> (Cpu, f64)| {
            let ((c_on, wall), (c_off, _)) = (pick(&on), pick(&off));
            let (theirs, ratio) = match &reference {
                Some(m) => {
                    let (rc, _) = pick(m);
                    (cell(rc), format!("{:.2}x", us(c_on) / us(rc)))
                }
                None => ("-".to_string(), "-".to_string()),
            };
            println!(
                "{:<40} {:>14} {:>14} {:>14} {:>7} {:>7}   (client wall {wall:.1} s)",
                format!("{} {what} {} × {size} B", load.label, load.messages),
                cell(c_on),
                cell(c_off),
                theirs,
                format!("{:.2}x", us(c_on) / us(c_off)),
                ratio
            );
        };
        row("produce", |m| (m.produce, m.produce_wall));
        row("consume", |m| (m.consume, m.consume_wall));
        let theirs = reference
            .as_ref()
            .map_or("-".to_string(), |m| format!("{:.0}", m.peak_rss_mib));
        println!(
            "{:<40} {:>14} {:>14} {:>14}",
            "  peak RSS after it (MiB)",
            format!("{:.0}", on.peak_rss_mib),
            format!("{:.0}", off.peak_rss_mib),
            theirs
        );
    }
    println!(
        "on/off = capture on / capture off; on/tansu = capture on / tansu; from the schedstat \
         figures; logs in {}",
        dir.display()
    );
}
