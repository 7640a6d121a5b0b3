//! Operator test vectors (positive, negative, edge, NUL and invalid UTF-8
//! cases) through the public registry, plus the CRS v4 regex checks: every
//! `@rx` pattern of `../shared/crs-v4/rules/*.conf` compiles, and its
//! required literals never exclude a CRS regression-test payload it matches.

// Tests panic on broken fixtures by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use seclang::operators::{compile, CompileContext, Operator, OperatorContext};
use seclang::{FileLoader, MacroResolver, MacroString};

/// A transaction stand-in: TX variables for macros, captures recorded.
#[derive(Default)]
struct Ctx {
    capturing: bool,
    vars: HashMap<(String, String), Vec<u8>>,
    captures: BTreeMap<usize, Vec<u8>>,
}

impl Ctx {
    fn capturing() -> Ctx {
        Ctx {
            capturing: true,
            ..Ctx::default()
        }
    }

    fn with(mut self, collection: &str, key: &str, value: &str) -> Ctx {
        self.vars.insert(
            (collection.to_ascii_uppercase(), key.to_ascii_lowercase()),
            value.as_bytes().to_vec(),
        );
        self
    }

    fn capture(&self, i: usize) -> Option<&[u8]> {
        self.captures.get(&i).map(Vec::as_slice)
    }
}

impl MacroResolver for Ctx {
    fn resolve(&self, collection: &str, key: Option<&str>, out: &mut Vec<u8>) -> bool {
        let key = key.unwrap_or("").to_ascii_lowercase();
        match self.vars.get(&(collection.to_string(), key)) {
            Some(v) => {
                out.extend_from_slice(v);
                true
            }
            None => false,
        }
    }
}

impl OperatorContext for Ctx {
    fn expand<'a>(&self, arg: &'a MacroString) -> Cow<'a, [u8]> {
        arg.expand(self)
    }
    fn capturing(&self) -> bool {
        self.capturing
    }
    fn set_capture(&mut self, index: usize, value: &[u8]) {
        assert!(index <= 9, "capture index {index} out of range");
        self.captures.insert(index, value.to_vec());
    }
}

/// In-memory files for `@pmFromFile` / `@ipMatchFromFile`.
#[derive(Default)]
struct MemFiles(HashMap<PathBuf, Vec<u8>>);

impl FileLoader for MemFiles {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        Ok(vec![pattern.to_path_buf()])
    }
}

fn op_with(
    name: &str,
    arg: &str,
    files: &MemFiles,
    base: &Path,
) -> Result<Box<dyn Operator>, String> {
    compile(
        name,
        arg,
        &CompileContext {
            files,
            base_dir: base,
        },
    )
}

fn op(name: &str, arg: &str) -> Box<dyn Operator> {
    match op_with(name, arg, &MemFiles::default(), Path::new("/rules")) {
        Ok(o) => o,
        Err(e) => panic!("@{name} {arg:?} does not compile: {e}"),
    }
}

fn err(name: &str, arg: &str) -> String {
    match op_with(name, arg, &MemFiles::default(), Path::new("/rules")) {
        Ok(o) => panic!("@{name} {arg:?} compiled to {o:?}, expected an error"),
        Err(e) => e,
    }
}

fn eval(o: &dyn Operator, input: &[u8]) -> bool {
    o.evaluate(input, &mut Ctx::default())
}

