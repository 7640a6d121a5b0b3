//! Parser behaviour: directives, quoting, continuations, Include, and
//! errors that name the problem with file, line and rule id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use seclang::parser::ast::{Directive, LimitAction};
use seclang::parser::parse_str;
use seclang::{EngineMode, Error, FileLoader, Ruleset};

/// Files held in memory; globs support `*` in the last component.
#[derive(Default)]
struct MemLoader(BTreeMap<PathBuf, String>);

impl MemLoader {
    fn with(files: &[(&str, &str)]) -> Self {
        MemLoader(
            files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        )
    }
}

impl FileLoader for MemLoader {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .map(|t| t.clone().into_bytes())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn glob(&self, pattern: &Path) -> io::Result<Vec<PathBuf>> {
        let text = pattern.to_string_lossy();
        match text.split_once('*') {
            None => Ok(vec![pattern.to_path_buf()]),
            Some((pre, post)) => Ok(self
                .0
                .keys()
                .filter(|k| {
                    let k = k.to_string_lossy();
                    k.starts_with(pre) && k.ends_with(post) && !k[pre.len()..].contains('/')
                })
                .cloned()
                .collect()),
        }
    }
}

fn directives(text: &str) -> Vec<Directive> {
    parse_str(text, Path::new("t.conf"), &MemLoader::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|s| s.directive)
        .collect()
}

fn error(text: &str) -> Error {
    Ruleset::from_str(text, "bad.conf", &MemLoader::default()).unwrap_err()
}

#[test]
fn every_setting_directive() {
    let d = directives(
        r#"
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecRequestBodyLimit 1000
SecRequestBodyNoFilesLimit 500
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyLimit 2000
SecResponseBodyLimitAction Reject
SecResponseBodyMimeType text/plain "text/html application/json"
SecArgumentsLimit 50
SecRequestBodyJsonDepthLimit 32
SecComponentSignature "OWASP_CRS/4.0"
SecCollectionTimeout 600
SecAuditEngine RelevantOnly
SecAuditLogParts ABIJDEFHZ
SecAuditLog /var/log/audit.log
SecAuditLogType Serial
SecDebugLog /tmp/debug.log
SecDebugLogLevel 3
SecTmpDir /tmp
SecDataDir /tmp
SecUploadDir /tmp
"#,
    );
    assert_eq!(d.len(), 22);
    assert!(matches!(
        d[0],
        Directive::RuleEngine(EngineMode::DetectionOnly)
    ));
    assert!(matches!(
        d[5],
        Directive::RequestBodyLimitAction(LimitAction::ProcessPartial)
    ));
    match &d[8] {
        Directive::ResponseBodyMimeType(t) => {
            assert_eq!(t, &["text/plain", "text/html", "application/json"])
        }
        other => panic!("{other:?}"),
    }

    let rs = Ruleset::from_str(
        "SecRuleEngine DetectionOnly\nSecRequestBodyLimit 1000\nSecArgumentsLimit 50\nSecAuditLogParts ABZ\nSecComponentSignature \"x/1\"",
        "t.conf",
        &MemLoader::default(),
    )
    .unwrap();
    let c = rs.config();
    assert_eq!(c.engine, EngineMode::DetectionOnly);
    assert_eq!((c.request_body_limit, c.arguments_limit), (1000, 50));
    assert_eq!(
        c.setting("secauditlogparts"),
        Some(&["ABZ".to_string()][..])
    );
    assert_eq!(c.component_signatures, vec!["x/1".to_string()]);
}

#[test]
fn rule_directives_and_quoting() {
    let d = directives(
        "SecRule REQUEST_HEADERS:'User-Agent'|!ARGS:x \"!@rx a\\\"b\\\\d\" \\\n  \"id:1,\\\n   phase:2,msg:'it\\'s, ok',t:none,t:lowercase,ctl:ruleRemoveById=5-9,setvar:'tx.x=+%{tx.y}'\"\n\
         SecAction 'id:2,pass'\n\
         SecMarker \"END-HOST\"\n\
         SecRuleRemoveById 1 5-9 12\n\
         SecRuleRemoveByTag attack\n\
         SecRuleRemoveByMsg \"^bad\"\n\
         SecRuleUpdateTargetById 1 \"!ARGS:foo\"\n\
         SecRuleUpdateTargetByTag attack-sqli \"!ARGS:bar\"\n\
         SecRuleUpdateActionById 1 \"deny,status:403\"\n\
         SecDefaultAction \"phase:2,log,auditlog,pass\"",
    );
    assert_eq!(d.len(), 10);
    let Directive::Rule(r) = &d[0] else { panic!() };
    assert_eq!(r.targets.len(), 2);
    assert!(r.operator.negated);
    assert_eq!(r.operator.argument, "a\"b\\\\d");
    assert_eq!(r.actions.len(), 7);
    assert!(matches!(&d[2], Directive::Marker(m) if m == "END-HOST"));
    assert!(matches!(&d[3], Directive::RuleRemoveById(r) if r == &[(1, 1), (5, 9), (12, 12)]));
}

