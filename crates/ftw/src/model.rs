//! Serde model of the go-ftw YAML test format (ftw-tests-schema v1–v3, as
//! the CRS v4 regression suite writes it) and of the platform overrides file.
//!
//! The model keeps what the files say; defaults and the legacy aliases
//! (`test_id`/`id`, `desc`/`description`, `stop_magic`, `log_contains`) are
//! resolved by the accessors and by [`crate::load`], the way go-ftw resolves
//! them after unmarshalling.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// One test file: a rule id and its test cases.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FtwTest {
    /// Who wrote the file and what it covers.
    pub meta: Meta,
    /// The rule the file tests; 0 when absent (the loader then takes the
    /// first number in the file name, as go-ftw does).
    pub rule_id: u64,
    /// The test cases, in file order.
    pub tests: Vec<TestCase>,
    /// File name (not path) the test was loaded from; set by the loader.
    #[serde(skip)]
    pub file_name: String,
}

/// `meta:` block of a test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Author(s).
    pub author: String,
    /// `enabled: false` disables every test of the file (legacy field; go-ftw
    /// v2 ignores it, and the CRS suite never sets it).
    pub enabled: Option<bool>,
    /// File title.
    pub name: String,
    /// What the file covers.
    pub description: String,
    /// Schema version string, when present.
    pub version: String,
    /// Tags for `--include-tags`.
    pub tags: Vec<String>,
}

/// One test case: a sequence of stages (requests) with expectations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TestCase {
    /// Legacy id key (`test_id:`), used by the CRS v4 suite.
    pub test_id: Option<u64>,
    /// Schema v3 id key (`id:`).
    pub id: Option<u64>,
    /// Short title.
    pub test_title: String,
    /// Legacy description key.
    pub desc: String,
    /// Schema v3 description key.
    pub description: String,
    /// Tags for `--include-tags`.
    pub tags: Vec<String>,
    /// The requests of this case, sent in order.
    pub stages: Vec<Stage>,
    /// Rule id of the file, copied here by the loader.
    #[serde(skip)]
    pub rule_id: u64,
}

impl TestCase {
    /// The effective test id: `id`, else `test_id`, else 0 (the loader
    /// replaces 0 by the 1-based position, as go-ftw does).
    pub fn effective_id(&self) -> u64 {
        match (self.id, self.test_id) {
            (Some(id), _) if id != 0 => id,
            (_, Some(id)) => id,
            _ => 0,
        }
    }

    /// `"<rule_id>-<test_id>"`, the string go-ftw's include/exclude regexes
    /// match against.
    pub fn id_string(&self) -> String {
        format!("{}-{}", self.rule_id, self.effective_id())
    }

    /// The description, whichever key the file used.
    pub fn description(&self) -> &str {
        if self.description.is_empty() {
            &self.desc
        } else {
            &self.description
        }
    }
}

/// One request/expectation pair. Accepts the current form
/// (`- input: … output: …`) and the v1 form (`- stage: {input, output}`).
#[derive(Debug, Clone, Default)]
pub struct Stage {
    /// Free text.
    pub description: String,
    /// What to send.
    pub input: Input,
    /// What to expect.
    pub output: Output,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct StageRepr {
    description: String,
    input: Option<Input>,
    output: Option<Output>,
    stage: Option<Box<StageRepr>>,
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut repr = StageRepr::deserialize(d)?;
        if repr.input.is_none() && repr.output.is_none() {
            if let Some(inner) = repr.stage.take() {
                repr = *inner;
            }
        }
        Ok(Stage {
            description: repr.description,
            input: repr.input.unwrap_or_default(),
            output: repr.output.unwrap_or_default(),
        })
    }
}

