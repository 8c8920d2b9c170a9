//! The real `ingot-engine` binary as a child process: a free port to give it, a raw
//! HTTP probe of its health, its stderr read line by line on a thread, and bounded waits
//! until it is ready, logs a line or exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a starting node or an awaited log line may take (a 2-core box, other
/// tests running).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the bounded waits look again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A loopback port free when asked (the binary binds it after the probe let it go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of a plain-HTTP `GET path` on `127.0.0.1:port`, or `None` when nothing
/// answers.
pub fn get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    super::head_status(&out)
}

/// The binary, to be given its arguments and environment.
pub fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ingot-engine"))
}

/// The binary serving `data_dir` on `127.0.0.1:port` with `cores` shards; more
/// arguments and the environment are the caller's.
pub fn serve(data_dir: &Path, port: u16, cores: u32) -> Command {
    let mut c = command();
    c.args(["--data-dir", data_dir.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--cores", &cores.to_string()]);
    c
}

/// The binary running as a child process, its stderr read line by line on a thread;
/// killed when dropped, so a failing test leaves no server behind.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines already taken from `lines` by [`Running::wait_for_line`].
    seen: Vec<String>,
}

impl Running {
    /// Spawns `command` (see [`command`]) with its stderr piped to a reading thread.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) until `GET /health/ready` on `port` answers 200; `what` names the
    /// node in the failure.
    pub fn wait_ready(&self, port: u16, what: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        while get_status(port, "/health/ready") != Some(200) {
            assert!(Instant::now() < deadline, "{what} never became ready");
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`, and returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => panic!("no log line with {needle:?}: {e}"),
            }
        }
    }

    /// Sends signal `name` (`TERM`, `HUP`) with the `kill` command, so tests need no
    /// `unsafe`.
    pub fn signal(&self, name: &str) {
        let st = Command::new("kill")
            .args([&format!("-{name}"), &self.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{name}");
    }

    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits (bounded by `timeout`) for it to exit; `None` if it is still running.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Everything it wrote to stderr, once it closed it (on exit).
    pub fn log(mut self) -> String {
        let mut all = std::mem::take(&mut self.seen);
        all.extend(self.lines.iter());
        all.join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
