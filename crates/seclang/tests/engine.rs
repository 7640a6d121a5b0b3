//! Engine behaviour on small rule sets: actions, variables, chains, flow
//! control, ctl, DetectionOnly and anomaly scoring.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use seclang::{FsLoader, InterventionAction, Ruleset, Transaction, TransactionInput};

fn rules(text: &str) -> Arc<Ruleset> {
    Arc::new(Ruleset::from_str(text, "test.conf", &FsLoader).unwrap_or_else(|e| panic!("{e}")))
}

fn input() -> TransactionInput {
    TransactionInput {
        client_ip: "192.0.2.7".into(),
        client_port: 40000,
        server_ip: "198.51.100.1".into(),
        server_port: 443,
        server_name: "example.org".into(),
        unique_id: "abc123".into(),
        // 2024-02-29T13:14:15Z
        unix_time_micros: 1_709_212_455_000_000,
        env: vec![("HOME".into(), "/root".into())],
    }
}

fn get(rs: &Arc<Ruleset>, uri: &str, headers: &[(&str, &str)]) -> Transaction {
    let mut tx = rs.transaction(input());
    tx.request_line("GET", uri, "HTTP/1.1");
    for (k, v) in headers {
        tx.request_header(k, v);
    }
    tx
}

fn ids(tx: &Transaction) -> Vec<u64> {
    tx.matched_rules().iter().map(|m| m.id).collect()
}

fn tx_var(tx: &Transaction, name: &str) -> String {
    String::from_utf8_lossy(tx.tx(name).unwrap_or(b"<unset>")).into_owned()
}

#[test]
fn deny_with_status_and_expanded_message() {
    let rs = rules(
        r#"SecRule ARGS:q "@contains attack" "id:10,phase:1,deny,status:406,msg:'bad %{MATCHED_VAR_NAME}=%{MATCHED_VAR}',logdata:'ip %{REMOTE_ADDR}',severity:CRITICAL,tag:'t1',tag:'host/%{SERVER_NAME}',ver:'v1',rev:'2',maturity:3,accuracy:4""#,
    );
    let mut tx = get(&rs, "/p?q=an+attack&x=1", &[]);
    let i = tx.process_request_headers().expect("intervention");
    assert_eq!(i.status, 406);
    assert_eq!(i.rule_id, 10);
    assert_eq!(i.action, InterventionAction::Deny);
    assert_eq!(i.message, "bad ARGS:q=an attack");
    let m = &tx.matched_rules()[0];
    assert_eq!(m.logdata, "ip 192.0.2.7");
    assert_eq!(m.severity, Some(2));
    assert_eq!(&m.tags[..], ["t1", "host/example.org"]);
    assert_eq!(
        (m.ver.as_deref(), m.rev.as_deref()),
        (Some("v1"), Some("2"))
    );
    assert_eq!((m.maturity, m.accuracy), (Some(3), Some(4)));
    assert_eq!(m.matched_var_name, "ARGS:q");
    assert_eq!(m.matched_value, b"an attack");
    assert!(m.disruptive && m.log);
    assert_eq!(m.line, 1);
    // Later phases do not run after an intervention.
    assert!(tx.process_request_body().is_none());
    assert_eq!(tx.matched_rules().len(), 1);
}

#[test]
fn detection_only_records_without_intervening() {
    let rs = rules(
        "SecRuleEngine DetectionOnly\n\
         SecRule REQUEST_URI \"@beginsWith /admin\" \"id:1,phase:1,deny,msg:'admin'\"\n\
         SecRule REQUEST_METHOD \"@streq GET\" \"id:2,phase:1,pass,nolog\"",
    );
    let mut tx = get(&rs, "/admin/x", &[]);
    assert!(tx.process_request_headers().is_none());
    assert_eq!(ids(&tx), vec![1, 2]);
    let m = &tx.matched_rules()[0];
    assert!(m.would_disrupt && !m.disruptive);
    assert!(!tx.matched_rules()[1].log);
}

#[test]
fn engine_off_runs_nothing() {
    let rs = rules("SecRuleEngine Off\nSecAction \"id:1,phase:1,deny\"");
    let mut tx = get(&rs, "/", &[]);
    assert!(tx.process_request_headers().is_none());
    assert!(tx.matched_rules().is_empty());
}

#[test]
fn chain_needs_every_link_and_setvar_runs_per_link_match() {
    let rs = rules(
        r#"
SecRule ARGS "@rx ^a" "id:1,phase:1,deny,msg:'chain %{MATCHED_VAR}',setvar:tx.starter=+1,chain"
    SecRule REQUEST_HEADERS:X-Test "@streq yes" "setvar:tx.child=1"
"#,
    );
    // Both args match the first link: setvar runs once per matched value,
    // even though the chain fails (ModSecurity v3).
    let mut tx = get(&rs, "/?a=abc&b=axe", &[("X-Test", "no")]);
    assert!(tx.process_request_headers().is_none());
    assert_eq!(tx_var(&tx, "starter"), "2");
    assert_eq!(tx_var(&tx, "child"), "<unset>");
    assert!(tx.matched_rules().is_empty());

    let mut tx = get(&rs, "/?a=abc", &[("x-test", "yes")]);
    let i = tx.process_request_headers().expect("chain matched");
    // MATCHED_VAR is the last link's match.
    assert_eq!(i.message, "chain yes");
    assert_eq!(
        tx.matched_rules()[0].matched_var_name,
        "REQUEST_HEADERS:x-test"
    );
    assert_eq!(tx_var(&tx, "child"), "1");
}

