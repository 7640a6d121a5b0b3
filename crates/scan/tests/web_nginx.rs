#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `scan web` against real Debian nginx on loopback, configured by this
//! test: a site with planted issues (no security headers, `server_tokens
//! on`, an insecure cookie, autoindex, an exposed `.git/HEAD`, a backup
//! file, a password form over HTTP) and a hardened HTTPS site with an HTTP
//! listener that redirects. Reflected input needs an application (nginx
//! cannot echo a decoded parameter) and is covered by tests/web.rs.
//!
//! Needs `nginx` (Debian package `nginx`): fails under CI=true when it is
//! missing, skips with a message otherwise.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scan::web::{self, Options};

fn nginx_bin() -> Option<PathBuf> {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return Some(p.into());
        }
    }
    None
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

fn ids(r: &web::Report) -> BTreeSet<String> {
    r.findings.iter().map(|f| f.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_planted_issues_found_and_hardened_site_clean() {
    let Some(nginx) = nginx_bin() else {
        assert!(
            std::env::var("CI").is_err(),
            "nginx is required under CI (apt-get install nginx)"
        );
        eprintln!("skipped: nginx not installed (apt-get install nginx)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let www = d.join("www");
    write(
        &www.join("index.html"),
        r#"<html><body><a href="/files/">files</a> <a href="/about.html">about</a>
        <a href="/login.html">login</a></body></html>"#,
    );
    write(&www.join("about.html"), "<html><body>about</body></html>");
    write(
        &www.join("about.html.bak"),
        "old about page with <?php secrets ?>",
    );
    write(
        &www.join("login.html"),
        r#"<html><body><form method="post" action="/login"><input name="u"><input type="password" name="p"></form></body></html>"#,
    );
    write(&www.join("files/a.txt"), "a");
    write(&www.join(".git/HEAD"), "ref: refs/heads/main\n");
    let hard = d.join("hard");
    write(
        &hard.join("index.html"),
        r#"<html><body><a href="/about.html">about</a></body></html>"#,
    );
    write(&hard.join("about.html"), "<html><body>about</body></html>");
    write(&hard.join(".git/HEAD"), "ref: refs/heads/main\n");

    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    write(&d.join("cert.pem"), &ck.cert.pem());
    write(&d.join("key.pem"), &ck.key_pair.serialize_pem());

    let (planted, https, redirect) = (free_port(), free_port(), free_port());
    let dd = d.display();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dd}/nginx.pid;
error_log {dd}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {dd}/tmp_body;
  proxy_temp_path {dd}/tmp_proxy;
  fastcgi_temp_path {dd}/tmp_fastcgi;
  uwsgi_temp_path {dd}/tmp_uwsgi;
  scgi_temp_path {dd}/tmp_scgi;
  types {{ text/html html; text/plain txt; }}
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{planted};
    root {dd}/www;
    server_tokens on;
    location = /index.html {{ add_header Set-Cookie "sid=abc123; Path=/"; }}
    location /files/ {{ autoindex on; }}
  }}
  server {{
    listen 127.0.0.1:{https} ssl;
    ssl_certificate {dd}/cert.pem;
    ssl_certificate_key {dd}/key.pem;
    root {dd}/hard;
    server_tokens off;
    add_header Content-Security-Policy "default-src 'self'; frame-ancestors 'none'" always;
    add_header X-Frame-Options DENY always;
    add_header X-Content-Type-Options nosniff always;
    add_header Referrer-Policy strict-origin-when-cross-origin always;
    add_header Permissions-Policy "camera=(), microphone=()" always;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    add_header Set-Cookie "sid=abc123; Path=/; Secure; HttpOnly; SameSite=Strict" always;
    location ~ /\. {{ return 404; }}
  }}
  server {{
    listen 127.0.0.1:{redirect};
    server_tokens off;
    return 301 https://127.0.0.1:{https}$request_uri;
  }}
}}
"#
    );
    write(&d.join("nginx.conf"), &conf);
    let child = Command::new(&nginx)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .arg("-p")
        .arg(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Nginx(child);
    for p in [planted, https, redirect] {
        wait_listening(p);
    }
    let opts = Options {
        request_timeout: Duration::from_secs(3),
        time_budget: Duration::from_secs(60),
        ..Options::default()
    };

    let r = web::scan(&format!("http://127.0.0.1:{planted}/"), &opts)
        .await
        .unwrap();
    let want: BTreeSet<String> = [
        "WEB-COOKIE-HTTPONLY",
        "WEB-COOKIE-SAMESITE",
        "WEB-DIR-LISTING",
        "WEB-EXPOSED-BACKUP",
        "WEB-EXPOSED-GIT",
        "WEB-FORM-PASSWORD-HTTP",
        "WEB-HDR-CSP",
        "WEB-HDR-FRAME",
        "WEB-HDR-PERMISSIONS",
        "WEB-HDR-REFERRER",
        "WEB-HDR-XCTO",
        "WEB-HTTP-NO-REDIRECT",
        "WEB-INFO-SERVER",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(ids(&r), want, "{:#?}", r.findings);
    let server = r
        .findings
        .iter()
        .find(|f| f.id == "WEB-INFO-SERVER")
        .unwrap();
    assert!(server.evidence.contains("nginx/"), "{}", server.evidence);

    let r = web::scan(
        &format!("https://127.0.0.1:{https}/"),
        &Options {
            http_port: Some(redirect),
            ..opts
        },
    )
    .await
    .unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.pages >= 2, "{} pages", r.pages);
}
