//! The `palisade` command: serve, check-config, reload, version (and the
//! `testing echo` upstream used by tests). Errors print one clear line;
//! exit codes: 0 ok, 1 runtime error, 2 config error.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use gateway::config::{self, Config, EMBEDDED_DEFAULT, EMBEDDED_NAME};
use gateway::demo::{spawn_echo, EchoOptions};
use gateway::Gateway;

mod audit_cmd;
mod ban;
mod crypt_cmd;
mod echo;
mod events_cmd;
mod logs_cmd;
mod pki_cmd;
mod rules_cmd;
mod scan_cmd;
mod scan_tls_out;
mod waf;
mod waftest;

// `palisade user` and `palisade access` (crates/identity).
mod user_cmd;

// The proxy allocates small, short-lived objects per request (header maps,
// bodies, log records) across tasks; mimalloc's thread-local free lists cost
// less CPU per request than glibc malloc here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Name of the pid file in the data directory.
const PID_FILE: &str = "palisade.pid";

#[derive(Parser, Debug)]
#[command(
    name = "palisade",
    version,
    about = "palisade: a security gateway (TLS reverse proxy)"
)]
struct Cli {
    /// Log format on stderr: auto (text on a terminal, JSON otherwise), json or text.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Auto,
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the gateway (without -c: an embedded demo config with a built-in upstream).
    Serve {
        /// Config file (TOML).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file (and its certificates) without starting.
    CheckConfig {
        /// Config file (TOML).
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Ask a running palisade to reload its config (SIGHUP via the pid file, or POST /reload).
    Reload {
        /// Config file whose data_dir holds palisade.pid.
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// Pid file (default: ./data/palisade.pid or the config's data_dir).
        #[arg(long, conflicts_with = "admin")]
        pid_file: Option<PathBuf>,
        /// Admin address: reload through POST /reload instead of a signal.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Print the version.
    Version,
    /// List, add or lift bans on the running gateway (through its admin API).
    Ban {
        #[command(subcommand)]
        cmd: ban::BanCmd,
        #[command(flatten)]
        target: ban::Target,
    },
    /// Query the running gateway's security events (through its admin API).
    Events(events_cmd::EventsArgs),
    /// The WAF engine on its own: evaluate a raw request, lint rule files.
    Waf {
        #[command(subcommand)]
        cmd: WafCmd,
    },
    /// Manage the OWASP CRS: install a release, show what is found.
    Crs {
        #[command(subcommand)]
        cmd: rules_cmd::CrsCmd,
    },
    /// Fernet tokens, streaming file encryption, digests and manifests.
    Crypt {
        #[command(subcommand)]
        cmd: crypt_cmd::CryptCmd,
    },
    /// Device certificate authority: init, issue, list, revoke, crl, renew.
    Pki {
        #[command(flatten)]
        dir: pki_cmd::DirArg,
        #[command(subcommand)]
        cmd: pki_cmd::PkiCmd,
    },
    /// Users, passwords, TOTP and sessions (the identity user database).
    User {
        #[command(flatten)]
        cfg: user_cmd::ConfigArg,
        #[command(subcommand)]
        cmd: user_cmd::UserCmd,
    },
    /// Access rules: `access check` prints which rule matches a URL and why.
    Access {
        #[command(flatten)]
        cfg: user_cmd::ConfigArg,
        #[command(subcommand)]
        cmd: user_cmd::AccessCmd,
    },
    /// Scanners: TCP ports with service identification, web baseline, dependencies against OSV.
    Scan {
        #[command(subcommand)]
        cmd: scan_cmd::ScanCmd,
    },
    /// Offline log analysis: `logs analyze FILE...` runs access logs through the WAF rules.
    Logs {
        #[command(subcommand)]
        cmd: logs_cmd::LogsCmd,
    },
    /// Audit a host or URL: ports, web (and deps with --lockfile) in one graded report.
    Audit(Box<audit_cmd::AuditArgs>),
    /// Tools for tests.
    #[command(hide = true)]
    Testing {
        #[command(subcommand)]
        tool: TestingCmd,
    },
}

#[derive(Subcommand, Debug)]
enum WafCmd {
    /// Evaluate one raw HTTP request (and optionally its raw response);
    /// print matched rules, anomaly scores and the intervention as JSON.
    Eval {
        /// Rule files or directories of *.conf files, loaded in order.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
        /// File holding the raw HTTP/1 request (request line, headers, body).
        #[arg(long)]
        request: PathBuf,
        /// File holding the raw HTTP/1 response (status line, headers, body).
        #[arg(long)]
        response: Option<PathBuf>,
    },
    /// List the loaded rules: id, phase, file:line, tags, msg.
    Rules(rules_cmd::RulesArgs),
    /// Parse and compile rule files; report every problem found.
    Lint {
        /// Rule files or directories of *.conf files, loaded in order.
        #[arg(long, required = true, num_args = 1..)]
        rules: Vec<PathBuf>,
    },
    /// Run go-ftw YAML tests (the CRS regression suite) against a running palisade.
    Test(waftest::TestArgs),
}

#[derive(Subcommand, Debug)]
enum TestingCmd {
    /// Test backend: albedo's API (POST /reflect, /capabilities, an empty 200 otherwise).
    Echo {
        /// Address to listen on (port 0: pick one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Answer every request with what it received, as JSON, instead.
        #[arg(long)]
        json: bool,
        /// Append each complete request as a JSON line to this file (with --json).
        #[arg(long, requires = "json")]
        capture: Option<PathBuf>,
    },
}

/// Errors the CLI distinguishes for exit codes.
enum Failure {
    Config(anyhow::Error),
    Runtime(anyhow::Error),
}

impl From<gateway::Error> for Failure {
    fn from(e: gateway::Error) -> Self {
        if e.is_config() {
            Failure::Config(e.into())
        } else {
            Failure::Runtime(e.into())
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.cmd {
        Cmd::Version => {
            println!("palisade {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Cmd::CheckConfig { config } => check_config(&config),
        Cmd::Waf { cmd } => waf_cmd(cmd),
        Cmd::Crs { cmd } => rules_cmd::crs_cmd(cmd),
        Cmd::Ban { cmd, target } => ban::run(cmd, &target).map_err(Failure::Runtime),
        Cmd::Events(args) => events_cmd::run(args).map_err(Failure::Runtime),
        Cmd::Crypt { cmd } => crypt_cmd::run(cmd).map_err(Failure::Runtime),
        Cmd::Pki { dir, cmd } => pki_cmd::run(&dir, cmd).map_err(Failure::Runtime),
        Cmd::User { cfg, cmd } => user_cmd::run_user(&cfg, cmd).map_err(Failure::Runtime),
        Cmd::Access { cfg, cmd } => user_cmd::run_access(&cfg, cmd).map_err(Failure::Runtime),
        Cmd::Scan { cmd } => return scan_cmd::run(cmd),
        Cmd::Logs { cmd } => return logs_cmd::run(cmd),
        Cmd::Audit(args) => return audit_cmd::run_audit(*args),
        Cmd::Reload {
            config,
            pid_file,
            admin,
        } => reload(config, pid_file, admin),
        Cmd::Serve { config } => runtime().and_then(|rt| rt.block_on(serve(config))),
        Cmd::Testing {
            tool:
                TestingCmd::Echo {
                    listen,
                    json,
                    capture,
                },
        } => runtime().and_then(|rt| rt.block_on(echo(listen, json, capture))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, without repeating a cause that a
/// message already includes.
fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PALISADE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().with_current_span(false).init();
    } else {
        b.with_target(false).init();
    }
}

fn waf_cmd(cmd: WafCmd) -> Result<(), Failure> {
    let map = |e: waf::WafError| match e {
        waf::WafError::Rules(m) => Failure::Config(anyhow::anyhow!(m)),
        waf::WafError::Input(m) => Failure::Runtime(anyhow::anyhow!(m)),
    };
    match cmd {
        WafCmd::Eval {
            rules,
            request,
            response,
        } => {
            let out = waf::eval(&rules, &request, response.as_deref()).map_err(map)?;
            let text = serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?;
            print_stdout(&text)
        }
        WafCmd::Rules(args) => rules_cmd::list(args),
        WafCmd::Test(args) => match waftest::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::Runtime(anyhow::anyhow!("some tests failed"))),
            Err(e) => Err(Failure::Config(anyhow::anyhow!(e))),
        },
        WafCmd::Lint { rules } => {
            let (directives, problems) = waf::lint(&rules).map_err(map)?;
            for p in &problems {
                print_stdout(p)?;
            }
            if problems.is_empty() {
                print_stdout(&format!("ok: {directives} directives, no problem found"))
            } else {
                Err(Failure::Config(anyhow::anyhow!(
                    "{} problem(s) in {directives} directives",
                    problems.len()
                )))
            }
        }
    }
}

/// Prints a line on stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(line: &str) -> Result<(), Failure> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::from(e).into()),
        _ => Ok(()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Runtime)
}

fn check_config(path: &Path) -> Result<(), Failure> {
    let cfg = config::load_file(path)?;
    gateway::waf::check_rules(&cfg)?;
    // Certificates are part of the config: load them too (a missing file is
    // a config error). Development certificates are not generated here.
    for l in &cfg.listeners {
        for c in &l.certificates {
            gateway::tls::load_cert(&c.cert, &c.key).map_err(|e| match e {
                gateway::Error::Certificate { path, message } => gateway::Error::Certificate {
                    path,
                    message: format!(
                        "{message} (configured at {}:{}:{})",
                        c.origin.file, c.origin.line, c.origin.column
                    ),
                },
                other => other,
            })?;
        }
    }
    println!(
        "{}: ok ({} listener(s), {} upstream(s), {} route(s))",
        path.display(),
        cfg.listeners.len(),
        cfg.upstreams.len(),
        cfg.routes.len()
    );
    Ok(())
}

/// The embedded default with the demo upstream's real address.
fn embedded(demo: SocketAddr) -> Result<Config, gateway::Error> {
    let text = EMBEDDED_DEFAULT.replace("127.0.0.1:1\"", &format!("{demo}\""));
    config::parse(&text, EMBEDDED_NAME)
}

async fn serve(path: Option<PathBuf>) -> Result<(), Failure> {
    let (cfg, loader): (Config, gateway::server::ConfigLoader) = match &path {
        Some(p) => {
            let cfg = config::load_file(p)?;
            let p = p.clone();
            (cfg, Box::new(move || config::load_file(&p)))
        }
        None => {
            let demo = spawn_echo(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                EchoOptions {
                    demo_page: true,
                    capture: None,
                },
            )
            .await?;
            let cfg = embedded(demo)?;
            (cfg, Box::new(move || embedded(demo)))
        }
    };
    let data_dir = cfg.server.data_dir.clone();
    let signals = gateway::server::Signals::install()?;
    // Written before the listeners answer, so `palisade reload` works as
    // soon as the ports do; removed again if the start fails.
    let pid_path = data_dir.join(PID_FILE);
    std::fs::create_dir_all(&data_dir)
        .and_then(|()| std::fs::write(&pid_path, format!("{}\n", std::process::id())))
        .with_context(|| format!("cannot write pid file {}", pid_path.display()))?;
    let gw = match Gateway::start(cfg.clone(), loader).await {
        Ok(gw) => gw,
        Err(e) => {
            let _ = std::fs::remove_file(&pid_path);
            return Err(e.into());
        }
    };

    print_banner(&gw, &cfg, path.is_none());
    let res = gw.run_with_signals(signals).await;
    let _ = std::fs::remove_file(&pid_path);
    res?;
    Ok(())
}

fn print_banner(gw: &Gateway, cfg: &Config, demo: bool) {
    use std::io::Write;
    let mut out = String::new();
    out.push_str(&format!(
        "palisade {} is running ({})\n",
        env!("CARGO_PKG_VERSION"),
        if demo {
            "embedded demo config"
        } else {
            "config loaded"
        }
    ));
    for (conf, local) in gw.local_addrs() {
        let Some(l) = cfg.listeners.iter().find(|l| l.listen == conf) else {
            continue;
        };
        let scheme = match l.protocol {
            config::Protocol::Http => "http",
            config::Protocol::Https => "https",
            config::Protocol::Tcp => "tcp",
            config::Protocol::Tls => "tls",
        };
        let host = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            local.ip().to_string()
        };
        let host = if local.is_ipv6() && !local.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        out.push_str(&format!(
            "  listener {:<10} {scheme}://{host}:{}/\n",
            l.name,
            local.port()
        ));
    }
    if let Some(a) = gw.admin_addr() {
        out.push_str(&format!(
            "  admin               http://{a}/metrics  (also /healthz, POST /reload)\n"
        ));
    }
    if demo {
        out.push_str("  open the listener URL in a browser: the built-in demo app answers through the proxy\n");
        out.push_str(
            "  the WAF blocks attacks with its built-in rules: try /?q=1%27%20or%201=1--\n",
        );
    }
    out.push_str(
        "  stop with Ctrl-C (SIGTERM drains in-flight requests); reload with `palisade reload`\n",
    );
    // Banner on stderr: stdout carries the access log.
    let _ = std::io::stderr().write_all(out.as_bytes());
}

fn reload(
    config_path: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    admin: Option<SocketAddr>,
) -> Result<(), Failure> {
    if let Some(addr) = admin {
        return reload_via_admin(addr);
    }
    let pid_path = match (pid_file, config_path) {
        (Some(p), _) => p,
        (None, Some(c)) => config::load_file(&c)?.server.data_dir.join(PID_FILE),
        (None, None) => PathBuf::from("./data").join(PID_FILE),
    };
    let text = std::fs::read_to_string(&pid_path).with_context(|| {
        format!(
            "cannot read pid file {} (is palisade running?)",
            pid_path.display()
        )
    })?;
    let pid: i32 = text.trim().parse().with_context(|| {
        format!(
            "pid file {} does not contain a process id",
            pid_path.display()
        )
    })?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGHUP,
    )
    .with_context(|| format!("cannot signal process {pid} from {}", pid_path.display()))?;
    println!("sent SIGHUP to palisade (pid {pid}); the result is in its log and in palisade_config_reloads_total");
    Ok(())
}

fn reload_via_admin(addr: SocketAddr) -> Result<(), Failure> {
    use std::io::{Read, Write};
    use std::time::Duration;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to admin listener {addr}"))?;
    let timeout = Some(Duration::from_secs(30));
    s.set_read_timeout(timeout).context("socket")?;
    s.set_write_timeout(timeout).context("socket")?;
    write!(
        s,
        "POST /reload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .context("cannot send reload request")?;
    let mut resp = String::new();
    s.take(64 * 1024)
        .read_to_string(&mut resp)
        .context("cannot read reload answer")?;
    let status_ok = resp.starts_with("HTTP/1.1 200");
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim())
        .unwrap_or("")
        .to_string();
    if status_ok {
        println!("{body}");
        Ok(())
    } else {
        Err(Failure::Config(anyhow::anyhow!("{body}")))
    }
}

async fn echo(listen: SocketAddr, json: bool, capture: Option<PathBuf>) -> Result<(), Failure> {
    let addr = if json {
        spawn_echo(
            listen,
            EchoOptions {
                demo_page: false,
                capture,
            },
        )
        .await?
    } else {
        echo::spawn(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?
    };
    println!("echo listening on {addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("signal handler")?;
    let mut int = signal(SignalKind::interrupt()).context("signal handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