/// Asserts each `(input, expected)` for `@name arg`.
fn check(name: &str, arg: &str, cases: &[(&[u8], bool)]) {
    let o = op(name, arg);
    for (input, expected) in cases {
        assert_eq!(
            eval(&*o, input),
            *expected,
            "@{name} {arg:?} on {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

// ---------------------------------------------------------------- registry

#[test]
fn registry_is_case_insensitive_and_refuses_unknown() {
    for name in ["rx", "RX", "Rx", "rX"] {
        assert!(eval(&*op(name, "a"), b"a"));
    }
    assert!(eval(&*op("UNCONDITIONALMATCH", ""), b""));
    for name in [
        "rbl",
        "geoLookup",
        "inspectFile",
        "gsbLookup",
        "fuzzyHash",
        "bogus",
    ] {
        let e = err(name, "x");
        assert!(e.contains(&format!("unsupported operator @{name}")), "{e}");
    }
}

// ---------------------------------------------------------------- strings

#[test]
fn contains_vectors() {
    check(
        "contains",
        "/admin",
        &[
            (b"/admin", true),
            (b"GET /admin/x HTTP/1.1", true),
            (b"/ADMIN", false),
            (b"/admi", false),
            (b"", false),
            (b"\x00/admin\xff", true),
        ],
    );
    // Empty needle: found at offset 0 of anything.
    check("contains", "", &[(b"", true), (b"x", true)]);
    assert_eq!(
        op("contains", "ab").required_literals(),
        Some(vec![b"ab".to_vec()])
    );
}

#[test]
fn strmatch_vectors() {
    check(
        "strmatch",
        "WebZIP",
        &[
            (b"Mozilla WebZIP/1.0", true),
            (b"webzip", false),
            (b"", false),
            (b"\xffWebZIP\x00", true),
        ],
    );
}

#[test]
fn contains_word_vectors() {
    check(
        "containsWord",
        "select",
        &[
            (b"select", true),
            (b"select * from", true),
            (b"x select", true),
            (b"1select_", true),
            (b"(select)", true),
            (b"selected", false),
            (b"unselect", false),
            (b"Select", false),
            (b"", false),
            (b"\xffselect\x00", true),
            // A later occurrence is a word though the first is not.
            (b"selects select", true),
            (b"selectselect", false),
        ],
    );
    check("containsWord", "", &[(b"", true), (b"abc", true)]);
    // Overlapping occurrences are all considered.
    check(
        "containsWord",
        "a-a",
        &[(b"xa-a-a", true), (b"xa-a-ax", false)],
    );
}

#[test]
fn begins_ends_streq_vectors() {
    check(
        "beginsWith",
        "/api/",
        &[
            (b"/api/v1", true),
            (b"/api/", true),
            (b"/api", false),
            (b"x/api/", false),
            (b"", false),
        ],
    );
    check("beginsWith", "", &[(b"", true), (b"x", true)]);
    check(
        "endsWith",
        ".php",
        &[
            (b"index.php", true),
            (b".php", true),
            (b"index.PHP", false),
            (b"php", false),
            (b"", false),
        ],
    );
    check(
        "streq",
        "POST",
        &[
            (b"POST", true),
            (b"post", false),
            (b"POST ", false),
            (b"POS", false),
            (b"", false),
        ],
    );
    check("streq", "", &[(b"", true), (b"x", false)]);
    check(
        "streq",
        "a\u{e9}",
        &[("a\u{e9}".as_bytes(), true), (b"a\xe9", false)],
    );
}

#[test]
fn string_operators_expand_macros() {
    let o = op("endsWith", "%{request_headers.host}");
    let mut ctx = Ctx::default().with("REQUEST_HEADERS", "host", "example.com");
    assert!(o.evaluate(b"https://www.example.com", &mut ctx));
    assert!(!o.evaluate(b"https://evil.com", &mut ctx));
    // A macro argument has no required literal (its value is unknown).
    assert_eq!(o.required_literals(), None);

    let o = op("streq", "%{TX.2}");
    let mut ctx = Ctx::default().with("TX", "2", "abc");
    assert!(o.evaluate(b"abc", &mut ctx));
    assert!(!o.evaluate(b"abcd", &mut ctx));
    // Missing variable expands to nothing.
    assert!(o.evaluate(b"", &mut Ctx::default()));
}

#[test]
fn within_vectors() {
    let o = op("within", "%{tx.allowed_methods}");
    let mut ctx = Ctx::default().with("TX", "allowed_methods", "GET HEAD POST OPTIONS");
    for (input, expected) in [
        (&b"GET"[..], true),
        (b"POST", true),
        (b"EA", true), // substring search, as ModSecurity
        (b"PUT", false),
        (b"get", false),
        (b"GET HEAD", true),
        (b"", true), // empty input always matches
    ] {
        assert_eq!(o.evaluate(input, &mut ctx), expected, "{input:?}");
    }
    check(
        "within",
        "|application/json| |text/xml|",
        &[(b"|text/xml|", true), (b"|text/html|", false), (b"", true)],
    );
    assert_eq!(op("within", "abc").required_literals(), None);
}

// ---------------------------------------------------------------- numbers

#[test]
fn numeric_vectors() {
    check(
        "eq",
        "5",
        &[
            (b"5", true),
            (b" 5", true),
            (b"5abc", true),
            (b"05", true),
            (b"6", false),
            (b"", false),
        ],
    );
    check(
        "eq",
        "0",
        &[
            (b"", true),
            (b"abc", true),
            (b"0", true),
            (b"-0", true),
            (b"1", false),
        ],
    );
    // stoi: out of 32-bit range throws in ModSecurity, which makes it 0.
    check(
        "eq",
        "0",
        &[(b"2147483648", true), (b"99999999999999999999", true)],
    );
    check("eq", "2147483647", &[(b"2147483647", true)]);
    check("eq", "-3", &[(b"-3", true), (b"3", false)]);
    check(
        "ge",
        "5",
        &[
            (b"5", true),
            (b"6", true),
            (b"4", false),
            (b"x", false),
            (b"10 apples", true),
        ],
    );
    check("gt", "5", &[(b"5", false), (b"6", true), (b"-7", false)]);
    check(
        "le",
        "5",
        &[(b"5", true), (b"4", true), (b"6", false), (b"", true)],
    );
    check(
        "lt",
        "5",
        &[(b"5", false), (b"4", true), (b"", true), (b"\x00", true)],
    );
    // atoll saturates instead of wrapping.
    check(
        "gt",
        "9223372036854775806",
        &[(b"99999999999999999999", true)],
    );
    check("lt", "0", &[(b"-99999999999999999999", true)]);
    // Invalid argument is 0, as in ModSecurity.
    check("gt", "abc", &[(b"1", true), (b"0", false)]);
}

#[test]
fn numeric_operators_expand_macros() {
    let o = op("ge", "%{tx.inbound_anomaly_score_threshold}");
    let mut ctx = Ctx::default().with("TX", "inbound_anomaly_score_threshold", "5");
    assert!(o.evaluate(b"5", &mut ctx));
    assert!(o.evaluate(b"10", &mut ctx));
    assert!(!o.evaluate(b"4", &mut ctx));
    // Unset threshold is 0.
    assert!(o.evaluate(b"0", &mut Ctx::default()));
    let o = op("lt", "%{tx.1}");
    let mut ctx = Ctx::default().with("TX", "1", "3");
    assert!(o.evaluate(b"2", &mut ctx));
    assert!(!o.evaluate(b"3", &mut ctx));
}

// ---------------------------------------------------------------- @rx

#[test]
fn rx_basic_and_flags() {
    check(
        "rx",
        "^abc$",
        &[(b"abc", true), (b"xabc", false), (b"x\nabc\ny", true)],
    );
    // DOTALL: `.` crosses newlines.
    check(
        "rx",
        "a.b",
        &[
            (b"a\nb", true),
            (b"a\x00b", true),
            (b"a\xffb", true),
            (b"ab", false),
        ],
    );
    // Case-insensitive only through (?i), ASCII only.
    check("rx", "(?i)select", &[(b"SeLeCt", true), (b"sel", false)]);
    check("rx", "select", &[(b"SELECT", false)]);
    check(
        "rx",
        "(?i)\u{e9}",
        &["\u{e9}".as_bytes(), &[0xc3, 0xa9]].map(|i| (i, true)),
    );
    check("rx", "(?i)\u{e9}", &[("\u{c9}".as_bytes(), false)]);
    // Bytes, not characters: `\w` is ASCII, invalid UTF-8 input is fine.
    check(
        "rx",
        r"^\w+$",
        &[(b"abc_1", true), ("\u{e9}".as_bytes(), false)],
    );
    check(
        "rx",
        r"\xff\x00",
        &[(b"a\xff\x00b", true), (b"\xff", false)],
    );
    check(
        "rx",
        r"^.$",
        &[(b"\xff", true), ("\u{e9}".as_bytes(), false)],
    );
    // Empty pattern matches everything.
    check("rx", "", &[(b"", true), (b"abc", true)]);
    check(
        "rx",
        r"\bunion\b",
        &[(b"1 union select", true), (b"reunion", false)],
    );
}

#[test]
fn rx_pcre_syntax_is_translated() {
    // Escaped punctuation and `\<` are literals in PCRE.
    check("rx", r"\/etc\/passwd", &[(b"/etc/passwd", true)]);
    check(
        "rx",
        r"\<script\>",
        &[(b"<script>", true), (b"script", false)],
    );
    // `{` that is not a quantifier is literal.
    check("rx", r"\${jndi:", &[(b"${jndi:ldap", true)]);
    check("rx", r"a{,2}", &[(b"a{,2}", true), (b"aa", false)]);
    check("rx", r"x{2}", &[(b"xx", true), (b"x", false)]);
    check("rx", r"{x}", &[(b"{x}", true)]);
    // Class escapes next to `-`, `[` inside a class, POSIX classes.
    check("rx", r"^[\w-.]+$", &[(b"a-b.c", true), (b"a b", false)]);
    check("rx", r"^[[a]+$", &[(b"[a[", true), (b"b", false)]);
    check("rx", r"^[[:alpha:]]+$", &[(b"abc", true), (b"ab1", false)]);
    check("rx", r"^[[:^digit:]]+$", &[(b"abc", true), (b"ab1", false)]);
    check("rx", r"^[]a]+$", &[(b"]a", true), (b"b", false)]);
    check("rx", r"^[a&&b]+$", &[(b"a&b", true)]);
    check("rx", r"^[a~~b]+$", &[(b"~", true)]);
    check("rx", r"^[+--]+$", &[(b"+,-", true), (b".", false)]);
    // `\b` in a class is backspace.
    check("rx", r"[\b]", &[(b"\x08", true), (b"b", false)]);
    // Octal, control, escape, \x{..}, \Q..\E, \e, \h, \v, \R, \N, \Z, comments.
    check("rx", r"\0", &[(b"\x00", true), (b"0", false)]);
    check("rx", r"\101\x{42}\cc", &[(b"AB\x03", true)]);
    check("rx", r"\Qa.b*\E", &[(b"a.b*", true), (b"axb", false)]);
    check("rx", r"\e", &[(b"\x1b", true)]);
    check(
        "rx",
        r"a\hb",
        &[(b"a b", true), (b"a\tb", true), (b"a\nb", false)],
    );
    check(
        "rx",
        r"a\vb",
        &[(b"a\nb", true), (b"a\x0bb", true), (b"a b", false)],
    );
    check(
        "rx",
        r"a\Rb",
        &[(b"a\r\nb", true), (b"a\nb", true), (b"ab", false)],
    );
    check("rx", r"a\Nb", &[(b"axb", true), (b"a\nb", false)]);
    check(
        "rx",
        r"a\Z",
        &[(b"xa", true), (b"xa\n", true), (b"xa\nb", false)],
    );
    check("rx", r"a(?#comment)b", &[(b"ab", true)]);
    check("rx", r"(?'n'a)b", &[(b"ab", true)]);
    check(
        "rx",
        "caf\u{e9}",
        &[("caf\u{e9}".as_bytes(), true), (b"cafe", false)],
    );
    // Non-ASCII pattern bytes are bytes: `+` repeats the last byte only.
    check(
        "rx",
        "^\u{e9}+$",
        &[(b"\xc3\xa9\xa9", true), (b"\xc3\xa9\xc3\xa9", false)],
    );
}

#[test]
fn rx_caret_is_false_at_the_end_after_a_final_newline() {
    // PCRE multi-line `^` does not hold at the very end of an input ending
    // with `\n` (checked against PCRE2 with `grep -zP`).
    check(
        "rx",
        "^$",
        &[
            (b"abc\n", false),
            (b"\n", true),
            (b"abc\n\n", true),
            (b"", true),
            (b"abc", false),
        ],
    );
    check("rx", "x|^$", &[(b"abc\n", false), (b"x\n", true)]);
    check("rx", r"^\s*$", &[(b"abc\n", false), (b"abc\n \n", true)]);
    check(
        "rx",
        "^(?:a|b)*$",
        &[(b"c\n", false), (b"c\nab\n", true), (b"ab\n", true)],
    );
    check(
        "rx",
        "(?i)^(?:[a-z]|&amp;)*$",
        &[(b"x\"\n", false), (b"x&AMP;\n", true)],
    );
    check("rx", "$", &[(b"abc\n", true)]);
    // Captures come from the PCRE-valid match.
    let o = op("rx", "^(a*)$");
    let mut ctx = Ctx::capturing();
    assert!(!o.evaluate(b"b\n", &mut ctx));
    assert!(ctx.captures.is_empty());
    assert!(o.evaluate(b"aa\n", &mut ctx));
    assert_eq!(ctx.capture(1), Some(&b"aa"[..]));
    let o = op("rx", "(x)|^()$");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"ab\nx\n", &mut ctx));
    assert_eq!(ctx.capture(0), Some(&b"x"[..]));
    // An empty match at the end that needs no `^` still counts.
    let o = op("rx", r"^a|()\z");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"q\n", &mut ctx));
    assert_eq!(ctx.capture(1), Some(&b""[..]));
    assert!(eval(&*o, b"q\n"));
}

