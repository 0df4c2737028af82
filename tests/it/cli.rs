//! The command line as a newcomer and a script meet it: the address forms `--listen` takes,
//! one-line errors with exit code 2 for usage and 1 for runtime failures, SIGTERM as clean as
//! Ctrl-C, where the log goes, and `decode` with tshark's conventions (standard input,
//! compressed captures, `-Y`, `-c`, `--fields`, `--time`). The real binary, real sockets, real
//! files.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_chronik-tui");
const SPEC_CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/captures/kafka-python-2-spec.pcapng"
);

/// The binary with a log file of its own, so no test writes into the state directory.
fn chronik(log_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--log-file").arg(log_dir.join("chronik-tui.log"));
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run chronik-tui")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port nothing listens on just now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless broker started with `args`; its first stderr line (where it listens).
struct Headless {
    child: Child,
    said: String,
}

impl Headless {
    fn start(cmd: &mut Command) -> Headless {
        let mut child = cmd
            .args(["--headless"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chronik-tui");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut said = String::new();
        err.read_line(&mut said).unwrap();
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Headless { child, said }
    }

    /// The address in `chronik-tui: broker listening on ADDR[ (note)]`.
    fn addr(&self) -> SocketAddr {
        let rest = self
            .said
            .trim()
            .strip_prefix("chronik-tui: broker listening on ")
            .unwrap_or_else(|| panic!("not listening: {:?}", self.said));
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    /// Sends a signal and waits for the exit status.
    fn signal(mut self, sig: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chronik-tui did not exit within 10 s of {sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An ApiVersions v0 round trip: the broker at `addr` answers Kafka.
fn answers_kafka(addr: SocketAddr) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&7i32.to_be_bytes());
    req.extend_from_slice(&(-1i16).to_be_bytes());
    s.write_all(&(req.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&req).unwrap();
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    assert_eq!(i32::from_be_bytes(head[4..8].try_into().unwrap()), 7);
}

#[test]
fn listen_takes_a_bare_port_and_the_usual_forms() {
    let logs = tempfile::tempdir().unwrap();
    let v6 = TcpListener::bind("[::1]:0").is_ok();
    let mut forms: Vec<(String, String)> = Vec::new();
    for (form, shown) in [
        ("{p}", "127.0.0.1:{p}"),
        (":{p}", "127.0.0.1:{p}"),
        ("localhost:{p}", "127.0.0.1:{p}"),
        ("127.0.0.1:{p}", "127.0.0.1:{p}"),
        ("[::1]:{p}", "[::1]:{p}"),
        (
            "0.0.0.0:{p}",
            "0.0.0.0:{p} (all interfaces: reachable beyond this machine)",
        ),
    ] {
        if form.contains("::1") && !v6 {
            eprintln!("no IPv6 loopback here: [::1] not tried");
            continue;
        }
        let p = free_port().to_string();
        forms.push((form.replace("{p}", &p), shown.replace("{p}", &p)));
    }
    for (form, shown) in forms {
        let b = Headless::start(chronik(logs.path()).args(["--listen", &form]));
        assert_eq!(
            b.said.trim_end(),
            format!("chronik-tui: broker listening on {shown}"),
            "--listen {form}"
        );
        let mut addr = b.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip([127, 0, 0, 1].into());
        }
        answers_kafka(addr);
        assert!(b.signal("-TERM").success());
    }
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let file = file.display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--listen", "99999"],
            "--listen 99999: port out of range".into(),
        ),
        (
            vec!["--listen", "127.0.0.1:99999"],
            "--listen 127.0.0.1:99999: port out of range".into(),
        ),
        (
            vec!["--listen", "::1:9092"],
            "--listen ::1:9092: write an IPv6 address in brackets, e.g. [::1]:9092".into(),
        ),
        (
            vec!["--advertise", "broker-1:70000"],
            "--advertise broker-1:70000: port out of range".into(),
        ),
        (
            vec!["--data-dir", &file],
            format!("--data-dir {file}: not a directory"),
        ),
        (
            vec!["--sasl-plain", "alice"],
            "--sasl-plain alice: expected USER:PASS".into(),
        ),
        (
            vec!["--no-capture", "--json"],
            "--no-capture captures nothing, so --json has nothing to work on".into(),
        ),
        (
            vec!["--no-capture", "--pcap", SPEC_CAPTURE],
            "--no-capture captures nothing, so --pcap has nothing to work on".into(),
        ),
        (
            vec!["decode", SPEC_CAPTURE, "-Y", "api =="],
            "--filter \"api ==\": at column 7: missing value after `==`".into(),
        ),
        (
            vec!["decode", SPEC_CAPTURE, "--fields", "api,throttle_time"],
            "--fields throttle_time: unknown field `throttle_time`".into(),
        ),
    ];
    for (args, message) in cases {
        let out = run(chronik(logs.path()).args(["--headless"]).args(&args));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with(&format!("chronik-tui: {message}")) && err.lines().count() == 1,
            "{args:?}: {err:?}"
        );
    }
    // clap's own usage errors keep clap's message and its exit code 2.
    let out = run(chronik(logs.path()).args(["--placement", "sideways"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("[possible values: spec, front, omit]"),
        "{}",
        text(&out.stderr)
    );
    // A rule that does not parse says why, with clap's exit code 2.
    for (flag, rule, says) in [
        ("--mutate", "omit produce.response.nosuch", "unknown field"),
        (
            "--mutate",
            "api=fetch:omit produce.response.throttle_time_ms",
            "Produce responses only",
        ),
        ("--fault", "error NOT_COORDINATOR", "error needs api=NAME"),
        ("--fault", "api=produce:delay 5", "write it with its unit"),
    ] {
        let out = run(chronik(logs.path()).args(["--headless", flag, rule]));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {rule}: {err}");
        assert!(
            err.contains(&format!("invalid value '{rule}' for '{flag} <RULE>'"))
                && err.contains(says),
            "{flag} {rule}: {err}"
        );
    }
}

#[test]
fn runtime_errors_name_what_is_at_fault_in_one_line_and_exit_1() {
    let logs = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    // RUST_BACKTRACE does not turn an ordinary error into a backtrace.
    let out = run(chronik(logs.path()).env("RUST_BACKTRACE", "1").args([
        "--headless",
        "--listen",
        &addr.to_string(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("chronik-tui: {addr} is already in use (another broker?)\n")
    );
    // A data directory that cannot be made under a file: one line without -v, the causes with.
    let file = logs.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("data");
    let out = run(chronik(logs.path()).env("RUST_BACKTRACE", "1").args([
        "--headless",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("chronik-tui: data directory {}: ", dir.display())),
        "{err}"
    );
    assert!(
        !err.contains("Caused by") && !err.contains("backtrace"),
        "{err}"
    );
    let out = run(chronik(logs.path()).args([
        "-v",
        "--headless",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Caused by:"),
        "-v shows the causes"
    );
}

/// A broker recording to `file`, one kcat message produced; then stopped by `sig`.
fn record_and_stop(sig: &str, file: &Path) -> std::process::ExitStatus {
    let logs = tempfile::tempdir().unwrap();
    let b = Headless::start(chronik(logs.path()).args([
        "--listen",
        "127.0.0.1:0",
        "--record",
        file.to_str().unwrap(),
    ]));
    let bootstrap = b.addr().to_string();
    common::kcat(&["-b", &bootstrap, "-P", "-t", "signals"], Some("m1\n"));
    let port = b.addr().port();
    let status = b.signal(sig);
    // The file decodes whole: its Produce exchange is there, and nothing is cut off.
    let out = run(Command::new(BIN).args([
        "decode",
        file.to_str().unwrap(),
        "--kafka-port",
        &port.to_string(),
    ]));
    assert!(out.status.success(), "{sig}: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Produce v"),
        "{sig}: {}",
        text(&out.stdout)
    );
    status
}

#[test]
fn sigterm_ends_as_cleanly_as_ctrl_c_and_recordings_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-TERM", "-INT"] {
        let file = dir.path().join(format!("rec{sig}.pcapng"));
        let status = record_and_stop(sig, &file);
        assert_eq!(status.code(), Some(0), "exit status after {sig}");
        if common::have("tshark") {
            let out = run(Command::new("tshark").arg("-r").arg(&file));
            assert!(
                out.status.success(),
                "tshark reads the file: {}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn logs_go_to_the_state_directory_never_the_current_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path().join("cwd");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&cwd).unwrap();
    let start = |env: &[(&str, &Path)]| {
        let mut c = Command::new(BIN);
        c.current_dir(&cwd)
            .env_remove("XDG_STATE_HOME")
            .env("HOME", &home)
            .args(["--listen", "127.0.0.1:0"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let b = Headless::start(&mut c);
        b.addr();
        assert!(b.signal("-TERM").success());
    };
    start(&[]);
    let log = home.join(".local/state/chronik-tui/chronik-tui.log");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("broker listening"),
        "{}",
        log.display()
    );
    let state = tmp.path().join("state");
    start(&[("XDG_STATE_HOME", &state)]);
    assert!(state.join("chronik-tui/chronik-tui.log").exists());
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "nothing written to the current directory"
    );
    // decode logs nowhere unless asked, so it runs where nothing can be written (/proc).
    let home2 = tmp.path().join("home2");
    let out = run(Command::new(BIN)
        .current_dir("/proc")
        .env("HOME", &home2)
        .args(["decode", SPEC_CAPTURE]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!home2.exists(), "decode made no state directory");
    // --log-file after the subcommand as well as before it.
    let asked = tmp.path().join("decode.log");
    let out = run(Command::new(BIN).args([
        "decode",
        SPEC_CAPTURE,
        "--log-file",
        asked.to_str().unwrap(),
    ]));
    assert!(out.status.success());
    assert!(asked.exists(), "--log-file after the subcommand is used");
}

fn decode(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(BIN)
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let _ = input.write_all(&bytes);
        });
    } else {
        drop(input);
    }
    c.wait_with_output().unwrap()
}

#[test]
fn decode_reads_standard_input_and_gzip_and_zstd_captures() {
    let raw = std::fs::read(SPEC_CAPTURE).unwrap();
    let whole = decode(&[SPEC_CAPTURE], None);
    assert!(whole.status.success());
    let expected = text(&whole.stdout);
    assert_eq!(expected.lines().count(), 5, "{expected}");
    let tmp = tempfile::tempdir().unwrap();
    let gz = tmp.path().join("c.pcapng.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&raw).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let zst = tmp.path().join("c.pcapng.zst");
    std::fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    for (what, out) in [
        ("stdin", decode(&["-"], Some(&raw))),
        ("gzip", decode(&[gz.to_str().unwrap()], None)),
        ("zstd", decode(&[zst.to_str().unwrap()], None)),
        (
            "gzip on stdin",
            decode(&["-"], Some(&std::fs::read(&gz).unwrap())),
        ),
    ] {
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), expected, "{what}");
    }
}

#[test]
fn decode_filters_counts_prints_fields_and_times() {
    let all = text(&decode(&[SPEC_CAPTURE], None).stdout);
    let lines: Vec<&str> = all.lines().collect();
    // -Y keeps what the filter keeps.
    let out = decode(&[SPEC_CAPTURE, "-Y", "api == Metadata && corr > 1"], None);
    assert!(out.status.success());
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(" Metadata v") && !l.contains(" corr=1 "))
        .collect();
    assert_eq!(text(&out.stdout).lines().collect::<Vec<_>>(), kept);
    assert_eq!(kept.len(), 2);
    // -c stops after N printed.
    let out = decode(&[SPEC_CAPTURE, "-c", "2"], None);
    assert_eq!(text(&out.stdout).lines().collect::<Vec<_>>(), lines[..2]);
    let out = decode(
        &[SPEC_CAPTURE, "-Y", "api == Metadata", "--count", "1"],
        None,
    );
    assert_eq!(text(&out.stdout).lines().count(), 1);
    // --fields: tab-separated, one row per exchange, the same values the line shows.
    let out = decode(
        &[
            SPEC_CAPTURE,
            "--fields",
            "api,version,corr,client,produce.response.throttle_time_ms,error",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = text(&out.stdout);
    let rows: Vec<Vec<&str>> = rows.lines().map(|r| r.split('\t').collect()).collect();
    assert_eq!(rows.len(), lines.len());
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(row.len(), 6, "{row:?}");
        let api = format!(" {} v{} corr={} ", row[0], row[1], row[2]);
        assert!(line.contains(&api), "{line} vs {row:?}");
        assert!(line.contains(&format!("client={}", row[3])));
        // Every error_code of the response, by name (none at all reads as NONE).
        assert!(row[5].split(',').all(|e| e == "NONE"), "{line}: {}", row[5]);
        let produce = row[0] == "Produce";
        assert_eq!(row[4], if produce { "0" } else { "" }, "{line}");
    }
    // Several values of one name are joined with commas.
    let out = decode(
        &[
            SPEC_CAPTURE,
            "-Y",
            "api == ApiVersions",
            "-e",
            "api_versions.response.api_keys.api_key",
        ],
        None,
    );
    let keys = text(&out.stdout);
    assert!(keys.trim().starts_with("0,1,2,3,"), "{keys}");
    // --time: utc as the line shows it; epoch and relative in seconds; local in TZ.
    let times = |fmt: &str, tz: &str| -> Vec<String> {
        let out = Command::new(BIN)
            .env("TZ", tz)
            .args(["decode", SPEC_CAPTURE, "-t", fmt, "-e", "time"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{fmt}: {}", text(&out.stderr));
        text(&out.stdout).lines().map(str::to_string).collect()
    };
    let utc = times("utc", "UTC");
    for (u, line) in utc.iter().zip(&lines) {
        assert!(line.starts_with(u.as_str()), "{u} vs {line}");
    }
    assert_eq!(times("local", "UTC"), utc);
    let kolkata = times("local", "Asia/Kolkata");
    let secs = |hms: &str| -> f64 {
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2]
    };
    let shift = (secs(&kolkata[0]) - secs(&utc[0])).rem_euclid(86_400.0);
    assert!((shift - 19_800.0).abs() < 1e-3, "UTC+5:30, got {shift} s");
    let epoch = times("epoch", "UTC");
    let first: f64 = epoch[0].parse().unwrap();
    assert!(((first % 86_400.0) - secs(&utc[0])).abs() < 1e-3);
    let relative = times("relative", "UTC");
    assert_eq!(relative[0], "0.000000");
    for (r, e) in relative.iter().zip(&epoch) {
        let (r, e): (f64, f64) = (r.parse().unwrap(), e.parse().unwrap());
        assert!((e - first - r).abs() < 1e-5, "{r} vs {e}");
    }
}

/// `(what, path)` of inputs that are not readable captures, with the message each gets.
pub(crate) fn not_captures(dir: &Path) -> Vec<(PathBuf, String)> {
    let empty = dir.join("empty.pcapng");
    std::fs::write(&empty, b"").unwrap();
    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, b"hello, world\n").unwrap();
    // A socket cannot be opened as a file, not even by root.
    let socket = dir.join("a.sock");
    let _keep = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::mem::forget(_keep);
    let d = |p: &Path| p.display().to_string();
    vec![
        (
            dir.to_path_buf(),
            format!("{}: is a directory, not a capture file", d(dir)),
        ),
        (
            empty.clone(),
            format!("{}: empty file, not a capture", d(&empty)),
        ),
        (
            text_file.clone(),
            format!(
                "{}: at byte 0: not a pcap or pcapng file: magic number 68656c6c",
                d(&text_file)
            ),
        ),
        (
            dir.join("missing.pcap"),
            format!("{}: no such file", d(&dir.join("missing.pcap"))),
        ),
        (socket.clone(), format!("{}: ", d(&socket))),
    ]
}

#[test]
fn decode_and_pcap_fail_on_what_is_not_a_capture() {
    let tmp = tempfile::tempdir().unwrap();
    for (path, message) in not_captures(tmp.path()) {
        for args in [
            vec!["decode".to_string(), path.display().to_string()],
            vec!["--pcap".into(), path.display().to_string()],
            vec![
                "--pcap".into(),
                path.display().to_string(),
                "--record".into(),
                tmp.path().join("out.jsonl").display().to_string(),
            ],
        ] {
            let out = run(Command::new(BIN).args(&args));
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with(&format!("chronik-tui: {message}")),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn a_truncated_capture_prints_what_it_holds_then_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let raw = std::fs::read(SPEC_CAPTURE).unwrap();
    let cut = tmp.path().join("cut.pcapng");
    // Cut inside the last packet's block.
    std::fs::write(&cut, &raw[..raw.len() - 40]).unwrap();
    let whole = text(&decode(&[SPEC_CAPTURE], None).stdout);
    let out = decode(&[cut.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let printed = text(&out.stdout);
    assert!(printed.lines().count() >= 4, "{printed}");
    assert!(whole.starts_with(printed.lines().next().unwrap()));
    let err = text(&out.stderr);
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("chronik-tui: {}: at byte ", cut.display()))
            && last.contains("file ends early"),
        "{err}"
    );
    // The same through --pcap with a recording: the recording holds what was read.
    let rec = tmp.path().join("rec.jsonl");
    let out = run(Command::new(BIN).args([
        "--pcap",
        cut.to_str().unwrap(),
        "--record",
        rec.to_str().unwrap(),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("file ends early"));
    let recorded = std::fs::read_to_string(&rec).unwrap();
    assert!(recorded.lines().count() >= 4, "{recorded}");
}

/// A capture of `per_conn` ApiVersions v0 exchanges on each of three connections, sent
/// alternately, recorded by the broker; and its port.
fn many_exchanges(dir: &Path, per_conn: usize) -> (PathBuf, u16) {
    use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
    let file = dir.join("many.pcapng");
    let mut broker = common::Broker::start(&["--record", file.to_str().unwrap()]);
    let mut conns: Vec<common::frame::Raw> = (0..3)
        .map(|_| common::frame::Raw::connect(broker.addr, "many"))
        .collect();
    for _ in 0..per_conn {
        for c in &mut conns {
            c.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
            c.read_frame();
        }
    }
    drop(conns);
    broker.terminate();
    (file, broker.addr.port())
}

#[test]
fn decode_prints_many_exchanges_in_the_capture_order_with_every_worker() {
    // More exchanges than the printing workers take in one turn each, so that the lines come
    // from several batches on several workers (lines have a worker per core but one, JSON one
    // per core: on two cores, the JSON lines below come from two); `-t relative` prints with
    // a single worker. The
    // broker records an exchange once its response is written, so connections need not take
    // strict turns in the file.
    let dir = tempfile::tempdir().unwrap();
    let (file, port) = many_exchanges(dir.path(), 700);
    let (file, port) = (file.to_str().unwrap(), port.to_string());
    let fields = ["-e", "conn,corr,api"];
    let parallel = decode(&[file, "--kafka-port", &port, fields[0], fields[1]], None);
    assert!(parallel.status.success(), "{}", text(&parallel.stderr));
    let one = decode(
        &[
            file,
            "--kafka-port",
            &port,
            "-t",
            "relative",
            fields[0],
            fields[1],
        ],
        None,
    );
    assert_eq!(text(&parallel.stdout), text(&one.stdout));
    let lines: Vec<Vec<String>> = text(&parallel.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), 2100);
    // The order is the capture's, as the pipeline reads it in process; each connection counts
    // its correlation ids up from 1.
    let read = common::capture::decode(Path::new(file), port.parse().unwrap());
    let want: Vec<Vec<String>> = read
        .iter()
        .map(|e| {
            vec![
                e.conn.to_string(),
                e.correlation_id.to_string(),
                "ApiVersions".into(),
            ]
        })
        .collect();
    assert_eq!(lines, want);
    for conn in ["1", "2", "3"] {
        let corrs: Vec<&str> = lines
            .iter()
            .filter(|l| l[0] == conn)
            .map(|l| l[1].as_str())
            .collect();
        let expected: Vec<String> = (1..=700).map(|i| i.to_string()).collect();
        assert_eq!(corrs, expected, "conn {conn}");
    }
    // -c stops at N however the work is split; the JSON lines come in the same order.
    let out = decode(
        &[
            file,
            "--kafka-port",
            &port,
            "-c",
            "1000",
            fields[0],
            fields[1],
        ],
        None,
    );
    assert_eq!(text(&out.stdout).lines().count(), 1000);
    // -c 0 prints nothing (it once took the writer down with an index out of bounds).
    let none = decode(&[file, "--kafka-port", &port, "-c", "0"], None);
    assert!(none.status.success(), "{}", text(&none.stderr));
    assert_eq!(text(&none.stdout), "");
    let json = decode(&[file, "--kafka-port", &port, "--json"], None);
    let corrs: Vec<String> = text(&json.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}\t{}", v["conn"], v["correlation_id"])
        })
        .collect();
    let want: Vec<String> = lines
        .iter()
        .map(|l| format!("{}\t{}", l[0], l[1]))
        .collect();
    assert_eq!(corrs, want);
}

/// `--no-capture`: the broker serves a real client as usual and prints, keeps and checks
/// nothing; the same run with capture on prints every exchange (so the silence is the flag's).
#[test]
fn no_capture_serves_clients_and_captures_nothing() {
    for capture in [false, true] {
        let args: &[&str] = if capture { &[] } else { &["--no-capture"] };
        let mut broker = common::Broker::start(args);
        let b = broker.bootstrap();
        let values = "one\ntwo\nthree\n";
        common::kcat(&["-b", &b, "-P", "-t", "quiet", "-p", "0"], Some(values));
        let got = common::kcat(
            &[
                "-b",
                &b,
                "-C",
                "-t",
                "quiet",
                "-p",
                "0",
                "-o",
                "beginning",
                "-c",
                "3",
                "-e",
            ],
            None,
        );
        assert_eq!(got, values, "capture {capture}: consumed back");
        broker.terminate();
        let printed: Vec<String> = broker.lines.iter().collect();
        if capture {
            assert!(
                printed.iter().any(|l| l.contains("Produce v")),
                "capture on: no Produce line in {printed:?}"
            );
        } else {
            assert!(printed.is_empty(), "capture off printed {printed:?}");
        }
    }
}