#[test]
fn skip_and_skip_after() {
    let rs = rules(
        r#"
SecAction "id:1,phase:1,pass,skip:1"
SecAction "id:2,phase:1,pass"
SecAction "id:3,phase:1,pass,skipAfter:END"
SecAction "id:4,phase:1,pass"
SecMarker END
SecAction "id:5,phase:1,pass"
SecAction "id:6,phase:2,pass,skipAfter:NOWHERE"
SecAction "id:7,phase:2,pass"
SecMarker END
SecAction "id:8,phase:2,pass"
"#,
    );
    let mut tx = get(&rs, "/", &[]);
    tx.process_request_headers();
    tx.process_request_body();
    // 2 is skipped, 4 is skipped up to END; in phase 2 the marker is missing
    // so the rest of the phase is skipped.
    assert_eq!(ids(&tx), vec![1, 3, 5, 6]);
}

#[test]
fn setvar_arithmetic_matches_modsecurity() {
    let rs = rules(
        r#"
SecAction "id:1,phase:1,pass,setvar:tx.a=5,setvar:tx.a=+3,setvar:tx.b=+2,setvar:tx.c=-4,setvar:tx.s=abc,setvar:tx.s=+1"
SecAction "id:2,phase:1,pass,setvar:'tx.n_%{tx.a}=x',setvar:tx.one,setvar:TX.Upper=7,setvar:tx.m=12abc,setvar:tx.m=-2"
SecAction "id:3,phase:1,pass,setvar:!tx.s,setvar:'tx.msg=a,b %{tx.upper}'"
SecAction "id:4,phase:1,pass,setvar:tx.big=2147483647,setvar:tx.big=+1"
"#,
    );
    let mut tx = get(&rs, "/", &[]);
    tx.process_request_headers();
    assert_eq!(tx_var(&tx, "a"), "8");
    assert_eq!(tx_var(&tx, "b"), "2");
    assert_eq!(tx_var(&tx, "c"), "-4");
    assert_eq!(tx_var(&tx, "s"), "<unset>");
    assert_eq!(tx_var(&tx, "n_8"), "x");
    assert_eq!(tx_var(&tx, "one"), "1");
    assert_eq!(tx_var(&tx, "upper"), "7");
    assert_eq!(tx_var(&tx, "m"), "10");
    assert_eq!(tx_var(&tx, "msg"), "a,b 7");
    // C++ int arithmetic wraps.
    assert_eq!(tx_var(&tx, "big"), "-2147483648");
}

/// The CRS anomaly-scoring pattern: detection rules add to a score with
/// `block` (= the default `pass`), the evaluation rule compares it with a
/// threshold held in TX through a macro operator argument.
const SCORING: &str = r#"
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecAction "id:900110,phase:1,pass,nolog,setvar:tx.inbound_anomaly_score_threshold=5"
SecAction "id:901100,phase:1,pass,nolog,setvar:tx.critical_anomaly_score=5,setvar:tx.warning_anomaly_score=3"
SecRule ARGS "@rx select" "id:942100,phase:2,block,capture,t:none,t:lowercase,msg:'SQLi',logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}',severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
SecRule REQUEST_HEADERS:User-Agent "@contains scanner" "id:913100,phase:2,block,t:lowercase,severity:WARNING,setvar:'tx.inbound_anomaly_score_pl1=+%{tx.warning_anomaly_score}'"
SecAction "id:949059,phase:2,pass,nolog,setvar:'tx.blocking_inbound_anomaly_score=0'"
SecAction "id:949060,phase:2,pass,nolog,setvar:'tx.blocking_inbound_anomaly_score=+%{tx.inbound_anomaly_score_pl1}'"
SecRule TX:BLOCKING_INBOUND_ANOMALY_SCORE "@ge %{tx.inbound_anomaly_score_threshold}" "id:949110,phase:2,deny,t:none,msg:'Inbound Anomaly Score Exceeded (Total Score: %{TX.BLOCKING_INBOUND_ANOMALY_SCORE})',severity:CRITICAL"
"#;

#[test]
fn anomaly_scoring_blocks_at_threshold() {
    let rs = rules(SCORING);
    let mut tx = get(
        &rs,
        "/?id=1+SELECT+x&b=Select",
        &[("User-Agent", "Scanner/1")],
    );
    assert!(tx.process_request_headers().is_none());
    let i = tx.process_request_body().expect("blocked");
    assert_eq!((i.status, i.rule_id), (403, 949110));
    // Two matched arguments add 5 each (setvar runs per matched value), +3.
    assert_eq!(
        i.message,
        "Inbound Anomaly Score Exceeded (Total Score: 13)"
    );
    assert_eq!(tx_var(&tx, "inbound_anomaly_score_pl1"), "13");
    let sqli = tx.matched_rules().iter().find(|m| m.id == 942100).unwrap();
    assert_eq!(
        sqli.logdata,
        "Matched Data: select found within ARGS:b: select"
    );
    assert!(!sqli.disruptive);
    assert_eq!(tx.highest_severity(), Some(2));

    let mut tx = get(&rs, "/?id=1", &[("User-Agent", "scanner")]);
    tx.process_request_headers();
    assert!(
        tx.process_request_body().is_none(),
        "3 is under the threshold"
    );
    assert_eq!(tx_var(&tx, "blocking_inbound_anomaly_score"), "3");
}