#[test]
fn rx_extended_mode() {
    // PCRE `x`: white space and `#` comments are skipped, even when the
    // comment holds what would be syntax errors; classes keep spaces.
    check(
        "rx",
        "(?x) a b c # comment [ ( \\\n d+",
        &[(b"abcdd", true), (b"abc d", false)],
    );
    check("rx", r"(?x)a\ b", &[(b"a b", true), (b"ab", false)]);
    check("rx", "(?x:a b)c d", &[(b"abc d", true), (b"abcd", false)]);
    check("rx", "(?x)a(?-x) b", &[(b"a b", true), (b"ab", false)]);
    check("rx", "(?x)[ ]a", &[(b" a", true), (b"a", false)]);
    check("rx", "(?x)^ $", &[(b"abc\n", false), (b"", true)]);
}

#[test]
fn rx_refuses_backtracking_constructs() {
    for (pattern, needle) in [
        (r"(a)\1", "backreference"),
        (r"(?=a)", "lookahead"),
        (r"(?!a)", "lookahead"),
        (r"(?<=a)b", "lookbehind"),
        (r"(?<!a)b", "lookbehind"),
        (r"(?>a)", "atomic"),
        (r"a*+", "possessive"),
        (r"a++", "possessive"),
        (r"a{2}+", "possessive"),
        (r"(?R)", "recursion"),
        (r"\p{L}", "Unicode"),
        (r"\x{100}", "too large"),
        (r"[a", "unterminated"),
        (r"\y", "unknown escape"),
        (r"a\", "backslash"),
        (r"(a", "cannot compile"),
    ] {
        let e = err("rx", pattern);
        assert!(e.contains(needle), "{pattern}: {e}");
        assert!(
            e.contains(&format!("{pattern:?}")),
            "error names the pattern: {e}"
        );
    }
    // Lazy quantifiers are fine.
    check("rx", r"a+?b", &[(b"aab", true)]);
}

#[test]
fn rx_captures() {
    let o = op("rx", r"(a+)(x)?(b+)");
    let mut ctx = Ctx::capturing();
    ctx.captures.insert(2, b"old".to_vec());
    assert!(o.evaluate(b"zzaabbb", &mut ctx));
    assert_eq!(ctx.capture(0), Some(&b"aabbb"[..]));
    assert_eq!(ctx.capture(1), Some(&b"aa"[..]));
    // Group 2 did not participate: TX:2 keeps its value.
    assert_eq!(ctx.capture(2), Some(&b"old"[..]));
    assert_eq!(ctx.capture(3), Some(&b"bbb"[..]));

    // Only TX:0..TX:9.
    let o = op("rx", r"(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"abcdefghijk", &mut ctx));
    assert_eq!(ctx.captures.len(), 10);
    assert_eq!(ctx.capture(9), Some(&b"i"[..]));

    // Without `capture`, nothing is stored; no match stores nothing.
    let mut ctx = Ctx::default();
    assert!(o.evaluate(b"abcdefghijk", &mut ctx));
    assert!(ctx.captures.is_empty());
    let mut ctx = Ctx::capturing();
    assert!(!o.evaluate(b"abc", &mut ctx));
    assert!(ctx.captures.is_empty());
}

#[test]
fn rx_macro_pattern() {
    let o = op("rx", "^%{tx.prefix}[0-9]+$");
    let mut ctx = Ctx::default().with("TX", "prefix", "id");
    assert!(o.evaluate(b"id42", &mut ctx));
    assert!(!o.evaluate(b"x42", &mut ctx));
    // PCRE's `^` applies to expanded patterns too.
    let o = op("rx", "^%{tx.body}$");
    let mut ctx = Ctx::default().with("TX", "body", "a*");
    assert!(!o.evaluate(b"b\n", &mut ctx));
    assert!(o.evaluate(b"aa\n", &mut ctx));
    // An expanded pattern that does not compile does not match.
    let mut ctx = Ctx::default().with("TX", "prefix", "(");
    assert!(!o.evaluate(b"(42", &mut ctx));
}

#[test]
fn rx_required_literals() {
    let lits = |p: &str| op("rx", p).required_literals();
    assert_eq!(lits("abc"), Some(vec![b"abc".to_vec()]));
    assert_eq!(lits("(?i)SeLeCt"), Some(vec![b"select".to_vec()]));
    assert!(op("rx", "abc").literals_case_insensitive());
    let mut alt = lits(r"\b(?:union|insert)\s").expect("alternation");
    alt.sort();
    assert_eq!(alt, vec![b"insert".to_vec(), b"union".to_vec()]);
    // A literal in the middle is found.
    assert_eq!(lits(r"\d+\s*passwd"), Some(vec![b"passwd".to_vec()]));
    // No useful set: too short, optional, or anything.
    assert_eq!(lits("a"), None);
    assert_eq!(lits("(?:abc)?"), None);
    assert_eq!(lits(r"\w+"), None);
    assert_eq!(lits("abc|d"), None);
    assert_eq!(lits(""), None);
}

// ---------------------------------------------------------------- @pm

#[test]
fn pm_vectors() {
    check(
        "pm",
        "nikto sqlmap nessus",
        &[
            (b"Mozilla/5.0 (Nikto/2.1)", true),
            (b"SQLMAP", true),
            (b"nessu", false),
            (b"", false),
            (b"\x00\xffnessus\x00", true),
        ],
    );
    // Quoted argument, hex bytes, escapes.
    check("pm", "\"a:b\"", &[(b"xa:bx", true)]);
    check("pm", "|4142|", &[(b"xaby", true)]);
    // A space inside a hex block is not hex: the argument stays undecoded.
    check(
        "pm",
        "|41 42|",
        &[(b"|41", true), (b"42|", true), (b"ab", false)],
    );
    check("pm", "|00|zz", &[(b"a\x00zz", true), (b"zz", false)]);
    check("pm", r"a\;b", &[(b"a;b", true)]);
    // `|20|` decodes to a space, which then splits the phrase (as ModSecurity).
    check("pm", "foo|20|bar", &[(b"bar", true), (b"foo", true)]);
    // Tabs and newlines separate phrases too.
    check(
        "pm",
        "one\ttwo",
        &[(b"two", true), (b"one\ttwo", true), (b"on", false)],
    );
    assert!(err("pm", "   ").contains("at least one phrase"));
    let mut lits = op("pm", "Foo bar")
        .required_literals()
        .expect("pm literals");
    lits.sort();
    assert_eq!(lits, vec![b"bar".to_vec(), b"foo".to_vec()]);
    assert!(op("pm", "x").literals_case_insensitive());
}

#[test]
fn pm_capture_sets_the_phrase() {
    let o = op("pm", "Nikto sqlmap");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"agent: NIKTO scanner and sqlmap", &mut ctx));
    assert_eq!(ctx.capture(0), Some(&b"Nikto"[..]));
    // The occurrence that ends first wins.
    let o = op("pm", "bcd abc");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"xabcd", &mut ctx));
    assert_eq!(ctx.capture(0), Some(&b"abc"[..]));
    let mut ctx = Ctx::default();
    assert!(o.evaluate(b"xabcd", &mut ctx));
    assert!(ctx.captures.is_empty());
}

