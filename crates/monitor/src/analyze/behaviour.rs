//! A small per-client behaviour summary: request rate, share of 4xx
//! answers and distinct paths, with a scanner heuristic. It stands in for
//! the shared anomaly model (issue 8 item 6) until that is merged, and is
//! kept small so it can be replaced by it.

/// Bits of the distinct-path sketch per client (default 1,024 bits = 128
/// bytes): linear counting estimates up to a few thousand distinct paths
/// in constant memory, however many paths a scanner requests.
pub const PATH_SKETCH_BITS: usize = 1024;

/// Requests a client must make before it can be called a scanner
/// (default 50): a visitor who hits a few dead links is not one.
pub const SCANNER_MIN_REQUESTS: u64 = 50;

/// Distinct paths (estimated) a scanner requests at least (default 30).
pub const SCANNER_MIN_DISTINCT_PATHS: u64 = 30;

/// Share of 4xx answers at or above which a many-path client is a
/// scanner (default 0.5: it mostly asks for what does not exist).
pub const SCANNER_MIN_4XX_RATIO: f64 = 0.5;

/// Requests per second (over the client's active span) at or above which
/// a client is flagged `burst` (default 10), once it made at least
/// [`BURST_MIN_REQUESTS`].
pub const BURST_MIN_RATE: f64 = 10.0;

/// Requests before the `burst` flag applies (default 100).
pub const BURST_MIN_REQUESTS: u64 = 100;

/// One client's counters.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// Requests (lines with a request).
    pub requests: u64,
    /// Answers 400-499.
    pub status_4xx: u64,
    /// Answers 500-599.
    pub status_5xx: u64,
    /// Requests the rules called attacks.
    pub attacks: u64,
    /// Attacks answered 2xx.
    pub suspicious_successes: u64,
    /// Categories of its attacks (bits over `CATEGORIES`).
    pub categories: u32,
    /// First and last request time seen (Unix seconds).
    pub first: Option<i64>,
    /// Last request time seen.
    pub last: Option<i64>,
    paths: [u64; PATH_SKETCH_BITS / 64],
}

/// FNV-1a, for the path sketch (stable across runs and threads).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl ClientStats {
    /// Counts one request.
    pub fn record(&mut self, time: Option<i64>, path: &[u8], status: u16) {
        self.requests += 1;
        match status {
            400..=499 => self.status_4xx += 1,
            500..=599 => self.status_5xx += 1,
            _ => {}
        }
        if let Some(t) = time {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
        let bit = (fnv1a(path) % PATH_SKETCH_BITS as u64) as usize;
        self.paths[bit / 64] |= 1 << (bit % 64);
    }

    /// Adds another worker's counters for the same client.
    pub fn merge(&mut self, o: &ClientStats) {
        self.requests += o.requests;
        self.status_4xx += o.status_4xx;
        self.status_5xx += o.status_5xx;
        self.attacks += o.attacks;
        self.suspicious_successes += o.suspicious_successes;
        self.categories |= o.categories;
        self.first = match (self.first, o.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last = match (self.last, o.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.paths.iter_mut().zip(o.paths.iter()) {
            *a |= b;
        }
    }

    /// Estimated distinct paths (linear counting over the sketch).
    pub fn distinct_paths(&self) -> u64 {
        let m = PATH_SKETCH_BITS as f64;
        let set: u32 = self.paths.iter().map(|w| w.count_ones()).sum();
        let zero = m - f64::from(set);
        if zero < 1.0 {
            // Saturated: report the sketch's ceiling.
            return (m * m.ln()).round() as u64;
        }
        (m * (m / zero).ln()).round() as u64
    }

    /// Share of 4xx answers.
    pub fn ratio_4xx(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.status_4xx as f64 / self.requests as f64
        }
    }

    /// Requests per second over the active span (at least one second).
    pub fn rate(&self) -> f64 {
        let span = match (self.first, self.last) {
            (Some(f), Some(l)) => (l - f).max(1),
            _ => 1,
        };
        self.requests as f64 / span as f64
    }

    /// Behaviour flags: `scanner` (many distinct paths, mostly 4xx) and
    /// `burst` (a high sustained request rate).
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.requests >= SCANNER_MIN_REQUESTS
            && self.distinct_paths() >= SCANNER_MIN_DISTINCT_PATHS
            && self.ratio_4xx() >= SCANNER_MIN_4XX_RATIO
        {
            f.push("scanner");
        }
        if self.requests >= BURST_MIN_REQUESTS && self.rate() >= BURST_MIN_RATE {
            f.push("burst");
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_and_visitor() {
        let mut scanner = ClientStats::default();
        for i in 0..300 {
            scanner.record(Some(1000 + i / 20), format!("/probe/{i}").as_bytes(), 404);
        }
        let d = scanner.distinct_paths();
        assert!((250..=350).contains(&d), "estimate {d}");
        assert_eq!(scanner.flags(), vec!["scanner", "burst"]);

        let mut visitor = ClientStats::default();
        for i in 0..200 {
            let status = if i % 20 == 0 { 404 } else { 200 };
            visitor.record(
                Some(1000 + i * 30),
                format!("/page/{}", i % 12).as_bytes(),
                status,
            );
        }
        assert!(visitor.flags().is_empty());
        assert!(visitor.distinct_paths() <= 13);
    }
}
