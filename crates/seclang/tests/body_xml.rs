//! XML body processor: what XML:/* and XML://@* see, well-formedness errors,
//! and XXE / entity-expansion / depth attacks.

use seclang::body::{self, xml, BodyLimits, Processor};

fn parse(s: &str) -> Result<xml::XmlDoc, xml::XmlError> {
    xml::parse(s.as_bytes(), &BodyLimits::default())
}

fn doc(s: &str) -> xml::XmlDoc {
    match parse(s) {
        Ok(d) => d,
        Err(e) => panic!("{s}: {e:?}"),
    }
}

fn reason(s: &str) -> &'static str {
    match parse(s) {
        Ok(_) => "ok",
        Err(e) => e.reason,
    }
}

fn texts(d: &xml::XmlDoc) -> Vec<String> {
    d.texts
        .iter()
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect()
}

fn attr_values(d: &xml::XmlDoc) -> Vec<String> {
    d.attributes
        .iter()
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn root_text_and_text_nodes() {
    let d = doc(
        "<?xml version=\"1.0\"?>\n<order id=\"7\">\n  <item sku='a1'>book</item>\n  <note><![CDATA[<script>]]></note>\n  <!-- c --><empty/>\n</order>\n",
    );
    // ModSecurity: xmlNodeGetContent(root) — everything, whitespace kept.
    assert_eq!(
        String::from_utf8_lossy(&d.root_text),
        "\n  book\n  <script>\n  \n"
    );
    // Coraza: each non-blank text node, trimmed.
    assert_eq!(texts(&d), vec!["book", "<script>"]);
    assert_eq!(attr_values(&d), vec!["7", "a1"]);
    assert_eq!(d.attributes[0].0, b"id");
}

#[test]
fn entities_and_character_references_are_decoded() {
    let d = doc("<a t=\"&lt;&#x41;&#66;&quot;&apos;&amp;\">x &lt;y&gt; &#233;&#x20AC;</a>");
    assert_eq!(attr_values(&d), vec!["<AB\"'&"]);
    assert_eq!(texts(&d), vec!["x <y> é€"]);
}

#[test]
fn attribute_whitespace_is_normalised() {
    let d = doc("<a v=\"1\t2\n3\r4\"/>");
    assert_eq!(attr_values(&d), vec!["1 2 3 4"]);
}

#[test]
fn namespaces_pis_comments_and_bom() {
    let d = doc("\u{feff}<?xml version='1.0' encoding='UTF-8'?><!-- hi --><?pi data?><s:Envelope xmlns:s=\"urn:x\"><s:Body>1</s:Body></s:Envelope><!-- after -->");
    assert_eq!(texts(&d), vec!["1"]);
    assert_eq!(attr_values(&d), vec!["urn:x"]);
}

#[test]
fn text_split_by_child_elements_gives_several_nodes() {
    let d = doc("<a>one<b>two</b>three</a>");
    assert_eq!(texts(&d), vec!["one", "two", "three"]);
    assert_eq!(String::from_utf8_lossy(&d.root_text), "onetwothree");
}

#[test]
fn self_closing_root() {
    let d = doc("<root a=\"1\"/>");
    assert!(d.texts.is_empty());
    assert_eq!(attr_values(&d), vec!["1"]);
}

#[test]
fn malformed_documents_are_errors() {
    let cases = [
        ("", "no root element"),
        ("   ", "no root element"),
        ("just text", "content outside the root element"),
        ("<a>", "premature end of data"),
        ("<a>text", "premature end of data"),
        ("<a></b>", "mismatched end tag"),
        ("<a><b></a></b>", "mismatched end tag"),
        ("<a/><b/>", "extra content after the root element"),
        ("<a/>junk", "content outside the root element"),
        ("<a x=1/>", "attribute value must be quoted"),
        ("<a x=\"1\" x=\"2\"/>", "duplicate attribute"),
        (
            "<a x=\"1\"y=\"2\"/>",
            "whitespace expected before attribute",
        ),
        ("<a x=\"<\"/>", "'<' in attribute value"),
        ("<a x=\"1/>", "unterminated attribute value"),
        ("<a>&foo;</a>", "invalid entity reference"),
        ("<a>& b</a>", "unterminated entity reference"),
        ("<a>&#0;</a>", "invalid entity reference"),
        ("<a>&#xD800;</a>", "invalid entity reference"),
        ("<a><!-- x -- y --></a>", "'--' inside a comment"),
        ("<a><![CDATA[x</a>", "unterminated CDATA section"),
        ("<1a/>", "name expected"),
        ("<a>\u{1}</a>", "control character"),
        ("<a/><?xml version='1.0'?>", "misplaced XML declaration"),
        ("<!DOCTYPE a><!DOCTYPE a><a/>", "misplaced DOCTYPE"),
    ];
    for (input, want) in cases {
        assert_eq!(reason(input), want, "{input:?}");
    }
}

#[test]
fn invalid_utf8_is_an_error_unless_another_encoding_is_declared() {
    let bad = b"<a>\xff</a>";
    assert_eq!(
        xml::parse(bad, &BodyLimits::default()).map_err(|e| e.reason),
        Err("invalid UTF-8")
    );
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xe9</a>";
    let d = xml::parse(latin1, &BodyLimits::default()).expect("latin-1 doc");
    assert_eq!(d.texts, vec![b"caf\xe9".to_vec()]);
}

#[test]
fn external_entities_are_never_resolved() {
    // Classic XXE: the DTD is skipped, the reference stays verbatim.
    let d = doc("<?xml version=\"1.0\"?>\n<!DOCTYPE foo [\n  <!ELEMENT foo ANY >\n  <!ENTITY xxe SYSTEM \"file:///etc/passwd\" >]>\n<foo>&xxe;</foo>");
    assert_eq!(texts(&d), vec!["&xxe;"]);
}

#[test]
fn billion_laughs_is_not_expanded() {
    let mut s = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        s += &format!(
            "<!ENTITY lol{i} \"{}\">",
            format!(
                "&lol{};",
                if i == 1 {
                    String::new()
                } else {
                    (i - 1).to_string()
                }
            )
            .repeat(10)
        );
    }
    s += "]><lolz>&lol9;</lolz>";
    let d = doc(&s);
    assert_eq!(texts(&d), vec!["&lol9;"]);
}

