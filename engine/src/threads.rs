//! Helper threads a shard starts (segment hashing, index building at a seal) run on
//! any core the process may use, not on the shard's own.
//!
//! A thread starts with its creator's CPU mask: started from a pinned shard thread, a
//! helper would share that one core with the shard, whose thread it exists to relieve.
//! (The kernel's io_uring workers that run a ring's fdatasync calls inherit the mask
//! the same way; moving fdatasync to threads of our own was measured and not kept,
//! see `docs/ARCHITECTURE.md`, engine measurements.)

use nix::sched::{sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// Starts a named helper thread that runs on any of the process's cores.
pub(crate) fn spawn_helper(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            leave_pinned_core();
            f()
        })
}

/// Runs `f` on a helper thread and waits for its result without blocking the shard.
pub(crate) async fn run_off_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_helper(name, move || {
        let _ = tx.send(f());
    })?;
    rx.await
        .map_err(|_| std::io::Error::other(format!("helper thread {name} stopped")))
}

/// Gives the calling thread the main thread's CPU mask: the cores the process may use
/// (the main thread is never pinned by the engine).
fn leave_pinned_core() {
    match sched_getaffinity(Pid::this()) {
        Ok(cores) => {
            if let Err(e) = sched_setaffinity(Pid::from_raw(0), &cores) {
                tracing::debug!(error = %e, "helper thread keeps its creator's cores");
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot read the process's cores"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_started_by_a_pinned_thread_gets_the_process_cores() {
        let main = sched_getaffinity(Pid::this()).expect("main mask");
        let cores: Vec<usize> = (0..nix::sched::CpuSet::count())
            .filter(|c| main.is_set(*c).unwrap_or(false))
            .collect();
        if cores.len() < 2 {
            return; // one core: pinned and unpinned are the same mask
        }
        let seen = std::thread::spawn(move || {
            monoio::utils::bind_to_cpu_set([cores[0]]).expect("pin");
            let pinned = sched_getaffinity(Pid::from_raw(0)).expect("pinned mask");
            let (tx, rx) = std::sync::mpsc::channel();
            spawn_helper("ingot-test", move || {
                let _ = tx.send(sched_getaffinity(Pid::from_raw(0)).expect("helper mask"));
            })
            .expect("spawn")
            .join()
            .expect("helper");
            (pinned, rx.recv().expect("mask"))
        })
        .join()
        .expect("thread");
        let (pinned, helper) = seen;
        assert_ne!(pinned, main, "the creator is pinned to one core");
        assert_eq!(helper, main, "the helper runs on every core of the process");
    }
}
