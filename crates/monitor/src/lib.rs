//! palisade's monitoring crate.
//!
//! - [`events`]: the event bus — one typed [`events::Event`] per security
//!   decision, fanned out to subscribers without blocking the request path.
//! - [`store`]: events persisted in SQLite with retention, queryable.
//! - [`metrics`]: Prometheus counters fed by the bus.
//! - [`anomaly`]: per-client and per-route online baselines.
//! - [`alerts`]: webhook, Slack and syslog sinks with batching and dedup.
//! - [`audit`]: the WAF audit log in ModSecurity v3's JSON format, one
//!   object per line, readable by the tools that read ModSecurity's
//!   (CrowdSec, Wazuh, ELK, go-ftw).
//! - [`config`]: the `[monitor]` config section.
//! - [`analyze`]: `palisade logs analyze`, nginx/Apache/palisade access
//!   logs run through the WAF rules offline, with a terminal, JSON and
//!   HTML report.
//!
//! [`Monitor`] ties them together for the gateway.

pub mod alerts;
pub mod analyze;
pub mod anomaly;
pub mod audit;
pub mod config;
pub mod events;
pub mod metrics;
pub mod store;

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditLog, AuditMode, Error, Message, Record, RelevantStatus};
pub use config::Config;
pub use events::{Bus, Event, Kind};

use anomaly::Sample;
use metrics::MonitorMetrics;
use store::{EventStore, Query};

/// Everything the gateway feeds at run time: the event bus and its
/// subscribers (store, metrics, anomaly model, alerts). Built once per
/// process; it outlives config reloads.
#[derive(Debug)]
pub struct Monitor {
    /// The event bus (subscribe here for a live feed).
    pub bus: Bus,
    /// Counters fed by the bus and the WAF glue.
    pub metrics: Arc<MonitorMetrics>,
    /// The event store (`None`: off).
    pub store: Option<EventStore>,
    /// The config it was started with.
    pub config: Config,
    samples: Option<Arc<anomaly::SampleBuf>>,
}

impl Default for Monitor {
    /// A monitor with monitoring off: publishing does nothing.
    fn default() -> Self {
        Monitor {
            bus: Bus::new(1),
            metrics: Arc::default(),
            store: None,
            config: Config {
                enabled: false,
                ..Config::default()
            },
            samples: None,
        }
    }
}

impl Monitor {
    /// Starts the subscribers `cfg` asks for: the store's writer thread
    /// (file `cfg.store.path`, relative to `data_dir`), the metrics task,
    /// the anomaly model and the alert sinks. Must run inside a tokio
    /// runtime.
    pub fn start(cfg: &Config, data_dir: &Path) -> Result<Monitor, Error> {
        if !cfg.enabled {
            return Ok(Monitor::default());
        }
        let metrics = Arc::new(MonitorMetrics::default());
        let mut last_id = 0;
        let store = if cfg.store.enabled {
            let path = data_dir.join(&cfg.store.path);
            let setup = |message: String| Error::StoreSetup {
                path: path.clone(),
                message,
            };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| setup(e.to_string()))?;
            }
            let s = EventStore::open(&path, cfg.store.clone())?;
            last_id = s.max_id()?;
            Some(s)
        } else {
            None
        };
        let bus = Bus::numbered_after(events::BUS_CAPACITY, last_id);
        if let Some(s) = &store {
            s.spawn_writer(bus.subscribe())
                .map_err(|e| Error::StoreSetup {
                    path: data_dir.join(&cfg.store.path),
                    message: e.to_string(),
                })?;
        }
        {
            let m = metrics.clone();
            let sub = bus.subscribe();
            tokio::spawn(async move { m.run(sub).await });
        }
        let samples = if cfg.anomaly.enabled {
            let buf = Arc::new(anomaly::SampleBuf::default());
            tokio::spawn(anomaly::run(cfg.anomaly.clone(), buf.clone(), bus.clone()));
            Some(buf)
        } else {
            None
        };
        if !cfg.alert.is_empty() {
            let mut sinks = Vec::new();
            for a in &cfg.alert {
                sinks.push(
                    alerts::Sink::spawn(a.clone(), metrics.clone()).map_err(|message| {
                        Error::Sink {
                            name: a.name.clone(),
                            message,
                        }
                    })?,
                );
            }
            tokio::spawn(alerts::run(sinks, bus.subscribe()));
        }
        Ok(Monitor {
            bus,
            metrics,
            store,
            config: cfg.clone(),
            samples,
        })
    }

    /// Whether events are made at all (`[monitor] enabled`).
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Publishes an event on the bus (never blocks; nothing when off).
    pub fn publish(&self, ev: Event) {
        if self.config.enabled {
            self.bus.publish(ev);
        }
    }

    /// Gives one finished request to the anomaly model (never blocks; a
    /// full queue drops the sample and counts it).
    pub fn observe_request(&self, s: Sample) {
        if let Some(buf) = &self.samples {
            if !buf.push(s) {
                self.metrics.samples_dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Records the time the WAF spent on one request.
    pub fn observe_waf_eval(&self, d: Duration) {
        self.metrics.observe_waf_eval(d);
    }

    /// Appends the monitor's Prometheus metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let s = self.bus.stats();
        self.metrics
            .render(out, s.published.load(Relaxed), s.dropped.load(Relaxed));
    }

    /// Stored events per kind since `since_us` (every one counted).
    pub fn count_by_kind(
        &self,
        since_us: u64,
    ) -> Result<std::collections::HashMap<String, u64>, Error> {
        self.store()?.count_by_kind(since_us)
    }

    /// The `n` clients with the most events of `kinds` since `since_us`.
    pub fn top_clients(
        &self,
        since_us: u64,
        kinds: &[&str],
        n: usize,
    ) -> Result<Vec<(String, u64)>, Error> {
        self.store()?.top_clients(since_us, kinds, n)
    }

    /// The stored event with this id.
    pub fn event(&self, id: u64) -> Result<Option<serde_json::Value>, Error> {
        self.store()?.get(id)
    }

    fn store(&self) -> Result<&EventStore, Error> {
        self.store.as_ref().ok_or_else(|| {
            Error::BadQuery("the event store is off ([monitor.store] enabled = false)".into())
        })
    }

    /// Stored events matching `q`, newest first.
    pub fn query(&self, q: &Query) -> Result<Vec<serde_json::Value>, Error> {
        match &self.store {
            Some(s) => s.query(q),
            None => Err(Error::BadQuery(
                "the event store is off ([monitor.store] enabled = false)".into(),
            )),
        }
    }
}