/// The request of a stage. Every field is optional; the accessors give
/// go-ftw's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Input {
    /// Destination host (default `localhost`).
    #[serde(deserialize_with = "opt_scalar")]
    pub dest_addr: Option<String>,
    /// Destination port (default 80).
    pub port: Option<u16>,
    /// `http` or `https` (default `http`).
    #[serde(deserialize_with = "opt_scalar")]
    pub protocol: Option<String>,
    /// Request target, sent verbatim (default `/`).
    #[serde(deserialize_with = "opt_scalar")]
    pub uri: Option<String>,
    /// Follow the previous stage's redirect.
    pub follow_redirect: Option<bool>,
    /// HTTP version token, sent verbatim (default `HTTP/1.1`).
    #[serde(deserialize_with = "opt_scalar")]
    pub version: Option<String>,
    /// Method, sent verbatim (default `GET`).
    #[serde(deserialize_with = "opt_scalar")]
    pub method: Option<String>,
    /// `headers:` as written in the file: file order, duplicates kept.
    /// go-ftw sends a `headers:` map sorted by name (see
    /// [`Input::effective_headers`]).
    pub headers: Option<Headers>,
    /// `ordered_headers:` (schema v2+): sent exactly in this order.
    pub ordered_headers: Option<Headers>,
    /// Body (a string; a list of lines is joined with CRLF as the Python ftw
    /// did). May contain go-template actions (`{{ "1" | repeat 10 }}`).
    pub data: Option<Data>,
    /// Body, base64.
    #[serde(deserialize_with = "opt_scalar")]
    pub encoded_data: Option<String>,
    /// Keep cookies from the response for the next stage.
    pub save_cookie: Option<bool>,
    /// Legacy inverse of `autocomplete_headers`.
    pub stop_magic: Option<bool>,
    /// Add `Connection`, `Content-Length`, `Content-Type` and encode a form
    /// body (default true).
    pub autocomplete_headers: Option<bool>,
    /// The whole raw request, base64 (line breaks ignored); bypasses every
    /// other request field.
    #[serde(deserialize_with = "opt_scalar")]
    pub encoded_request: Option<String>,
    /// Use the test's Host for go-ftw's marker requests too.
    pub virtual_host_mode: bool,
}

impl Input {
    /// Method, default `GET`.
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("GET")
    }
    /// URI, default `/`.
    pub fn uri(&self) -> &str {
        self.uri.as_deref().unwrap_or("/")
    }
    /// Version, default `HTTP/1.1`.
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("HTTP/1.1")
    }
    /// Destination address, default `localhost`.
    pub fn dest_addr(&self) -> &str {
        self.dest_addr.as_deref().unwrap_or("localhost")
    }
    /// Destination port, default 80.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(80)
    }
    /// Protocol, default `http`.
    pub fn protocol(&self) -> &str {
        self.protocol.as_deref().unwrap_or("http")
    }
    /// Effective autocomplete flag: `autocomplete_headers`, else the inverse
    /// of `stop_magic`, else true.
    pub fn autocomplete(&self) -> bool {
        match (self.autocomplete_headers, self.stop_magic) {
            (Some(v), _) => v,
            (None, Some(stop)) => !stop,
            (None, None) => true,
        }
    }
    /// The headers in the order go-ftw sends them: `ordered_headers` as
    /// written, else `headers` sorted by name (byte order, stable: duplicate
    /// names keep file order), because go-ftw reads `headers:` into a Go map
    /// and sorts its keys.
    pub fn effective_headers(&self) -> Vec<(String, String)> {
        if let Some(h) = &self.ordered_headers {
            return h.0.clone();
        }
        let mut h = self.headers.clone().map(|h| h.0).unwrap_or_default();
        h.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        h
    }
}

