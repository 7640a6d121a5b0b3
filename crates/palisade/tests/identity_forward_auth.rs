//! The forward-auth endpoint (`{portal}/verify`): behind a real Debian
//! nginx with `auth_request` on loopback, and in Traefik/Caddy style
//! (`X-Forwarded-*`, redirect mode) over raw HTTP.
//!
//! Needs the Debian package `nginx`: under CI (`CI=true`) its absence fails
//! the nginx test; otherwise it is skipped with a printed reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod identity_support;

use common::*;
use identity_support::*;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn nginx() -> Option<&'static str> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("nginx is required under CI (Debian package nginx)");
        }
        eprintln!("SKIPPED: nginx is not installed (apt-get install nginx)");
    }
    found
}

struct Nginx {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn start_nginx(bin: &str, palisade: SocketAddr, app: SocketAddr) -> Nginx {
    let dir = TempDir::new("nginx");
    let d = dir.path().display().to_string();
    for sub in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    {
        let port = free_port();
        let conf = format!(
            r#"{user}
worker_processes 1;
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /_auth {{
      internal;
      proxy_pass http://{palisade}{PORTAL}/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location / {{
      auth_request /_auth;
      auth_request_set $auth_user $upstream_http_remote_user;
      auth_request_set $auth_groups $upstream_http_remote_groups;
      proxy_set_header Remote-User $auth_user;
      proxy_set_header Remote-Groups $auth_groups;
      proxy_pass http://{app};
    }}
  }}
}}
"#,
            user = if is_root() { "user root;" } else { "" },
        );
        let conf_path = dir.write("nginx.conf", conf);
        let child = Command::new(bin)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { child, port, dir };
        let up = wait_for(Duration::from_secs(10), || {
            if let Ok(Some(_)) = n.child.try_wait() {
                return Some(false);
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| true)
        });
        if up != Some(true) {
            let log = std::fs::read_to_string(n.dir.path().join("error.log")).unwrap_or_default();
            panic!("nginx did not start:\n{log}");
        }
        n
    }
}

fn via_nginx(n: &Nginx, path: &str, cookie: Option<&str>, extra: &str) -> Response {
    let cookie = cookie
        .map(|c| format!("Cookie: palisade_session={c}\r\n"))
        .unwrap_or_default();
    roundtrip(
        SocketAddr::from(([127, 0, 0, 1], n.port)),
        format!(
            "GET {path} HTTP/1.1\r\nHost: app.test\r\n{cookie}{extra}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn nginx_auth_request_asks_palisade() {
    let Some(bin) = nginx() else { return };
    let users = Users::new();
    users.add("bob", &["dev", "ops"]);
    let palisade_up = Upstream::start("unused");
    let p = Palisade::start_toml(&config(palisade_up.addr, &users, "", ""));
    let app = Upstream::start("app");
    let n = start_nginx(bin, p.addr(), app.addr);

    // Not logged in: nginx answers 401 itself; the app is not reached.
    let r = via_nginx(&n, "/app/one", None, "");
    assert_eq!(r.status, 401, "{}", r.body_str());
    assert!(app.requests_to("/app/one").is_empty());
    // A bypass path: allowed, and a forged Remote-User is replaced (empty).
    let r = via_nginx(&n, "/public/p", None, "Remote-User: root\r\n");
    assert_eq!(r.status, 200);
    let rec = app.requests_to("/public/p").pop().unwrap();
    assert_ne!(rec.header("remote-user"), Some("root"));
    // A deny rule: 403.
    assert_eq!(via_nginx(&n, "/blocked", None, "").status, 403);

    // Log in on the portal (palisade's own port), then go through nginx.
    let mut b = Browser::default();
    assert_eq!(b.login(p.addr(), "bob", PASSWORD, "/").status, 303);
    let sid = b.cookie("palisade_session").unwrap();
    let r = via_nginx(&n, "/app/two?x=1", Some(&sid), "Remote-User: root\r\n");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let rec = app.requests_to("/app/two").pop().unwrap();
    assert_eq!(rec.header("remote-user"), Some("bob"));
    assert_eq!(rec.header("remote-groups"), Some("dev,ops"));
    // bob has no admin role: the deny rule after the admins rule applies.
    assert_eq!(via_nginx(&n, "/admin/", Some(&sid), "").status, 403);
    // A forged session: 401.
    assert_eq!(
        via_nginx(&n, "/app/three", Some(&"Q".repeat(43)), "").status,
        401
    );
    assert!(app.requests_to("/app/three").is_empty());
}

fn verify(p: &Palisade, query: &str, headers: &str) -> Response {
    roundtrip(
        p.addr(),
        format!(
            "GET {PORTAL}/verify{query} HTTP/1.1\r\nHost: auth.test\r\n{headers}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn traefik_style_forwarded_headers_and_redirect_mode() {
    let users = Users::new();
    users.add("bob", &[]);
    let up = Upstream::start("unused");
    let p = Palisade::start_toml(&config(up.addr, &users, "", ""));
    let fwd = "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Uri: /app/page?a=b\r\n";
    // API client: 401.
    assert_eq!(verify(&p, "", fwd).status, 401);
    // Redirect mode, browser: 302 to the portal on the app's host, with
    // the original URL to return to.
    let r = verify(&p, "?redirect=1", &format!("{fwd}Accept: text/html\r\n"));
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://app.example/.palisade/auth/login?rd=https%3A//app.example/app/page%3Fa%3Db")
    );
    // Bypass and deny through the forwarded headers.
    let h = |uri: &str| {
        format!("X-Forwarded-Proto: http\r\nX-Forwarded-Host: app.example\r\nX-Forwarded-Uri: {uri}\r\n")
    };
    assert_eq!(verify(&p, "", &h("/public/x")).status, 200);
    assert_eq!(verify(&p, "", &h("/blocked")).status, 403);
    // A session cookie passed along: 200 with the identity headers.
    let mut b = Browser::default();
    assert_eq!(b.login(p.addr(), "bob", PASSWORD, "/").status, 303);
    let sid = b.cookie("palisade_session").unwrap();
    let r = verify(
        &p,
        "",
        &format!("{}Cookie: palisade_session={sid}\r\n", h("/app/x")),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("remote-user"), Some("bob"));
    // Missing or hostile original URL: 400, never 500.
    assert_eq!(verify(&p, "", "").status, 400);
    assert_eq!(verify(&p, "", "X-Original-URL: ftp://x/\r\n").status, 400);
    assert_eq!(
        verify(&p, "", "X-Forwarded-Host: a\r\nX-Forwarded-Uri: nopath\r\n").status,
        400
    );
    // X-Original-URL (nginx style) with the session.
    let r = verify(
        &p,
        "",
        &format!("X-Original-URL: http://app.example/app/y\r\nCookie: palisade_session={sid}\r\n"),
    );
    assert_eq!(r.status, 200);
}