#[test]
fn block_uses_default_disruptive_action() {
    let rs = rules(
        "SecDefaultAction \"phase:1,log,deny,status:418\"\n\
         SecRule ARGS \"@streq x\" \"id:1,phase:1,block\"\n\
         SecRule ARGS \"@streq y\" \"id:2,phase:1,pass\"\n\
         SecRule ARGS \"@streq z\" \"id:3,phase:1\"",
    );
    let mut tx = get(&rs, "/?a=x", &[]);
    assert_eq!(tx.process_request_headers().map(|i| i.status), Some(418));
    let mut tx = get(&rs, "/?a=y", &[]);
    assert!(tx.process_request_headers().is_none());
    // A rule without a disruptive action inherits the default one.
    let mut tx = get(&rs, "/?a=z", &[]);
    assert_eq!(tx.process_request_headers().map(|i| i.rule_id), Some(3));
}

#[test]
fn drop_and_redirect() {
    let rs = rules(
        r#"
SecRule ARGS:a "@streq d" "id:1,phase:1,drop"
SecRule ARGS:a "@streq r" "id:2,phase:1,redirect:'https://%{SERVER_NAME}/blocked',status:301"
"#,
    );
    let mut tx = get(&rs, "/?a=d", &[]);
    assert_eq!(
        tx.process_request_headers().unwrap().action,
        InterventionAction::Drop
    );
    let mut tx = get(&rs, "/?a=r", &[]);
    let i = tx.process_request_headers().unwrap();
    assert_eq!(i.action, InterventionAction::Redirect);
    assert_eq!(i.status, 301);
    assert_eq!(
        i.redirect_url.as_deref(),
        Some("https://example.org/blocked")
    );
}

#[test]
fn allow_scopes() {
    let rs = rules(
        r#"
SecRule ARGS:a "@streq all" "id:1,phase:1,allow"
SecRule ARGS:a "@streq phase" "id:2,phase:1,allow:phase"
SecRule ARGS:a "@streq request" "id:3,phase:1,allow:request"
SecAction "id:4,phase:1,pass"
SecAction "id:5,phase:2,pass"
SecAction "id:6,phase:3,pass"
SecAction "id:7,phase:5,pass"
"#,
    );
    let run = |uri: &str| {
        let mut tx = get(&rs, uri, &[]);
        tx.process_request_headers();
        tx.process_request_body();
        tx.response_status(200, "HTTP/1.1");
        tx.process_response_headers();
        tx.process_response_body();
        tx.process_logging();
        ids(&tx)
    };
    assert_eq!(run("/?a=all"), vec![1, 7]);
    assert_eq!(run("/?a=phase"), vec![2, 5, 6, 7]);
    assert_eq!(run("/?a=request"), vec![3, 6, 7]);
}

#[test]
fn logging_phase_runs_after_intervention() {
    let rs = rules("SecAction \"id:1,phase:1,deny\"\nSecAction \"id:2,phase:3,pass\"\nSecAction \"id:3,phase:5,pass\"");
    let mut tx = get(&rs, "/", &[]);
    assert!(tx.process_request_headers().is_some());
    assert!(tx.process_response_headers().is_none());
    tx.process_logging();
    assert_eq!(ids(&tx), vec![1, 3]);
}

#[test]
fn ctl_actions() {
    let rs = rules(
        r#"
SecRule REQUEST_FILENAME "@streq /login" "id:1,phase:1,pass,nolog,ctl:ruleRemoveById=10,ctl:ruleRemoveTargetById=11;ARGS:password,ctl:ruleRemoveByTag=noisy,ctl:ruleRemoveTargetByTag=attack-sqli;ARGS:user"
SecRule ARGS "@contains x" "id:10,phase:2,deny"
SecRule ARGS "@contains y" "id:11,phase:2,pass"
SecRule ARGS "@contains z" "id:12,phase:2,pass,tag:'noisy'"
SecRule ARGS "@contains w" "id:13,phase:2,pass,tag:'attack-sqli'"
SecRule REQUEST_FILENAME "@streq /off" "id:20,phase:1,pass,ctl:ruleEngine=Off"
SecRule REQUEST_FILENAME "@streq /off" "id:21,phase:1,deny"
"#,
    );
    let mut tx = get(&rs, "/login?password=xyzw&user=w&other=y", &[]);
    assert!(tx.process_request_headers().is_none());
    assert!(tx.process_request_body().is_none(), "rule 10 removed");
    let m: Vec<_> = tx
        .matched_rules()
        .iter()
        .map(|m| (m.id, m.matched_var_name.clone()))
        .collect();
    // 13 still sees ARGS:password but no longer ARGS:user (the last match).
    assert_eq!(
        m,
        vec![
            (1, "REQUEST_FILENAME".to_string()),
            (11, "ARGS:other".to_string()),
            (13, "ARGS:password".to_string())
        ]
    );

    let mut tx = get(&rs, "/off", &[]);
    assert!(tx.process_request_headers().is_none(), "engine turned off");
    assert_eq!(ids(&tx), vec![20]);
}

