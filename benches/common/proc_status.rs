//! What the benches read of a process in /proc.
#![allow(dead_code)] // each bench uses some of these

/// The peak resident memory (`VmHWM`) of process `pid` (a number, or `self`), in MiB; 0 when
/// it cannot be read.
pub fn peak_rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// The resident memory now (`VmRSS`) of process `pid` (a number, or `self`), in MiB; 0 when it
/// cannot be read.
pub fn rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A line of `/proc/PID/status` given in kB (`key` with its colon), in MiB.
fn status_mib(pid: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
