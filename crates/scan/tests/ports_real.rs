#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Service identification against the real servers users run, started by
//! the test on loopback: Debian nginx, redis-server and mosquitto, plus an
//! SSH-style banner. Each must be named right, and the open set must be
//! exactly the ports started.
//!
//! Needs `nginx`, `redis-server` and `mosquitto` (Debian packages of the
//! same names): fails under CI=true when one is missing, skips otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scan::ports::{scan, Options};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn find(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind((LO, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Kills the server on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, args: &[&str], port: u16) -> Server {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let s = Server(child);
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect((LO, port)).is_err() {
        assert!(
            Instant::now() < end,
            "{} did not listen on {port}",
            bin.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_nginx_redis_mosquitto_and_ssh_banner_are_identified() {
    let tools = (
        find(&["/usr/sbin/nginx", "/usr/bin/nginx"]),
        find(&["/usr/bin/redis-server", "/usr/sbin/redis-server"]),
        find(&["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]),
    );
    let (Some(nginx), Some(redis), Some(mosquitto)) = tools else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "nginx, redis-server and mosquitto are required under CI"
        );
        eprintln!("SKIPPED: needs nginx, redis-server and mosquitto (apt-get install ...)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let http = free_port();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
             events {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n\
             client_body_temp_path {p}; proxy_temp_path {p}; fastcgi_temp_path {p};\n\
             uwsgi_temp_path {p}; scgi_temp_path {p};\n\
             server {{ listen 127.0.0.1:{http}; return 200 \"ok\\n\"; }}\n}}\n",
            p = d.display()
        ),
    )
    .unwrap();
    let conf = d.join("nginx.conf");
    let _nginx = start(
        &nginx,
        &["-c", conf.to_str().unwrap(), "-p", d.to_str().unwrap()],
        http,
    );

    let rport = free_port();
    let _redis = start(
        &redis,
        &[
            "--port",
            &rport.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            d.to_str().unwrap(),
        ],
        rport,
    );

    let mport = free_port();
    let mconf = d.join("mosquitto.conf");
    std::fs::write(
        &mconf,
        format!("listener {mport} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"),
    )
    .unwrap();
    let _mqtt = start(&mosquitto, &["-c", mconf.to_str().unwrap()], mport);

    // An SSH server greets first with its version line (RFC 4253 4.2).
    let ssh = tokio::net::TcpListener::bind((LO, 0)).await.unwrap();
    let sport = ssh.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = ssh.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            });
        }
    });

    let want: BTreeMap<u16, &str> = [
        (http, "http"),
        (rport, "redis"),
        (mport, "mqtt"),
        (sport, "ssh"),
    ]
    .into();
    let ports: Vec<u16> = want.keys().copied().collect();
    let opts = Options {
        timeout: Duration::from_millis(1000),
        concurrency: 64,
        banner_timeout: Some(Duration::from_millis(1500)),
        ..Options::default()
    };
    let report = scan(LO, &ports, &opts).await;
    let open: BTreeSet<u16> = report.open.iter().map(|p| p.port).collect();
    assert_eq!(
        open,
        want.keys().copied().collect::<BTreeSet<_>>(),
        "{report:?}"
    );
    for p in &report.open {
        assert_eq!(
            p.service.as_deref(),
            Some(want[&p.port]),
            "port {} banner {:?}",
            p.port,
            p.banner
        );
    }
    // An unauthenticated redis is a high-severity finding.
    let r = report.open.iter().find(|p| p.port == rport).unwrap();
    assert_eq!(r.severity, scan::Severity::High, "{r:?}");
}
