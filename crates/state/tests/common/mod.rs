//! Test harness shared by the state integration tests: temporary
//! directories and store constructors for every backend.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "palisade-state-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            state::now_micros()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A real `redis-server` on 127.0.0.1 with a random free port and its own
/// directory (AOF on, so a restart keeps the data); killed on drop.
pub struct RedisServer {
    pub port: u16,
    dir: TempDir,
    extra: Vec<String>,
    child: Option<std::process::Child>,
}

fn redis_binary() -> Option<PathBuf> {
    for p in [
        "/usr/bin/redis-server",
        "/usr/local/bin/redis-server",
        "/usr/sbin/redis-server",
    ] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    let out = std::process::Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .ok()?;
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

impl RedisServer {
    /// Starts a server, or returns `None` (printing why) when redis-server is
    /// not installed and CI is not set. Under CI a missing server fails.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[])
    }

    /// Like [`RedisServer::start`] with extra server arguments.
    pub fn start_with(extra: &[&str]) -> Option<RedisServer> {
        let Some(bin) = redis_binary() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("redis-server is required under CI (Debian package redis-server)");
            }
            eprintln!("SKIPPED: redis-server not installed (apt-get install redis-server)");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut s = RedisServer {
            port,
            dir: TempDir::new("redis"),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn(&bin);
        Some(s)
    }

    fn spawn(&mut self, bin: &Path) {
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                self.dir.path().to_str().unwrap(),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ])
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let start = std::time::Instant::now();
        loop {
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                    .unwrap();
                c.write_all(b"PING\r\n").unwrap();
                let mut b = [0u8; 16];
                if let Ok(n) = c.read(&mut b) {
                    // -NOAUTH: up, but password protected.
                    if b[..n].starts_with(b"+PONG") || b[..n].starts_with(b"-NOAUTH") {
                        return;
                    }
                }
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "redis did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: no clean shutdown, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        let bin = redis_binary().unwrap();
        self.spawn(&bin);
    }

    /// A store config pointing at this server (timeouts generous enough for
    /// a loaded test machine).
    pub fn config(&self) -> state::StateConfig {
        let mut cfg = state::StateConfig {
            backend: state::BackendKind::Redis,
            ..Default::default()
        };
        cfg.redis.url = self.url();
        cfg.redis.timeout_ms = 2000;
        cfg.redis.connect_timeout_ms = 2000;
        cfg.redis.ban_sync_interval_ms = 1000;
        cfg
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
