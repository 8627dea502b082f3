//! How much memory the machine has available for another agent: the
//! kernel's `MemAvailable` (what can be given out without swapping).

/// Available memory in bytes, or None where it cannot be read. Tests set
/// `BATON_MEMAVAILABLE_FILE` to a file holding the figure to report.
pub fn available() -> Option<u64> {
    if let Some(path) = std::env::var_os("BATON_MEMAVAILABLE_FILE") {
        return std::fs::read_to_string(path).ok()?.trim().parse().ok();
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&info)
}

/// The machine's memory in bytes (`MemTotal`), or None where unknown.
pub fn total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn parse_meminfo(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Why no agent may start now, if the machine has less than `min` bytes available.
pub fn shortage(min: u64) -> Option<String> {
    let have = available()?;
    (have < min).then(|| {
        format!(
            "waiting: memory ({} available, run.min_free_memory is {})",
            human(have),
            human(min)
        )
    })
}

/// Bytes for people: "1.5 GiB", "512 MiB".
pub fn human(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", b / MIB)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_mem_available() {
        let info = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(super::parse_meminfo(info), Some(2048 * 1024));
        assert_eq!(super::parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(super::human(3 << 29), "1.5 GiB");
        assert_eq!(super::human(512 << 20), "512 MiB");
    }
}
