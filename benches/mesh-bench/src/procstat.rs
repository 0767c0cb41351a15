//! The calling process's CPU time and peak RSS, read from `/proc/self`
//! (Linux only). No `getrusage`: the workspace denies `unsafe`, and
//! `/proc/self/stat` carries the same utime and stime.
//!
//! [`cpu_seconds_of`] reads another process the same way (the HAProxy
//! row's proxy); the backends and the control plane are not measured.

use std::fs;
use std::io;

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on every
/// Linux architecture the bench runs on).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User plus system CPU seconds this process has used so far (resolution
/// 10 ms: cells run for seconds, so the error is under 1%).
pub fn cpu_seconds() -> io::Result<f64> {
    read_cpu_seconds("/proc/self/stat")
}

/// User plus system CPU seconds process `pid` has used so far.
pub fn cpu_seconds_of(pid: u32) -> io::Result<f64> {
    read_cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn read_cpu_seconds(path: &str) -> io::Result<f64> {
    let stat = fs::read_to_string(path)?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / CLOCK_TICKS_PER_SEC)
        .ok_or_else(|| io::Error::other(format!("{path}: no utime/stime fields")))
}

/// Peak resident set size (`VmHWM`) in KiB.
pub fn peak_rss_kib() -> io::Result<u64> {
    let status = fs::read_to_string("/proc/self/status")?;
    parse_vm_hwm(&status).ok_or_else(|| io::Error::other("/proc/self/status: no VmHWM line"))
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The
/// command name (field 2) may hold spaces, so fields are counted after
/// its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the comm, field 3 (state) is the first: utime is the 12th.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(12));
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    5120 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(5120));
    }

    #[test]
    fn this_process_has_numbers() {
        assert!(cpu_seconds().unwrap() >= 0.0);
        assert!(cpu_seconds_of(std::process::id()).unwrap() >= 0.0);
        assert!(peak_rss_kib().unwrap() > 0);
    }
}