#[test]
fn load_time_removals_and_updates() {
    let rs = rules(
        r#"
SecRule ARGS "@contains x" "id:1,phase:1,deny,tag:'a'"
SecRule ARGS "@contains x" "id:2,phase:1,deny,tag:'b',msg:'remove me'"
SecRule ARGS "@contains x" "id:3,phase:1,deny,msg:'three'"
SecRule ARGS "@contains x" "id:4,phase:1,deny,tag:'c'"
SecRule ARGS "@contains x" "id:5,phase:1,pass,msg:'old'"
SecRuleRemoveById 1
SecRuleRemoveByMsg "remove me"
SecRuleUpdateTargetById 3 "!ARGS:skip"
SecRuleRemoveByTag "c"
SecRuleUpdateActionById 5 "deny,status:409,msg:'new'"
"#,
    );
    assert_eq!(rs.rule_count(), 2);
    let mut tx = get(&rs, "/?skip=x", &[]);
    let i = tx.process_request_headers().expect("rule 5 denies now");
    assert_eq!((i.rule_id, i.status, i.message.as_str()), (5, 409, "new"));
    let mut tx = get(&rs, "/?other=x", &[]);
    assert_eq!(tx.process_request_headers().map(|i| i.rule_id), Some(3));
}

#[test]
fn request_variables() {
    let rs = rules(
        r#"
SecAction "id:1,phase:1,pass,setvar:'tx.v=%{REQUEST_METHOD}|%{REQUEST_URI}|%{REQUEST_URI_RAW}|%{REQUEST_FILENAME}|%{REQUEST_BASENAME}|%{QUERY_STRING}|%{REQUEST_PROTOCOL}|%{REQUEST_LINE}'"
SecAction "id:2,phase:1,pass,setvar:'tx.w=%{REMOTE_ADDR}:%{REMOTE_PORT} %{SERVER_ADDR}:%{SERVER_PORT} %{SERVER_NAME} %{UNIQUE_ID} %{ENV.HOME}'"
SecAction "id:3,phase:1,pass,setvar:'tx.t=%{TIME} %{TIME_YEAR}-%{TIME_MON}-%{TIME_DAY} %{TIME_WDAY} %{TIME_EPOCH} %{TIME_HOUR}:%{TIME_MIN}:%{TIME_SEC}'"
SecAction "id:4,phase:1,pass,setvar:'tx.h=%{REQUEST_HEADERS.host} %{request_cookies.sid} %{ARGS.b} %{ARGS_COMBINED_SIZE}'"
SecRule &ARGS "@eq 3" "id:5,phase:1,pass"
SecRule &REQUEST_HEADERS:X-Missing "@eq 0" "id:6,phase:1,pass"
SecRule REQUEST_HEADERS_NAMES "@streq Cookie" "id:7,phase:1,pass"
SecRule ARGS_NAMES "@rx ^c$" "id:8,phase:1,pass"
SecRule REQUEST_COOKIES:/^s/ "@streq 42" "id:9,phase:1,pass"
SecRule ARGS|!ARGS:a "@rx ^1$" "id:10,phase:1,pass"
SecRule ARGS_GET:A "@rx ^1$" "id:11,phase:1,pass"
SecRule REQUEST_COOKIES_NAMES "@streq theme" "id:12,phase:1,pass"
"#,
    );
    let mut tx = get(
        &rs,
        "http://example.org/dir/a%20b.php?a=1&b=x+y%21&c=#frag",
        &[("Host", "example.org"), ("Cookie", "sid=42; theme=dark")],
    );
    tx.process_request_headers();
    assert_eq!(
        tx_var(&tx, "v"),
        "GET|/dir/a b.php?a=1&b=x+y!&c=|http://example.org/dir/a%20b.php?a=1&b=x+y%21&c=#frag|http://example.org/dir/a b.php|a b.php|a=1&b=x+y%21&c=|HTTP/1.1|GET http://example.org/dir/a%20b.php?a=1&b=x+y%21&c=#frag HTTP/1.1"
    );
    assert_eq!(
        tx_var(&tx, "w"),
        "192.0.2.7:40000 198.51.100.1:443 example.org abc123 /root"
    );
    assert_eq!(tx_var(&tx, "t"), "13:14:15 2024-1-29 4 1709212455 13:14:15");
    // ARGS_COMBINED_SIZE: names and values: a1 + bx y! + c = 2 + 5 + 1.
    assert_eq!(tx_var(&tx, "h"), "example.org 42 x y! 8");
    // Rule 10 excludes ARGS:a, so only 11 matches "1" through ARGS_GET:A.
    assert_eq!(ids(&tx), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
}

#[test]
fn capture_feeds_tx_and_chain() {
    let rs = rules(
        r#"
SecRule ARGS:q "@rx (\d+)-(\d+)" "id:1,phase:1,deny,capture,msg:'%{TX.0} %{TX.1} %{TX.2}',chain"
    SecRule TX:2 "@eq 7" "t:none"
"#,
    );
    let mut tx = get(&rs, "/?q=ab12-7", &[]);
    assert_eq!(tx.process_request_headers().unwrap().message, "12-7 12 7");
    let mut tx = get(&rs, "/?q=12-8", &[]);
    assert!(tx.process_request_headers().is_none());
}

#[test]
fn multi_match_tests_every_transformation_step() {
    let rs = rules(
        r#"
SecRule ARGS "@streq ABC" "id:1,phase:1,pass,t:lowercase,multiMatch"
SecRule ARGS "@streq ABC" "id:2,phase:1,pass,t:lowercase"
SecRule ARGS "@streq abc" "id:3,phase:1,pass,t:lowercase,setvar:tx.n=+1"
SecRule ARGS "@streq abc" "id:4,phase:1,pass,t:lowercase,setvar:tx.m=+1"
"#,
    );
    let mut tx = get(&rs, "/?a=ABC&b=abc", &[]);
    tx.process_request_headers();
    assert_eq!(ids(&tx), vec![1, 3, 4]);
    // Rules 3 and 4 share the chain: results come from the cache and agree.
    assert_eq!(
        (tx_var(&tx, "n"), tx_var(&tx, "m")),
        ("2".into(), "2".into())
    );
}

#[test]
fn default_transformations_apply_unless_t_none() {
    let rs = rules(
        r#"
SecDefaultAction "phase:1,pass,t:lowercase"
SecRule ARGS "@streq abc" "id:1,phase:1"
SecRule ARGS "@streq abc" "id:2,phase:1,t:none"
"#,
    );
    let mut tx = get(&rs, "/?a=ABC", &[]);
    tx.process_request_headers();
    assert_eq!(ids(&tx), vec![1]);
}

#[test]
fn urlencoded_body_and_limits() {
    let rs = rules(
        r#"
SecRequestBodyAccess On
SecRequestBodyLimit 20
SecRequestBodyLimitAction Reject
SecRule ARGS_POST:user "@streq bob" "id:1,phase:2,pass,setvar:'tx.proc=%{REQBODY_PROCESSOR} %{REQUEST_BODY_LENGTH} %{REQBODY_ERROR}'"
SecRule REQUEST_BODY "@contains bob" "id:2,phase:2,pass"
SecRule ARGS:user "@streq bob" "id:3,phase:2,pass"
"#,
    );
    let mut tx = get(
        &rs,
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert!(tx.process_request_headers().is_none());
    assert!(tx.append_request_body(b"user=bob&").is_none());
    assert!(tx.append_request_body(b"x=1").is_none());
    assert!(tx.process_request_body().is_none());
    assert_eq!(ids(&tx), vec![1, 2, 3]);
    assert_eq!(tx_var(&tx, "proc"), "URLENCODED 12 0");

    let mut tx = get(
        &rs,
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    tx.process_request_headers();
    let i = tx.append_request_body(&[b'a'; 21]).expect("over the limit");
    assert_eq!(i.status, 413);

    let partial = rules(
        "SecRequestBodyLimit 8\nSecRequestBodyLimitAction ProcessPartial\n\
         SecRule REQUEST_BODY \"@streq user=bob\" \"id:1,phase:2,deny\"",
    );
    let mut tx = get(&partial, "/", &[("Content-Type", "text/plain")]);
    tx.process_request_headers();
    assert!(tx.append_request_body(b"user=bob&more=data").is_none());
    assert_eq!(tx.process_request_body().map(|i| i.rule_id), Some(1));
}

#[test]
fn response_phases() {
    let rs = rules(
        r#"
SecResponseBodyAccess On
SecRule RESPONSE_STATUS "@streq 500" "id:1,phase:3,pass"
SecRule RESPONSE_HEADERS:content-type "@contains html" "id:2,phase:3,pass"
SecRule RESPONSE_BODY "@contains stack trace" "id:3,phase:4,deny,status:502"
"#,
    );
    let mut tx = get(&rs, "/", &[]);
    tx.process_request_headers();
    tx.process_request_body();
    tx.response_status(500, "HTTP/1.1");
    tx.response_header("Content-Type", "text/html; charset=utf-8");
    assert!(tx.process_response_headers().is_none());
    assert!(tx.wants_response_body());
    tx.append_response_body(b"<p>a stack ");
    tx.append_response_body(b"trace</p>");
    assert_eq!(tx.process_response_body().map(|i| i.status), Some(502));
    assert_eq!(ids(&tx), vec![1, 2, 3]);
}

#[test]
fn tx_regex_selector_and_count() {
    let rs = rules(
        r#"
SecAction "id:1,phase:1,pass,setvar:tx.header_name_1=/x-a/,setvar:tx.header_name_2=/x-b/,setvar:tx.other=1"
SecRule &TX:/^header_name_/ "@eq 2" "id:2,phase:1,pass"
SecRule TX:/^HEADER_NAME_/ "@contains /x-b/" "id:3,phase:1,pass,msg:'%{MATCHED_VAR_NAME}'"
SecRule MATCHED_VARS_NAMES "@rx ." "id:4,phase:1,pass"
"#,
    );
    let mut tx = get(&rs, "/", &[]);
    tx.process_request_headers();
    assert_eq!(ids(&tx), vec![1, 2, 3]);
    assert_eq!(tx.matched_rules()[2].message, "TX:header_name_2");
}

#[test]
fn transactions_share_a_ruleset_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<seclang::Ruleset>();
    let rs = rules(SCORING);
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let rs = rs.clone();
            std::thread::spawn(move || {
                let uri = if n % 2 == 0 {
                    "/?q=select+a"
                } else {
                    "/?q=fine"
                };
                let mut tx = get(&rs, uri, &[]);
                tx.process_request_headers();
                tx.process_request_body().is_some()
            })
        })
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(handles, vec![true, false, true, false]);
}