#[test]
fn pm_from_file_vectors() {
    let mut files = MemFiles::default();
    files.0.insert(
        PathBuf::from("/rules/agents.data"),
        b"# scanners\n\nnikto\r\n  # indented comment\nsql map\n   \nAcunetix\n".to_vec(),
    );
    files
        .0
        .insert(PathBuf::from("/abs/empty.data"), b"# nothing\n\n".to_vec());
    let base = Path::new("/rules");
    for name in ["pmFromFile", "pmf", "PMFROMFILE"] {
        let o = op_with(name, "agents.data", &files, base).expect("file resolves");
        for (input, expected) in [
            (&b"NIKTO/2"[..], true),
            (b"x sql map y", true),
            (b"sqlmap", false),
            (b"acunetix", true),
            (b"scanners", false),
            (b" ", false),
            (b"", false),
        ] {
            assert_eq!(eval(&*o, input), expected, "{name} {input:?}");
        }
    }
    let e = op_with("pmFromFile", "missing.data", &files, base).expect_err("missing");
    assert!(e.contains("missing.data"), "{e}");
    let e = op_with("pmFromFile", "/abs/empty.data", &files, base).expect_err("empty");
    assert!(e.contains("at least one phrase"), "{e}");
    let e = op_with("pmFromFile", "https://example.com/x.data", &files, base).expect_err("remote");
    assert!(e.contains("remote"), "{e}");
}