#[test]
fn doctype_with_brackets_and_gt_inside_literals_is_skipped() {
    let d = doc("<!DOCTYPE a [<!ENTITY e \"x>y]\"><!-- ]> -->]><a>ok</a>");
    assert_eq!(texts(&d), vec!["ok"]);
}

#[test]
fn depth_limit() {
    let limits = BodyLimits {
        xml_depth: 3,
        ..BodyLimits::default()
    };
    assert!(xml::parse(b"<a><b><c/></b></a>", &limits).is_ok());
    assert_eq!(
        xml::parse(b"<a><b><c><d/></c></b></a>", &limits).map_err(|e| e.reason),
        Err("maximum depth exceeded")
    );
    assert_eq!(BodyLimits::default().xml_depth, 256);
}

#[test]
fn deep_nesting_bomb_does_not_overflow_the_stack() {
    let limits = BodyLimits {
        xml_depth: usize::MAX,
        ..BodyLimits::default()
    };
    let n = 200_000;
    let s = format!("{}x{}", "<a>".repeat(n), "</a>".repeat(n));
    let d = xml::parse(s.as_bytes(), &limits).expect("well-formed");
    assert_eq!(d.texts, vec![b"x".to_vec()]);
    let unclosed = "<a>".repeat(n);
    assert!(xml::parse(unclosed.as_bytes(), &limits).is_err());
}

#[test]
fn many_attributes_are_linear() {
    let mut s = String::from("<a");
    for i in 0..50_000 {
        s += &format!(" k{i}=\"v\"");
    }
    s += "/>";
    assert_eq!(doc(&s).attributes.len(), 50_000);
}

#[test]
fn process_dispatch_sets_xml_or_the_modsecurity_error() {
    let out = body::process(
        Processor::Xml,
        b"text/xml",
        b"<a b=\"1\">t</a>",
        &BodyLimits::default(),
    );
    assert!(out.error.is_none());
    let x = out.xml.expect("document");
    assert_eq!(x.texts, vec![b"t".to_vec()]);
    assert!(out.args.is_empty());
    let out = body::process(Processor::Xml, b"text/xml", b"<a>", &BodyLimits::default());
    assert!(out.xml.is_none());
    let e = out.error.expect("error");
    assert_eq!(
        e.message,
        "XML parsing error: XML: Failed parsing document."
    );
    assert_eq!(e.processor, Processor::Xml);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let alphabet = b"<>/=\"' ab&;#x![]-?CDATA\n\xc3\xa9\x00";
    let mut s = 0x1234_5678_9ABC_DEF1u64;
    for _ in 0..5000 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let len = (s % 64) as usize;
        let mut t = s;
        let mut body = b"<a>".to_vec();
        body.extend((0..len).map(|_| {
            t = t.wrapping_mul(6364136223846793005).wrapping_add(1);
            alphabet[(t >> 33) as usize % alphabet.len()]
        }));
        let a = xml::parse(&body, &BodyLimits::default());
        assert_eq!(a, xml::parse(&body, &BodyLimits::default()));
    }
}

#[test]
fn one_huge_tag_then_many_small_ones_stays_linear() {
    let mut s = String::from("<r><a");
    for i in 0..50_000 {
        s += &format!(" k{i}=\"v\"");
    }
    s += "/>";
    s += &"<b x=\"1\"/>".repeat(100_000);
    s += "</r>";
    let start = std::time::Instant::now();
    let d = doc(&s);
    assert_eq!(d.attributes.len(), 150_000);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

/// XML 1.0 §3.3.3: a literal line break in an attribute value is a space,
/// a character reference to one is the character itself. CRS 921120 and
/// 932300-932321 rely on seeing the smuggled CR LF.
#[test]
fn attribute_value_normalisation_keeps_character_references() {
    let doc = seclang::body::xml::parse(
        b"<a probe=\"&#13;&#10;MAIL FROM:&lt;a@b.com&gt;\" lit=\"x\r\ny\ttab\"/>",
        &seclang::body::BodyLimits::default(),
    )
    .unwrap();
    assert_eq!(
        doc.attributes,
        vec![
            (b"probe".to_vec(), b"\r\nMAIL FROM:<a@b.com>".to_vec()),
            (b"lit".to_vec(), b"x  y tab".to_vec()),
        ]
    );
}
