//! The memory a job may still allocate, so that a size read from input — a feature index, a declared shape, a
//! `feature_dim` hyperparameter, an imported model's `num_feature`, an archive entry's length — is refused with its
//! origin named before tern allocates for it, instead of the process aborting on a failed allocation.
//!
//! The budget is the smallest of:
//! - the memory the kernel reports available (`MemAvailable` in `/proc/meminfo`, Linux);
//! - the room left under the process's cgroup v2 limit (`memory.max − memory.current`: the limit a container, such
//!   as a SageMaker training job, runs under);
//! - the machine's physical memory (`sysconf`), where neither of the above can be read;
//! - `TERN_MEMORY_LIMIT_MB`, when set (to run a job in less than the machine has).

use crate::TrainError;

/// The environment variable that caps the budget, in MiB.
pub const LIMIT_VARIABLE: &str = "TERN_MEMORY_LIMIT_MB";

/// The bytes the process may still allocate (module docs: how it is found).
pub fn available_bytes() -> u64 {
    let mut budget = u64::MAX;
    let mut known = false;
    for bound in [meminfo_available(), cgroup_room()].into_iter().flatten() {
        budget = budget.min(bound);
        known = true;
    }
    if !known {
        if let Some(physical) = physical_memory() {
            budget = physical;
        }
    }
    if let Some(limit) = std::env::var(LIMIT_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        budget = budget.min(limit.saturating_mul(1024 * 1024));
    }
    budget
}

/// Fails with [`TrainError::TooLarge`] when `bytes` exceed [`available_bytes`]; `what` names the allocation and
/// where its size came from (file, record, field), e.g. "dense rows of 4294967296 features (from feature index
/// 4294967295 in record 3 of channel train)".
pub fn ensure(bytes: u128, what: impl FnOnce() -> String) -> Result<(), TrainError> {
    let available = available_bytes();
    if bytes > u128::from(available) {
        return Err(TrainError::TooLarge {
            what: what(),
            bytes,
            available,
        });
    }
    Ok(())
}

/// [`ensure`] for `count` values of `T`.
pub fn ensure_elements<T>(count: u128, what: impl FnOnce() -> String) -> Result<(), TrainError> {
    ensure(count.saturating_mul(std::mem::size_of::<T>() as u128), what)
}

/// Bytes as people read them: `103.1 GB`, `512.0 MB`, `1.5 kB`, `12 B` (powers of 1000).
pub fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// `memory.max − memory.current` of this process's cgroup (v2); `None` without a limit or off Linux.
fn cgroup_room() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(relative.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?; // "max" (no limit) does not parse
    let current: u64 = read("memory.current")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    Some(max.saturating_sub(current))
}

fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf reads system constants and has no preconditions.
        let (pages, page_size) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page_size > 0 {
            return Some((pages as u64).saturating_mul(page_size as u64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_positive_and_refuses_what_no_machine_holds() {
        let available = available_bytes();
        assert!(available > 0);
        let error = ensure(1 << 70, || "a test allocation".into()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("a test allocation"), "{message}");
        assert!(message.contains("1180.6 EB"), "{message}");
        ensure(1024, || unreachable!()).unwrap();
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(103_079_215_104), "103.1 GB");
    }
}