// ---------------------------------------------------------------- @ipMatch

#[test]
fn ip_match_vectors() {
    check(
        "ipMatch",
        "127.0.0.1, 10.0.0.0/8,192.168.1.0/24,::1,2001:db8::/32",
        &[
            (b"127.0.0.1", true),
            (b"127.0.0.2", false),
            (b"10.255.1.2", true),
            (b"11.0.0.0", false),
            (b"192.168.1.77", true),
            (b"192.168.2.1", false),
            (b"::1", true),
            (b"::2", false),
            (b"2001:db8:1::5", true),
            (b"2001:db9::1", false),
            // IPv4-mapped IPv6 is compared with IPv6 entries only.
            (b"::ffff:10.0.0.1", false),
            // Not addresses.
            (b"", false),
            (b"localhost", false),
            (b"10.0.0.1 ", false),
            (b"010.0.0.1", false),
            (b"10.0.0.1\x00", false),
            (b"\xff", false),
        ],
    );
    // Host bits in a network are ignored; overlapping entries merge.
    check(
        "ipMatch",
        "10.1.2.3/8,10.0.0.0/16",
        &[(b"10.200.0.1", true)],
    );
    check(
        "ipMatch",
        "0.0.0.0/1",
        &[(b"127.255.255.255", true), (b"128.0.0.0", false)],
    );
    check("ipMatch", "255.255.255.255", &[(b"255.255.255.255", true)]);
    check("ipMatch", "::/1", &[(b"7fff::", true), (b"8000::", false)]);
    for bad in [
        "1.2.3",
        "1.2.3.4/33",
        "1.2.3.4/0",
        "::1/129",
        "x",
        "",
        "1.2.3.4/a",
    ] {
        err("ipMatch", bad);
    }
}

#[test]
fn ip_match_from_file_vectors() {
    let mut files = MemFiles::default();
    files.0.insert(
        PathBuf::from("/rules/ips.txt"),
        b"# blocked\n192.0.2.0/24 # test net\r\n\n2001:db8::1\n198.51.100.7,203.0.113.9\n".to_vec(),
    );
    files.0.insert(
        PathBuf::from("/rules/bad.txt"),
        b"1.2.3.4\nnot-an-ip\n".to_vec(),
    );
    let base = Path::new("/rules");
    for name in ["ipMatchFromFile", "ipMatchF"] {
        let o = op_with(name, "ips.txt", &files, base).expect("loads");
        for (input, expected) in [
            (&b"192.0.2.200"[..], true),
            (b"192.0.3.1", false),
            (b"2001:db8::1", true),
            (b"2001:db8::2", false),
            (b"203.0.113.9", true),
            (b"198.51.100.8", false),
        ] {
            assert_eq!(eval(&*o, input), expected, "{name} {input:?}");
        }
    }
    let e = op_with("ipMatchFromFile", "bad.txt", &files, base).expect_err("bad line");
    assert!(e.contains("line 2"), "{e}");
}

// ---------------------------------------------------------------- validators

#[test]
fn validate_byte_range_vectors() {
    check(
        "validateByteRange",
        "1-255",
        &[
            (b"abc", false),
            (b"\xff\x01", false),
            (b"a\x00b", true),
            (b"", false),
        ],
    );
    check(
        "validateByteRange",
        "9,10,13,32-126",
        &[
            (b"hello world\r\n\t", false),
            (b"\x0b", true),
            (b"\x7f", true),
            (b"\xc3\xa9", true),
        ],
    );
    check(
        "validateByteRange",
        " 38, 44-46 ,48-58",
        &[(b"&,-.09:", false), (b"a", true), (b"/", true)],
    );
    check(
        "validateByteRange",
        "0",
        &[(b"\x00\x00", false), (b"\x01", true)],
    );
    for bad in ["", "a-b", "300", "1-256", "20-10", "1,,2", "-5"] {
        let e = err("validateByteRange", bad);
        assert!(e.contains("validateByteRange"), "{bad}: {e}");
    }
}