/// Header list: name/value pairs in file order, duplicates kept. Reads a
/// YAML mapping (values may be numbers or empty) or a sequence of
/// `{name, value}` maps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of header names to values or a list of {name, value}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Headers, E> {
                Ok(Headers::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Headers, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<Scalar, Scalar>()? {
                    out.push((k.0, v.0));
                }
                Ok(Headers(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Headers, A::Error> {
                #[derive(Deserialize)]
                struct Tuple {
                    name: Scalar,
                    #[serde(default)]
                    value: Scalar,
                }
                let mut out = Vec::new();
                while let Some(t) = s.next_element::<Tuple>()? {
                    out.push((t.name.0, t.value.0));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Request body as written: one string, or a list of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// `data: "..."` or a block scalar.
    Text(String),
    /// `data: [line, line]` (Python ftw form), joined with CRLF.
    Lines(Vec<String>),
}

impl Data {
    /// The body text before template evaluation.
    pub fn text(&self) -> String {
        match self {
            Data::Text(s) => s.clone(),
            Data::Lines(l) => l.join("\r\n"),
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Data, A::Error> {
                let mut out = Vec::new();
                while let Some(line) = s.next_element::<Scalar>()? {
                    out.push(line.0);
                }
                Ok(Data::Lines(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Data, E> {
                Ok(Data::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Data, E> {
                Ok(Data::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Data, E> {
                Ok(Data::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Data, E> {
                Ok(Data::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Data, E> {
                Ok(Data::Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Data, E> {
                Ok(Data::Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Data, E> {
                Ok(Data::Text(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A YAML scalar read as text, as Go's YAML decoder does for a `string`
/// field: `Content-Length: 0` is the string `"0"`, an empty value is `""`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| s.0))
}

/// What a stage expects.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Output {
    /// Expected HTTP status; a list means "any of these" (legacy form).
    pub status: Option<Status>,
    /// Regex the full response (status line, headers, body) must match.
    pub response_contains: String,
    /// Legacy form of `log.match_regex`.
    pub log_contains: String,
    /// Legacy form of `log.no_match_regex`.
    pub no_log_contains: String,
    /// Expectations on the WAF log.
    pub log: Log,
    /// The request is expected to fail at the connection level (no parsable
    /// response).
    pub expect_error: Option<bool>,
    /// Retry the stage once on failure (timing-sensitive tests).
    pub retry_once: Option<bool>,
    /// Exactly one rule (the one in `expect_ids`) may fire.
    pub isolated: bool,
}

impl Output {
    /// `log.match_regex`, falling back to the legacy `log_contains` when no
    /// other positive log expectation is given (go-ftw's rule).
    pub fn match_regex(&self) -> &str {
        if self.log.match_regex.is_empty() && self.log.expect_ids.is_empty() {
            &self.log_contains
        } else {
            &self.log.match_regex
        }
    }
    /// `log.no_match_regex`, falling back to the legacy `no_log_contains`.
    pub fn no_match_regex(&self) -> &str {
        if self.log.no_match_regex.is_empty() && self.log.no_expect_ids.is_empty() {
            &self.no_log_contains
        } else {
            &self.log.no_match_regex
        }
    }
}

/// Expected status: one code or a list of acceptable codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status(pub Vec<u16>);

impl Status {
    /// True when `code` is acceptable.
    pub fn accepts(&self, code: u16) -> bool {
        self.0.contains(&code)
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(u16),
            Many(Vec<u16>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::One(c) => Status(vec![c]),
            Repr::Many(v) => Status(v),
        })
    }
}

/// Log expectations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Log {
    /// Every one of these rule ids must appear in the log.
    #[serde(deserialize_with = "ids", alias = "expect_id")]
    pub expect_ids: Vec<u64>,
    /// None of these rule ids may appear.
    #[serde(deserialize_with = "ids", alias = "no_expect_id")]
    pub no_expect_ids: Vec<u64>,
    /// Regex some log line must match.
    pub match_regex: String,
    /// Regex no log line may match.
    pub no_match_regex: String,
}

/// Rule id list; a single number is accepted (the README's `expect_id: N`).
fn ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        One(u64),
        Many(Vec<u64>),
        Nothing(()),
    }
    Ok(match Repr::deserialize(d)? {
        Repr::One(c) => vec![c],
        Repr::Many(v) => v,
        Repr::Nothing(()) => Vec::new(),
    })
}

/// A platform overrides file (`coraza-overrides.yaml` etc.).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OverridesFile {
    /// Format version string.
    pub version: String,
    /// Which engine and platform the overrides describe.
    pub meta: OverridesMeta,
    /// The overrides, in file order.
    pub test_overrides: Vec<TestOverride>,
}

/// `meta:` of an overrides file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OverridesMeta {
    /// Engine name.
    pub engine: String,
    /// Platform name.
    pub platform: String,
    /// Free annotations (a map in schema v3, a list of maps in the CRS files).
    pub annotations: Option<serde_yaml_ng::Value>,
}

/// One override: replaces the expected output of the listed tests of a rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TestOverride {
    /// Rule whose tests are overridden.
    pub rule_id: u64,
    /// Test ids affected. go-ftw applies an override with an empty list to
    /// no test; so does this runner.
    pub test_ids: Vec<u64>,
    /// Stage indexes (0-based) affected; empty means every stage.
    pub stage_ids: Vec<usize>,
    /// Why the platform cannot pass the original expectation.
    pub reason: String,
    /// Retry the stage once on failure.
    pub retry_once: Option<bool>,
    /// The replacement expectation. An override without `output:` replaces
    /// the expectation by an empty one, which every response passes.
    pub output: Output,
}