fn post(rs: &Arc<Ruleset>, content_type: &str, body: &[u8]) -> Transaction {
    let mut tx = get(rs, "/submit?g=1", &[("Content-Type", content_type)]);
    assert!(tx.process_request_headers().is_none());
    assert!(tx.append_request_body(body).is_none());
    tx
}

#[test]
fn multipart_body_variables() {
    let rs = rules(
        r#"
SecRule FILES "@streq evil.php" "id:1,phase:2,pass,msg:'%{MATCHED_VAR_NAME}'"
SecRule FILES_NAMES "@streq upload" "id:2,phase:2,pass"
SecRule FILES_SIZES:upload "@eq 5" "id:3,phase:2,pass"
SecRule ARGS_POST:note "@streq hi" "id:4,phase:2,pass"
SecRule MULTIPART_STRICT_ERROR "@eq 0" "id:5,phase:2,pass"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:6,phase:2,pass"
SecRule FILES_COMBINED_SIZE "@eq 5" "id:7,phase:2,pass"
SecRule MULTIPART_PART_HEADERS:upload "@rx ^content-type: image/png$" "id:8,phase:2,pass,t:lowercase"
SecRule &ARGS "@eq 2" "id:9,phase:2,pass"
"#,
    );
    let body = b"--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--B\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"evil.php\"\r\nContent-Type: image/png\r\n\r\nhello\r\n--B--\r\n";
    let mut tx = post(&rs, "multipart/form-data; boundary=B", body);
    assert!(tx.process_request_body().is_none());
    assert_eq!(ids(&tx), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(tx.matched_rules()[0].message, "FILES:upload");

    // A broken body is data: REQBODY_ERROR and MULTIPART_STRICT_ERROR are set.
    let strict = rules(
        r#"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,deny,status:400,msg:'%{REQBODY_ERROR_MSG}'"
"#,
    );
    let mut tx = post(
        &strict,
        "multipart/form-data; boundary=B",
        b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
    );
    let i = tx.process_request_body().expect("reqbody error");
    assert_eq!(i.status, 400);
    assert!(
        i.message.starts_with("Multipart parsing error"),
        "{}",
        i.message
    );
}

#[test]
fn json_and_xml_via_ctl() {
    let rs = rules(
        r#"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:200001,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS:json.user.name "@streq bob" "id:1,phase:2,pass"
SecRule ARGS_NAMES "@streq json.list.1" "id:2,phase:2,pass"
SecRule XML:/* "@contains secret text" "id:3,phase:2,pass"
SecRule XML://@* "@streq attr-value" "id:4,phase:2,pass"
SecRule REQBODY_PROCESSOR "@rx ." "id:5,phase:2,pass,msg:'%{REQBODY_PROCESSOR}'"
"#,
    );
    let mut tx = post(
        &rs,
        "application/json",
        br#"{"user":{"name":"bob"},"list":[1,2]}"#,
    );
    assert!(tx.process_request_body().is_none());
    assert_eq!(ids(&tx), vec![200001, 1, 2, 5]);
    assert_eq!(tx.matched_rules()[3].message, "JSON");

    let mut tx = post(
        &rs,
        "text/xml",
        b"<a k=\"attr-value\"><b>secret</b> <c>text</c></a>",
    );
    assert!(tx.process_request_body().is_none());
    assert_eq!(ids(&tx), vec![200000, 3, 4, 5]);
}

#[test]
fn unsupported_xpath_is_refused() {
    let e =
        Ruleset::from_str("SecRule XML:/a/b \"@rx x\" \"id:1\"", "x.conf", &FsLoader).unwrap_err();
    assert!(e.to_string().contains("XML"), "{e}");
}

#[test]
fn hostile_input_is_bounded_and_inspected() {
    let rs = rules(
        r#"
SecArgumentsLimit 100
SecRule REQUEST_HEADERS:X-Bin "@rx \x00\xff" "id:1,phase:1,pass"
SecRule &ARGS "@eq 100" "id:2,phase:1,pass"
SecRule REQBODY_ERROR "@eq 1" "id:3,phase:2,pass,msg:'%{REQBODY_ERROR_MSG}'"
SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:4,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
"#,
    );
    let query: String = (0..5000).map(|i| format!("a{i}=%00%ff&")).collect();
    let mut tx = rs.transaction(input());
    tx.request_line("POST", format!("/?{query}"), "HTTP/1.1");
    tx.request_header("X-Bin", b"\x00\xff".as_slice());
    tx.request_header("Content-Type", "application/json");
    assert!(tx.process_request_headers().is_none());
    let deep = "[".repeat(100_000);
    assert!(tx.append_request_body(deep.as_bytes()).is_none());
    assert!(tx.process_request_body().is_none());
    assert_eq!(ids(&tx), vec![1, 2, 4, 3]);
    assert!(tx.matched_rules()[3]
        .message
        .starts_with("JSON parsing error"));
}

#[test]
fn modsecurity_variable_presence_rules() {
    let rs = rules(
        r#"
SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:200000,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:1,phase:1,pass"
SecRule REQUEST_BASENAME "!@endsWith .pdf" "id:2,phase:1,pass"
SecRule QUERY_STRING "@streq " "id:3,phase:1,pass"
SecRule REQUEST_BODY "@rx ." "id:4,phase:2,pass"
"#,
    );
    // Scalars always have a (possibly empty) value; the body processor is
    // known from Content-Type in phase 1.
    let mut tx = get(
        &rs,
        "/",
        &[("Content-Type", "multipart/form-data; boundary=x")],
    );
    tx.process_request_headers();
    assert_eq!(ids(&tx), vec![1, 2, 3]);

    // REQUEST_BODY is filled without a processor or with URLENCODED only.
    let mut tx = post(&rs, "application/xml", b"<a>x</a>");
    tx.process_request_body();
    assert!(!ids(&tx).contains(&4), "{:?}", ids(&tx));
    let mut tx = post(&rs, "application/x-www-form-urlencoded", b"a=1");
    tx.process_request_body();
    assert!(ids(&tx).contains(&4));
    let mut tx = post(&rs, "text/plain", b"hello");
    tx.process_request_body();
    assert!(ids(&tx).contains(&4));
}

#[test]
fn reset_starts_a_clean_transaction() {
    let rs = rules(SCORING);
    let mut tx = get(&rs, "/?q=select+1", &[("User-Agent", "scanner")]);
    tx.process_request_headers();
    assert!(tx.process_request_body().is_some());
    tx.reset(input());
    assert!(tx.matched_rules().is_empty() && tx.intervention().is_none());
    assert_eq!(tx_var(&tx, "inbound_anomaly_score_pl1"), "<unset>");
    tx.request_line("GET", "/?q=fine", "HTTP/1.1");
    tx.process_request_headers();
    assert!(tx.process_request_body().is_none());
    assert_eq!(tx_var(&tx, "blocking_inbound_anomaly_score"), "0");
    assert_eq!(tx.variable("ARGS", Some("q")), Some(b"fine".to_vec()));
}

#[test]
fn logging_runs_phase_4_after_response_headers() {
    let rs = rules(
        "SecRule RESPONSE_HEADERS:X-Leak \"@rx .\" \"id:1,phase:4,pass\"\nSecAction \"id:2,phase:5,pass\"",
    );
    let mut tx = get(&rs, "/", &[]);
    tx.process_request_headers();
    tx.process_request_body();
    tx.response_status(200, "HTTP/1.1");
    tx.response_header("X-Leak", "secret");
    tx.process_response_headers();
    assert!(!tx.wants_response_body());
    tx.process_logging();
    assert_eq!(ids(&tx), vec![1, 2]);
}

#[test]
fn ctl_body_processor_is_visible_at_once() {
    // CRS 901340 forces REQUEST_BODY when no processor is known; after
    // rule 200000 picked XML it must not.
    let rs = rules(
        r#"
SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:200000,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "id:901340,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"
SecRule REQUEST_BODY "@contains clonetransformer" "id:944120,phase:2,deny"
"#,
    );
    let mut tx = post(&rs, "application/xml", b"<a><clonetransformer/>v</a>");
    assert!(tx.process_request_body().is_none(), "{:?}", ids(&tx));
    assert_eq!(ids(&tx), vec![200000]);
    let mut tx = post(&rs, "application/octet-stream", b"clonetransformer");
    assert_eq!(tx.process_request_body().map(|i| i.rule_id), Some(944120));
}

/// A raw invalid UTF-8 byte in the request target reaches the rules as
/// sent: a lossy conversion would turn it into valid U+FFFD and hide it
/// from @validateUtf8Encoding (an evasion of CRS 920250-style checks).
#[test]
fn raw_request_target_bytes_are_inspected_as_sent() {
    let rs =
        rules(r#"SecRule REQUEST_URI_RAW "@validateUtf8Encoding" "id:30,phase:1,deny,status:400""#);
    let mut tx = rs.transaction(input());
    tx.request_line(&b"GET"[..], &b"/caf\xe9?x=1"[..], &b"HTTP/1.1"[..]);
    let i = tx
        .process_request_headers()
        .expect("invalid UTF-8 must be seen");
    assert_eq!(i.rule_id, 30);
    assert_eq!(
        tx.variable("REQUEST_FILENAME", None).as_deref(),
        Some(&b"/caf\xe9"[..])
    );
    assert_eq!(
        tx.variable("QUERY_STRING", None).as_deref(),
        Some(&b"x=1"[..])
    );
}

/// `initcol` + `setvar` + `expirevar` keep per-client state across
/// transactions through the caller's store: a simple rate rule blocks the
/// third request from one address within a minute, not another address,
/// and forgets after the variable expires.
#[test]
fn persistent_ip_collection_counts_across_transactions_and_expires() {
    let rs = rules(
        r#"SecAction "id:1,phase:1,nolog,pass,initcol:ip=%{REMOTE_ADDR},setvar:ip.hits=+1,expirevar:ip.hits=60"
SecRule IP:hits "@gt 2" "id:2,phase:1,deny,status:429,msg:'%{ip.hits} requests'""#,
    );
    let store: Arc<dyn seclang::CollectionStore> = Arc::new(seclang::MemoryStore::new());
    let request = |ip: &str, at_secs: i64| {
        let mut tx = rs.transaction(TransactionInput {
            client_ip: ip.into(),
            unix_time_micros: at_secs * 1_000_000,
            ..input()
        });
        tx.set_store(store.clone());
        tx.request_line("GET", "/", "HTTP/1.1");
        let decided = tx.process_request_headers().map(|i| (i.status, i.message));
        tx.process_logging();
        decided
    };
    let t0 = 1_700_000_000;
    assert_eq!(request("192.0.2.1", t0), None);
    assert_eq!(request("192.0.2.1", t0 + 1), None);
    assert_eq!(
        request("192.0.2.9", t0 + 1),
        None,
        "another client has its own record"
    );
    assert_eq!(
        request("192.0.2.1", t0 + 2),
        Some((429, "3 requests".into()))
    );
    // 60 s after the last write the counter has expired: back to 1.
    assert_eq!(request("192.0.2.1", t0 + 63), None);
}

/// Without a store, collections live for one transaction only.
#[test]
fn without_a_store_collections_do_not_persist() {
    let rs = rules(
        r#"SecAction "id:1,phase:1,nolog,pass,initcol:ip=%{REMOTE_ADDR},setvar:ip.hits=+1"
SecRule IP:hits "@gt 1" "id:2,phase:1,deny,status:429""#,
    );
    for _ in 0..3 {
        let mut tx = get(&rs, "/", &[]);
        assert!(tx.process_request_headers().is_none());
        tx.process_logging();
    }
}

/// Rules that only read `TX` have their outcome computed at load time (with
/// the prefilters on); whatever earlier rules did to the `TX` values they
/// read, the answers must be those of plain evaluation (prefilters off).
#[test]
fn load_time_outcomes_agree_with_evaluation() {
    let text = r#"
SecRule REQUEST_HEADERS:X-Limit "@rx ^(\d+)$" "id:1,phase:1,pass,nolog,capture,setvar:tx.limit=%{tx.1}"
SecRule &TX:limit "@eq 0" "id:2,phase:1,pass,nolog,setvar:tx.limit=5"
SecRule TX:limit "@lt 10" "id:3,phase:1,pass,log,msg:'small limit %{tx.limit}',severity:WARNING,capture,setvar:tx.small=+1"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.1=fixed,setvar:!tx.gone"
SecRule REQUEST_HEADERS:X-Gone "@rx ." "id:5,phase:1,pass,nolog,setvar:tx.gone=1"
SecRule TX:small "@eq 1" "id:6,phase:2,pass,log,msg:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}',skipAfter:END"
SecRule TX:limit "@ge 0" "id:7,phase:2,deny,status:403"
SecMarker END
SecRule TX:gone "@eq 1" "id:8,phase:2,pass,log,msg:'gone'"
"#;
    let on = Arc::new(
        seclang::RulesetBuilder::new(&FsLoader)
            .add_str(text, "memo.conf")
            .unwrap()
            .build()
            .unwrap(),
    );
    let off = Arc::new(
        seclang::RulesetBuilder::new(&FsLoader)
            .prefilters(false)
            .add_str(text, "memo.conf")
            .unwrap()
            .build()
            .unwrap(),
    );
    let cases: [&[(&str, &str)]; 4] = [
        &[],
        &[("X-Limit", "3")],
        &[("X-Limit", "50")],
        &[("X-Limit", "7"), ("X-Gone", "y")],
    ];
    for headers in cases {
        let run = |rs: &Arc<Ruleset>| {
            let mut tx = get(rs, "/", headers);
            let i = tx.process_request_body();
            let vars: Vec<(Vec<u8>, Vec<u8>)> = tx
                .tx_vars()
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            let matched: Vec<(u64, String, String, Vec<u8>)> = tx
                .matched_rules()
                .iter()
                .map(|m| {
                    (
                        m.id,
                        m.message.clone(),
                        m.matched_var_name.clone(),
                        m.matched_value.clone(),
                    )
                })
                .collect();
            (
                i.map(|i| (i.status, i.rule_id)),
                vars,
                matched,
                tx.highest_severity(),
            )
        };
        let (a, b) = (run(&on), run(&off));
        assert_eq!(a, b, "headers {headers:?}");
    }
    // The cases do exercise both outcomes of the shortcut's check.
    let mut tx = get(&on, "/", &[]);
    tx.process_request_body();
    assert_eq!(ids(&tx), [2, 3, 4, 6]);
    assert_eq!(tx_var(&tx, "1"), "fixed");
    let mut tx = get(&on, "/", &[("X-Limit", "50")]);
    let i = tx.process_request_body().expect("denied by 7");
    assert_eq!((i.status, i.rule_id), (403, 7));
    assert_eq!(ids(&tx), [1, 4, 7]);
}
