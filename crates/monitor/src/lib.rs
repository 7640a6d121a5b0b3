//! palisade's monitoring crate.
//!
//! - [`events`]: the event bus — one typed [`events::Event`] per security
//!   decision, fanned out to subscribers without blocking the request path.
//! - [`audit`]: the WAF audit log in ModSecurity v3's JSON format, one
//!   object per line, readable by the tools that read ModSecurity's
//!   (CrowdSec, Wazuh, ELK, go-ftw).

pub mod audit;
pub mod events;

pub use audit::{AuditLog, AuditMode, Error, Message, Record, RelevantStatus};
pub use events::{Bus, Event, Kind};

/// Everything the gateway feeds at run time: the event bus and its
/// subscribers. Built once per process (it outlives config reloads).
#[derive(Debug, Default)]
pub struct Monitor {
    /// The event bus.
    pub bus: Bus,
}

impl Monitor {
    /// Publishes an event on the bus (never blocks).
    pub fn publish(&self, ev: Event) {
        self.bus.publish(ev);
    }
}