#[test]
fn validate_url_encoding_vectors() {
    check(
        "validateUrlEncoding",
        "",
        &[
            (b"", false),
            (b"abc", false),
            (b"a%20b%2F%2f", false),
            (b"%", true),
            (b"a%2", true),
            (b"%41%", true),
            (b"%zz", true),
            (b"%2g", true),
            (b"%%41", true),
            (b"\xff\x00%41", false),
        ],
    );
}

#[test]
fn validate_utf8_encoding_vectors() {
    check(
        "validateUtf8Encoding",
        "",
        &[
            (b"", false),
            (b"plain ascii\x00", false),
            ("caf\u{e9} \u{20ac} \u{1f600}".as_bytes(), false),
            (b"\xff", true),
            (b"\x80", true),
            (b"\xc3", true),         // truncated
            (b"\xc3\x28", true),     // bad continuation
            (b"\xc0\x80", true),     // overlong NUL
            (b"\xe0\x80\xaf", true), // overlong '/'
            (b"\xed\xa0\x80", true), // surrogate
            (b"\xf5\x80\x80\x80", true),
            (b"\xf0\x9f\x98", true),
            // Above U+10FFFF with an F4 lead: accepted, as ModSecurity does.
            (b"\xf4\x90\x80\x80", false),
        ],
    );
}

// ---------------------------------------------------------------- others

#[test]
fn unconditional_and_no_match() {
    check("unconditionalMatch", "", &[(b"", true), (b"\xff", true)]);
    check("noMatch", "", &[(b"", false), (b"anything", false)]);
}

#[test]
fn detectors_follow_the_detect_crate() {
    // The detectors are delegated: whatever `detect` says, the operator says,
    // and a match with `capture` fills TX:0 (the fingerprint for SQLi, the
    // input for XSS).
    for input in [
        &b"1' OR '1'='1"[..],
        b"<script>alert(1)</script>",
        b"hello",
        b"",
    ] {
        let sqli = op("detectSQLi", "");
        let mut ctx = Ctx::capturing();
        let expected = detect::detect_sqli(input);
        assert_eq!(sqli.evaluate(input, &mut ctx), expected.is_some());
        assert_eq!(
            ctx.capture(0),
            expected.as_ref().map(|f| f.as_str().as_bytes())
        );

        let xss = op("detectXSS", "");
        let mut ctx = Ctx::capturing();
        let expected = detect::detect_xss(input);
        assert_eq!(xss.evaluate(input, &mut ctx), expected);
        assert_eq!(ctx.capture(0), expected.then_some(input));
    }
}

// ---------------------------------------------------------------- CRS v4

fn shared_dir() -> PathBuf {
    match std::env::var_os("PALISADE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")),
    }
}

