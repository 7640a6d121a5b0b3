//! Just enough HTML tokenising for a crawler and its checks: start tags
//! with their attributes (links, forms, inputs, scripts). Not a
//! conforming parser; bounded by [`MAX_TAGS`] so hostile markup costs
//! linear time and bounded memory.

/// Start tags looked at per page (default 20,000): bounds work on a page
/// made of millions of tiny tags.
pub const MAX_TAGS: usize = 20_000;

/// One start tag: lower-case name and attributes (names lower-case,
/// values with the common entities decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// Attributes in order.
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    /// The value of attribute `name` (lower case).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The start tags of `html`, skipping comments and the contents of
/// `<script>`/`<style>`.
pub fn tags(html: &str) -> Vec<Tag> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < MAX_TAGS {
        let Some(lt) = memchr(b'<', &b[i..]) else {
            break;
        };
        i += lt + 1;
        if b[i..].starts_with(b"!--") {
            i = find(b, i, b"-->").map_or(b.len(), |e| e + 3);
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        if i == start {
            continue;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' {
                i += 1;
                break;
            }
            let an = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"=>/".contains(&b[i]) {
                i += 1;
            }
            let attr_name = html[an..i].to_ascii_lowercase();
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < b.len() && b[i] == b'=' {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    let vs = i + 1;
                    let ve = memchr(q, &b[vs..]).map_or(b.len(), |e| vs + e);
                    value = decode_entities(&html[vs..ve]);
                    i = (ve + 1).min(b.len());
                } else {
                    let vs = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = decode_entities(&html[vs..i]);
                }
            }
            if !attr_name.is_empty() && attrs.len() < 64 {
                attrs.push((attr_name, value));
            }
        }
        let raw = name == "script" || name == "style";
        out.push(Tag { name, attrs });
        if raw {
            let close: &[u8] = if out.last().is_some_and(|t| t.name == "script") {
                b"</script"
            } else {
                b"</style"
            };
            i = find_ci(b, i.min(b.len()), close).unwrap_or(b.len());
        }
    }
    out
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn find_ci(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Decodes `&amp; &lt; &gt; &quot; &#39; &#NN; &#xNN;` (what appears in
/// URLs in attributes); others are left as they are.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &rest[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let n = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(n)
                }
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_attrs() {
        let t = tags(
            r#"<!-- <a href="/hidden"> --><A HREF='/a?x=1&amp;y=2'>x</a><img src=/i.png alt>
            <script>var s = "<a href='/no'>";</script><form action="http://x/login" method=post>
            <input type="password" name=pw></form><a href="/b"#,
        );
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "img", "script", "form", "input", "a"]);
        assert_eq!(t[0].attr("href"), Some("/a?x=1&y=2"));
        assert_eq!(t[1].attr("src"), Some("/i.png"));
        assert_eq!(t[1].attr("alt"), Some(""));
        assert_eq!(t[3].attr("action"), Some("http://x/login"));
        assert_eq!(t[4].attr("type"), Some("password"));
        assert_eq!(t[5].attr("href"), Some("/b"));
    }

    #[test]
    fn hostile_markup_is_bounded() {
        let big = "<a ".repeat(100_000);
        assert!(tags(&big).len() <= MAX_TAGS);
        assert!(tags("<").is_empty());
        assert!(tags("<a href='").len() == 1);
        assert_eq!(decode_entities("&#x41;&#66;&bogus;&"), "AB&bogus;&");
        assert_eq!(
            escape("<x a=\"1\">&'"),
            "&lt;x a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }
}