#[test]
fn errors_name_the_problem_and_position() {
    let text = "SecRuleEngine On\n\nSecFrobnicate On\n";
    match error(text) {
        Error::Parse {
            file,
            line,
            message,
        } => {
            assert_eq!(file, PathBuf::from("bad.conf"));
            assert_eq!(line, 3);
            assert!(message.contains("SecFrobnicate"), "{message}");
        }
        e => panic!("{e:?}"),
    }
    let e = error("# c\nSecRule ARGS \"@rx a\" \\\n  \"id:77,phase:2,frob\"").to_string();
    assert!(
        e.contains("bad.conf:2") && e.contains("77") && e.contains("frob"),
        "{e}"
    );
    let e = error("SecRule NOT_A_VAR \"@rx a\" \"id:5,phase:1\"").to_string();
    assert!(e.contains("NOT_A_VAR") && e.contains("rule 5"), "{e}");
    let e = error("SecRule ARGS \"@nope a\" \"id:6,phase:1\"").to_string();
    assert!(e.contains("@nope") && e.contains("rule 6"), "{e}");
    let e = error("SecRule ARGS \"@rx (\" \"id:8,phase:1\"").to_string();
    assert!(e.contains("rule 8"), "{e}");
    let e = error("SecRule ARGS \"@rx a\" \"phase:1\"").to_string();
    assert!(e.contains("no id"), "{e}");
    let e = error("SecAction \"id:1\"\nSecAction \"id:1\"").to_string();
    assert!(e.contains("bad.conf:2") && e.contains("duplicate"), "{e}");
    let e = error("SecRule ARGS \"@rx a\" \"id:9,chain\"").to_string();
    assert!(e.contains("chain"), "{e}");
    let e = error("SecRule ARGS \"@rx a\" \"id:9,chain\"\nSecRule ARGS \"@rx b\" \"id:10\"")
        .to_string();
    assert!(e.contains("first rule of a chain"), "{e}");
    let e = error("SecDefaultAction \"phase:2,log\"").to_string();
    assert!(e.contains("disruptive"), "{e}");
    let e = error("SecRule ARGS \"@rx a\" \"id:3,t:frob\"").to_string();
    assert!(e.contains("t:frob"), "{e}");
    let e = error("SecRule ARGS \"@rx a\" \"id:3,ctl:frob=1\"").to_string();
    assert!(e.contains("frob"), "{e}");
    let e = error("SecRule ARGS \"@rx a").to_string();
    assert!(e.contains("unterminated"), "{e}");
}

#[test]
fn include_relative_globs_and_depth() {
    let loader = MemLoader::with(&[
        (
            "/etc/waf/main.conf",
            "SecRuleEngine DetectionOnly\nInclude rules/*.conf\n",
        ),
        (
            "/etc/waf/rules/a.conf",
            "SecAction \"id:1,phase:1,pass\"\nInclude ../extra/x.conf",
        ),
        ("/etc/waf/rules/b.conf", "SecAction \"id:2,phase:1,pass\""),
        ("/etc/waf/extra/x.conf", "SecAction \"id:3,phase:2,pass\""),
        ("/etc/waf/loop.conf", "Include loop.conf"),
        ("/etc/waf/broken.conf", "SecAction \"id:1\"\n\nSecBogus 1"),
        ("/etc/waf/inc-broken.conf", "Include broken.conf"),
    ]);
    let rs = Ruleset::from_file("/etc/waf/main.conf", &loader).unwrap();
    let ids: Vec<u64> = (1..=5)
        .flat_map(|p| rs.rules(p).map(|r| r.id).collect::<Vec<_>>())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let r3 = rs.rule(3).unwrap();
    assert_eq!(r3.file.as_path(), Path::new("/etc/waf/extra/x.conf"));

    let e = Ruleset::from_file("/etc/waf/loop.conf", &loader)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nested deeper"), "{e}");
    // Errors in included files point into the included file.
    let e = Ruleset::from_file("/etc/waf/inc-broken.conf", &loader)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/etc/waf/broken.conf:3:"), "{e}");
    let e = Ruleset::from_file("/etc/waf/missing.conf", &loader).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
}

#[test]
fn markers_and_chains_compile() {
    let rs = Ruleset::from_str(
        "SecRule ARGS \"@rx a\" \"id:1,phase:1,chain\"\n  SecRule ARGS \"@rx b\" \"chain\"\n    SecRule ARGS \"@rx c\" \"setvar:tx.x=1\"\nSecMarker M\nSecAction \"id:2,phase:3,pass\"",
        "t.conf",
        &MemLoader::default(),
    )
    .unwrap();
    assert_eq!(rs.rule_count(), 2);
    let r = rs.rule(1).unwrap();
    let depth = std::iter::successors(Some(r), |r| r.chain.as_deref()).count();
    assert_eq!(depth, 3);
    assert_eq!(r.chain.as_ref().unwrap().line, 2);
    assert_eq!(rs.rule(2).unwrap().phase, 3);
}