/// Every `@rx` argument in the CRS rule files, with `file:line`. Lines are
/// joined at `\` continuations; comment lines are skipped; inside the quoted
/// operator `\"` is an escaped quote (kept as `\"`, a literal `"` for PCRE).
fn crs_rx_patterns() -> Vec<(String, String)> {
    let rules = shared_dir().join("crs-v4/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules)
        .unwrap_or_else(|e| panic!("{}: {e}", rules.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("CRS file is UTF-8");
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut directive = String::new();
        let mut first_line = 0;
        for (n, line) in text.lines().enumerate() {
            if directive.is_empty() {
                if line.trim_start().starts_with('#') {
                    continue;
                }
                first_line = n + 1;
            }
            match line.strip_suffix('\\') {
                Some(head) => {
                    directive.push_str(head);
                    continue;
                }
                None => directive.push_str(line),
            }
            let d = std::mem::take(&mut directive);
            for marker in ["\"@rx ", "\"!@rx "] {
                let mut from = 0;
                while let Some(pos) = d[from..].find(marker) {
                    let start = from + pos + marker.len();
                    let bytes = d.as_bytes();
                    let mut end = start;
                    while end < bytes.len() && bytes[end] != b'"' {
                        end += if bytes[end] == b'\\' { 2 } else { 1 };
                    }
                    let end = end.min(bytes.len());
                    out.push((format!("{name}:{first_line}"), d[start..end].to_string()));
                    from = end;
                }
            }
        }
    }
    out
}

#[test]
fn every_crs_rx_pattern_compiles() {
    let patterns = crs_rx_patterns();
    assert!(
        patterns.len() > 250,
        "found only {} @rx patterns",
        patterns.len()
    );
    let mut failures = Vec::new();
    let mut with_literals = 0;
    for (place, pattern) in &patterns {
        match op_with("rx", pattern, &MemFiles::default(), Path::new("/")) {
            Ok(o) => with_literals += usize::from(o.required_literals().is_some()),
            Err(e) => failures.push(format!("{place}: {e}")),
        }
    }
    eprintln!(
        "CRS @rx patterns: {} compiled, {} failed, {} with required literals",
        patterns.len() - failures.len(),
        failures.len(),
        with_literals
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Percent-decodes `%XX` and `+` (what `t:urlDecodeUni`-style rules see).
fn url_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match input[i] {
            b'%' if i + 2 < input.len() => match (hex(input[i + 1]), hex(input[i + 2])) {
                (Some(a), Some(b)) => {
                    out.push((a * 16 + b) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Payloads of the CRS regression tests (`uri:`, `data:`, header values…),
/// raw, URL-decoded, split at `&`/`=`, and lower-cased.
fn crs_payloads() -> BTreeSet<Vec<u8>> {
    let mut values = BTreeSet::new();
    let mut stack = vec![shared_dir().join("crs-v4/tests/tests")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for line in text.lines() {
                let line = line.trim_start().trim_start_matches("- ");
                let Some((key, value)) = line.split_once(": ") else {
                    continue;
                };
                if matches!(
                    key,
                    "desc" | "description" | "author" | "test_id" | "rule_id"
                ) {
                    continue;
                }
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .map(|v| v.replace("\\\"", "\"").replace("\\\\", "\\"))
                    .or_else(|| {
                        value
                            .strip_prefix('\'')
                            .and_then(|v| v.strip_suffix('\''))
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| value.to_string());
                if value.len() < 2 {
                    continue;
                }
                values.insert(value.into_bytes());
            }
        }
    }
    let mut inputs = BTreeSet::new();
    for v in values {
        let decoded = url_decode(&v);
        let twice = url_decode(&decoded);
        for form in [v, decoded, twice] {
            for part in form.split(|&b| b == b'&' || b == b'=') {
                inputs.insert(part.to_vec());
                inputs.insert(part.to_ascii_lowercase());
            }
            inputs.insert(form.to_ascii_lowercase());
            inputs.insert(form);
        }
    }
    inputs
}

#[test]
fn crs_required_literals_never_lose_a_match() {
    let payloads = crs_payloads();
    assert!(payloads.len() > 5000, "only {} payloads", payloads.len());
    let patterns = crs_rx_patterns();
    let mut checked_matches = 0usize;
    for (place, pattern) in &patterns {
        let Ok(o) = op_with("rx", pattern, &MemFiles::default(), Path::new("/")) else {
            continue; // reported by every_crs_rx_pattern_compiles
        };
        let Some(literals) = o.required_literals() else {
            continue;
        };
        assert!(o.literals_case_insensitive());
        let finders: Vec<_> = literals.iter().map(memchr::memmem::Finder::new).collect();
        for input in &payloads {
            if !eval(&*o, input) {
                continue;
            }
            checked_matches += 1;
            let lower = input.to_ascii_lowercase();
            assert!(
                finders.iter().any(|f| f.find(&lower).is_some()),
                "{place}: pattern {pattern:?} matches {:?} but none of its required literals {:?} occurs",
                String::from_utf8_lossy(input),
                literals.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>()
            );
        }
    }
    eprintln!(
        "required literals: {checked_matches} (pattern, payload) matches checked over {} payloads",
        payloads.len()
    );
    assert!(
        checked_matches > 1000,
        "too few matches exercised: {checked_matches}"
    );
}

// ---------------------------------------------------------------- @verify*

#[test]
fn verify_cc_vectors() {
    check(
        "verifyCC",
        r"\d{13,16}",
        &[
            (b"card=4111111111111111", true),
            // Every offset is a candidate start, as in ModSecurity: the
            // 13-digit tail `1111111111112` passes the Luhn check.
            (b"card=4111111111111112", true),
            (b"", false),
            (b"no digits", false),
            // A failing candidate does not hide a later valid one.
            (b"4111111111111112 x 5500000000000004", true),
            // Candidates at later offsets inside a failing run are tried too.
            (b"94111111111111111", true),
            (b"\xff\x004111111111111111\x00", true),
        ],
    );
    check(
        "verifyCC",
        r"\b\d{13,16}\b",
        &[
            (b"card=4111111111111112", false),
            (b"card=4111111111111111;", true),
        ],
    );
    let o = op("verifyCC", r"(?:\d[ -]?){13,16}");
    let mut ctx = Ctx::capturing();
    assert!(o.evaluate(b"pay 4111 1111 1111 1111 now", &mut ctx));
    assert_eq!(ctx.capture(0), Some(&b"4111 1111 1111 1111 "[..]));
    assert!(err("verifyCC", "").contains("regular expression"));
    assert!(err("verifyCC", "(a)\\1").contains("backreference"));
}

#[test]
fn verify_cpf_and_ssn_vectors() {
    check(
        "verifyCPF",
        r"\d{3}\.?\d{3}\.?\d{3}-?\d{2}",
        &[
            (b"cpf 529.982.247-25", true),
            (b"cpf 529.982.247-26", false),
            (b"111.111.111-11", false),
            (b"", false),
        ],
    );
    check(
        "verifySSN",
        r"\d{3}-?\d{2}-?\d{4}",
        &[
            (b"ssn 078-05-1120", true),
            (b"ssn 666-05-1120", false),
            (b"123-45-6789", false),
            (b"", false),
        ],
    );
}

// ---------------------------------------------------------------- robustness

/// Deterministic xorshift generator: reproducible pseudo-random patterns.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_patterns_and_inputs_never_panic() {
    // Patterns built from PCRE's special characters and escapes: compiling
    // either succeeds or returns an error; evaluating never panics.
    const PIECES: &[&str] = &[
        "\\", "[", "]", "(", ")", "(?", "{", "}", ",", "1", "9", "-", "^", "$", "*", "+", "?", "|",
        ".", ":", "<", ">", "=", "!", "#", "'", "P", "x", "Q", "E", "c", "o", "0", "7", "\\x{",
        "\\x", "[:", ":]", "alpha", "\\b", "\\w", "\\d", "\\Z", "\\R", "a", "\u{e9}", "\u{0}", " ",
        "\n", "%{", "tx.a", "&&", "~~",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let inputs: [&[u8]; 5] = [
        b"",
        b"a",
        b"\x00\xff\xfe",
        "caf\u{e9} 1 [x]".as_bytes(),
        b"((a]]{1}\\",
    ];
    let mut compiled = 0;
    for _ in 0..5_000 {
        let len = (rng.next() % 12) as usize;
        let pattern: String = (0..len)
            .map(|_| PIECES[(rng.next() % PIECES.len() as u64) as usize])
            .collect();
        for name in [
            "rx",
            "pm",
            "verifyCC",
            "validateByteRange",
            "ipMatch",
            "within",
            "eq",
        ] {
            if let Ok(o) = op_with(name, &pattern, &MemFiles::default(), Path::new("/")) {
                compiled += 1;
                let _ = o.required_literals();
                for input in inputs {
                    let mut ctx = Ctx::capturing().with("TX", "a", "(");
                    let _ = o.evaluate(input, &mut ctx);
                }
            }
        }
    }
    assert!(compiled > 5_000, "only {compiled} operators compiled");
}

#[test]
fn every_crs_pm_from_file_loads() {
    // Every `@pmFromFile x.data` of CRS resolves against the rules directory
    // and yields phrases; comment lines never become phrases.
    let rules = shared_dir().join("crs-v4/rules");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&rules).expect("rules dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for part in text.split("@pmFromFile ").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| !matches!(c, '"' | ' '))
                .collect();
            if name.ends_with(".data") {
                names.insert(name);
            }
        }
    }
    assert!(names.len() >= 8, "found {names:?}");
    let files = seclang::FsLoader;
    for name in &names {
        let o = compile(
            "pmFromFile",
            name,
            &CompileContext {
                files: &files,
                base_dir: &rules,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let literals = o.required_literals().expect("phrases");
        assert!(!literals.is_empty());
        assert!(
            literals.iter().all(|l| !l.starts_with(b"#")),
            "{name}: a comment became a phrase"
        );
        // Each phrase of the file matches itself, in upper case too.
        let data = std::fs::read(rules.join(name)).expect("data file");
        let first = data
            .split(|&b| b == b'\n')
            .find(|l| !l.is_empty() && !l.starts_with(b"#"))
            .expect("a phrase");
        assert!(eval(&*o, &first.to_ascii_uppercase()), "{name}");
    }
}

/// Appends a random string that `hir` matches, up to look-around
/// assertions (callers keep only the samples the regex really matches).
fn sample(hir: &regex_syntax::hir::Hir, rng: &mut Rng, out: &mut Vec<u8>) {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(lit) => out.extend_from_slice(&lit.0),
        HirKind::Class(Class::Bytes(class)) => {
            let ranges = class.ranges();
            if !ranges.is_empty() {
                let r = ranges[(rng.next() % ranges.len() as u64) as usize];
                let span = u64::from(r.end() - r.start()) + 1;
                out.push(r.start() + (rng.next() % span) as u8);
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            let ranges = class.ranges();
            if !ranges.is_empty() {
                let r = ranges[(rng.next() % ranges.len() as u64) as usize];
                let mut buf = [0u8; 4];
                out.extend_from_slice(r.start().encode_utf8(&mut buf).as_bytes());
            }
        }
        HirKind::Repetition(rep) => {
            let max = rep.max.unwrap_or(rep.min + 3).min(rep.min + 3);
            let count = rep.min + (rng.next() % u64::from(max - rep.min + 1)) as u32;
            for _ in 0..count {
                sample(&rep.sub, rng, out);
            }
        }
        HirKind::Capture(cap) => sample(&cap.sub, rng, out),
        HirKind::Concat(subs) => subs.iter().for_each(|s| sample(s, rng, out)),
        HirKind::Alternation(subs) => {
            sample(&subs[(rng.next() % subs.len() as u64) as usize], rng, out)
        }
    }
}

/// Samples 200 strings from `pattern`; for each the regex matches, asserts
/// one of its required literals occurs. Returns how many matched.
fn literals_hold_on_samples(place: &str, pattern: &str, rng: &mut Rng) -> usize {
    let Ok(o) = op_with("rx", pattern, &MemFiles::default(), Path::new("/")) else {
        return 0;
    };
    let Some(literals) = o.required_literals() else {
        return 0;
    };
    let translated = seclang::operators::translate_pcre(pattern.as_bytes()).expect("compiled");
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .dot_matches_new_line(true)
        .multi_line(true)
        .build()
        .parse(&translated)
        .expect("parses as it compiled");
    let mut checked = 0;
    for i in 0..200 {
        let mut input = Vec::new();
        if i % 2 == 1 {
            input.extend_from_slice(b"x= ");
        }
        sample(&hir, rng, &mut input);
        if i % 3 == 1 {
            input.extend_from_slice(b" ;\n");
        }
        if !eval(&*o, &input) {
            continue;
        }
        checked += 1;
        let lower = input.to_ascii_lowercase();
        assert!(
            literals
                .iter()
                .any(|l| memchr::memmem::find(&lower, l).is_some()),
            "{place}: {pattern:?} matches generated {:?} without any of {:?}",
            String::from_utf8_lossy(&input),
            literals
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect::<Vec<_>>()
        );
    }
    checked
}

#[test]
fn crs_required_literals_hold_on_generated_matches() {
    // Strings generated from each CRS regex (random branches, repetition
    // counts and class members, with random surroundings): whenever the
    // regex matches one, one of its required literals must occur in it.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut checked = 0usize;
    for (place, pattern) in crs_rx_patterns() {
        checked += literals_hold_on_samples(&place, &pattern, &mut rng);
    }
    eprintln!("generated matches checked: {checked}");
    assert!(checked > 20_000, "only {checked} generated inputs matched");
}

#[test]
fn tricky_required_literals_hold_on_generated_matches() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let patterns = [
        r"a(?i)bcD",
        r"(?i:ab)CD|xY(?-i)Zw",
        r"(?:abc|)def",
        r"(?:abc|de)?fgh",
        r"x{0}abc|y{2}zz",
        r"^\bfoo\b$",
        r"(?:ab|cd)(?:ef|gh)(?:ij)?",
        r"[aA][bB][cC]d?",
        r"(?i)[a-z]{2}[0-9]union",
        r"(?:a|b|c)(?:d|e)xyz*",
        r"ab+c{1,3}(?:de){2}",
        r"(?s).abc.",
        r"(?m)^abc$|^def",
        r"(?x) a b c \# d",
        r"\Qa.b\E(?:cd|ef)",
        "caf\u{e9}(?i)X",
        r"[\x00-\x10]ab\xffcd",
        r"(a)(b)?(?:cd|ef|gh|ij|kl|mn|op|qr|st|uv|wx|yz)",
    ];
    let mut checked = 0;
    for pattern in patterns {
        let n = literals_hold_on_samples(pattern, pattern, &mut rng);
        assert!(n > 0, "{pattern}: no generated sample matched");
        checked += n;
    }
    assert!(checked > 1000);
}

#[test]
fn verify_cc_work_is_bounded_on_long_digit_runs() {
    // `\d+` over 200,000 digits: every offset yields a candidate nearly as
    // long as the input (quadratic in ModSecurity). The work budget ends
    // the loop; a valid number early in the input is still found.
    let o = op("verifyCC", r"\d+");
    let mut input = vec![b'1'; 200_000];
    input[199_999] = b'2';
    let started = std::time::Instant::now();
    let _ = eval(&*o, &input);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(eval(&*o, b"4111111111111111 and then more text"));
}
