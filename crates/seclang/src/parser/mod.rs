//! The SecLang parser: files → [`ast::Spanned`] directives.
//!
//! `Include` is resolved here, relative to the including file, with globs
//! expanded by the [`FileLoader`]; nesting deeper than
//! [`MAX_INCLUDE_DEPTH`] is an error (it bounds include cycles). Unknown
//! directives, actions, variables and operators are errors naming the
//! thing, with the file and line.

pub mod ast;
pub mod lexer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::actions::ctl::{id_range, on_off, EngineMode};
use crate::actions::{parse_actions, Action};
use crate::error::Error;
use crate::loader::FileLoader;
use crate::variables::parse_targets;
use ast::{Directive, LimitAction, OperatorAst, Position, RuleAst, Spanned};

/// Deepest `Include` nesting accepted (bounds include cycles). Default 16.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Most files one load may include in total (bounds glob explosions). Default 10 000.
pub const MAX_INCLUDED_FILES: usize = 10_000;

/// Parses `text` (named `file` in errors; includes resolve against its
/// directory) into directives, following `Include`.
pub fn parse_str(text: &str, file: &Path, loader: &dyn FileLoader) -> Result<Vec<Spanned>, Error> {
    let mut p = Parser {
        loader,
        out: Vec::new(),
        files: 0,
    };
    p.parse_text(text, file, 0)?;
    Ok(p.out)
}

/// Reads `path` through `loader` and parses it, following `Include`.
pub fn parse_file(path: &Path, loader: &dyn FileLoader) -> Result<Vec<Spanned>, Error> {
    let mut p = Parser {
        loader,
        out: Vec::new(),
        files: 0,
    };
    p.parse_path(path, 0)?;
    Ok(p.out)
}

struct Parser<'a> {
    loader: &'a dyn FileLoader,
    out: Vec<Spanned>,
    files: usize,
}

fn parse_error(pos: &Position, message: impl Into<String>) -> Error {
    Error::Parse {
        file: pos.file.as_ref().clone(),
        line: pos.line,
        message: message.into(),
    }
}

impl Parser<'_> {
    fn parse_path(&mut self, path: &Path, depth: usize) -> Result<(), Error> {
        self.files += 1;
        if self.files > MAX_INCLUDED_FILES {
            return Err(Error::Parse {
                file: path.to_path_buf(),
                line: 0,
                message: format!("more than {MAX_INCLUDED_FILES} included files"),
            });
        }
        let bytes = self.loader.read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
            file: path.to_path_buf(),
            line: 0,
            message: format!("file is not valid UTF-8: {e}"),
        })?;
        self.parse_text(&text, path, depth)
    }

    fn parse_text(&mut self, text: &str, file: &Path, depth: usize) -> Result<(), Error> {
        let file_arc = Arc::new(file.to_path_buf());
        let raws = lexer::lex(text).map_err(|(line, message)| Error::Parse {
            file: file.to_path_buf(),
            line,
            message,
        })?;
        for raw in raws {
            let pos = Position {
                file: file_arc.clone(),
                line: raw.line,
            };
            if raw.name.eq_ignore_ascii_case("Include") {
                let [target] = raw.args.as_slice() else {
                    return Err(parse_error(&pos, "Include takes exactly one path"));
                };
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(parse_error(
                        &pos,
                        format!("Include nested deeper than {MAX_INCLUDE_DEPTH} (cycle?)"),
                    ));
                }
                let base = file.parent().unwrap_or(Path::new(""));
                let pattern = normalize(&base.join(target));
                let paths = self.loader.glob(&pattern).map_err(|source| Error::Io {
                    path: pattern.clone(),
                    source,
                })?;
                for path in paths {
                    self.parse_path(&path, depth + 1)?;
                }
                continue;
            }
            let directive = directive(&raw.name, &raw.args).map_err(|m| {
                let id = rule_id_hint(&raw.args);
                match id {
                    Some(rule_id) => Error::Rule {
                        file: file.to_path_buf(),
                        line: raw.line,
                        rule_id,
                        message: m,
                    },
                    None => parse_error(&pos, m),
                }
            })?;
            self.out.push(Spanned { pos, directive });
        }
        Ok(())
    }
}

/// Removes `.` and `..` components lexically, so that included files have
/// stable names in errors and for loaders that do not resolve them.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                let last_is_normal =
                    matches!(out.components().next_back(), Some(Component::Normal(_)));
                if last_is_normal {
                    out.pop();
                } else if !out.has_root() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Best-effort `id:N` from a directive's raw arguments, for error messages.
fn rule_id_hint(args: &[String]) -> Option<u64> {
    let actions = args.last()?;
    let at = actions.find("id:")?;
    let digits: String = actions[at + 3..]
        .trim_start_matches(['\'', ' '])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn arity(name: &str, args: &[String], min: usize, max: usize) -> Result<(), String> {
    if args.len() < min || args.len() > max {
        let expected = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!(
            "{name} takes {expected} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

fn number(name: &str, v: &str) -> Result<u64, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{name}: invalid number {v:?}"))
}

fn limit_action(name: &str, v: &str) -> Result<LimitAction, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "reject" => Ok(LimitAction::Reject),
        "processpartial" => Ok(LimitAction::ProcessPartial),
        _ => Err(format!(
            "{name}: expected Reject or ProcessPartial, got {v:?}"
        )),
    }
}

/// Parses an operator string: `@name arg`, `!@name arg`, or a bare regex.
pub fn parse_operator(text: &str) -> Result<OperatorAst, String> {
    let t = text.trim_start();
    let (negated, rest) = match t.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, t),
    };
    if let Some(body) = rest.strip_prefix('@') {
        let end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = &body[..end];
        if name.is_empty() {
            return Err("empty operator name".into());
        }
        let argument = body[end..].trim_start().to_string();
        Ok(OperatorAst {
            name: name.to_string(),
            negated,
            argument,
        })
    } else {
        Ok(OperatorAst {
            name: "rx".into(),
            negated,
            argument: rest.to_string(),
        })
    }
}

/// Interprets one directive (everything but `Include`).
pub fn directive(name: &str, args: &[String]) -> Result<Directive, String> {
    let lower = name.to_ascii_lowercase();
    let one = |args: &[String]| -> Result<String, String> {
        arity(name, args, 1, 1)?;
        Ok(args[0].clone())
    };
    Ok(match lower.as_str() {
        "secrule" => {
            arity(name, args, 2, 3)?;
            let targets = parse_targets(&args[0])?;
            let operator = parse_operator(&args[1])?;
            let actions = match args.get(2) {
                Some(a) => parse_actions(a)?,
                None => Vec::new(),
            };
            Directive::Rule(RuleAst {
                targets,
                operator,
                actions,
            })
        }
        "secaction" => {
            arity(name, args, 1, 1)?;
            Directive::Rule(RuleAst {
                targets: Vec::new(),
                operator: OperatorAst {
                    name: "unconditionalMatch".into(),
                    negated: false,
                    argument: String::new(),
                },
                actions: parse_actions(&args[0])?,
            })
        }
        "secmarker" => Directive::Marker(one(args)?.trim().to_string()),
        "secdefaultaction" => {
            let actions = parse_actions(&one(args)?)?;
            for a in &actions {
                match a {
                    Action::Id(_)
                    | Action::Chain
                    | Action::Skip(_)
                    | Action::SkipAfter(_)
                    | Action::TransformNone
                    | Action::Msg(_)
                    | Action::LogData(_)
                    | Action::Ver(_)
                    | Action::Rev(_) => {
                        return Err(format!(
                            "SecDefaultAction: action {a:?} is not allowed in default actions"
                        ))
                    }
                    _ => {}
                }
            }
            if !actions.iter().any(Action::is_disruptive) {
                return Err("SecDefaultAction must specify a disruptive action".into());
            }
            Directive::DefaultAction(actions)
        }
        "secruleengine" => Directive::RuleEngine(EngineMode::parse(&one(args)?)?),
        "secrequestbodyaccess" => Directive::RequestBodyAccess(on_off(&one(args)?)?),
        "secresponsebodyaccess" => Directive::ResponseBodyAccess(on_off(&one(args)?)?),
        "secrequestbodylimit" => Directive::RequestBodyLimit(number(name, &one(args)?)?),
        "secrequestbodynofileslimit" => {
            Directive::RequestBodyNoFilesLimit(number(name, &one(args)?)?)
        }
        "secrequestbodylimitaction" => {
            Directive::RequestBodyLimitAction(limit_action(name, &one(args)?)?)
        }
        "secresponsebodylimit" => Directive::ResponseBodyLimit(number(name, &one(args)?)?),
        "secresponsebodylimitaction" => {
            Directive::ResponseBodyLimitAction(limit_action(name, &one(args)?)?)
        }
        "secresponsebodymimetype" => {
            if args.is_empty() {
                return Err(format!("{name} needs at least one MIME type"));
            }
            Directive::ResponseBodyMimeType(
                args.iter()
                    .flat_map(|a| a.split_whitespace())
                    .map(str::to_ascii_lowercase)
                    .collect(),
            )
        }
        "secargumentslimit" => Directive::ArgumentsLimit(number(name, &one(args)?)?),
        "secrequestbodyjsondepthlimit" => {
            Directive::RequestBodyJsonDepthLimit(number(name, &one(args)?)?)
        }
        "secruleremovebyid" => {
            if args.is_empty() {
                return Err(format!("{name} needs at least one id"));
            }
            let mut ranges = Vec::new();
            for a in args {
                for part in a.split([' ', ',']).filter(|p| !p.is_empty()) {
                    ranges.push(id_range(part).map_err(|e| format!("{name}: {e}"))?);
                }
            }
            Directive::RuleRemoveById(ranges)
        }
        "secruleremovebytag" => Directive::RuleRemoveByTag(one(args)?),
        "secruleremovebymsg" => Directive::RuleRemoveByMsg(one(args)?),
        "secruleupdatetargetbyid" => {
            arity(name, args, 2, 3)?;
            let ids = id_range(&args[0]).map_err(|e| format!("{name}: {e}"))?;
            let targets = parse_targets(&args[1])?;
            let replace = match args.get(2) {
                Some(r) => Some(parse_targets(r)?),
                None => None,
            };
            Directive::RuleUpdateTargetById {
                ids,
                targets,
                replace,
            }
        }
        "secruleupdatetargetbytag" => {
            arity(name, args, 2, 2)?;
            Directive::RuleUpdateTargetByTag {
                tag: args[0].clone(),
                targets: parse_targets(&args[1])?,
            }
        }
        "secruleupdateactionbyid" => {
            arity(name, args, 2, 2)?;
            let id = number(name, &args[0])?;
            let actions = parse_actions(&args[1])?;
            if actions
                .iter()
                .any(|a| matches!(a, Action::Id(_) | Action::Phase(_) | Action::Chain))
            {
                return Err(format!("{name}: cannot change id, phase or chain"));
            }
            Directive::RuleUpdateActionById { id, actions }
        }
        "seccomponentsignature" => Directive::ComponentSignature(one(args)?),
        "seccollectiontimeout" => Directive::CollectionTimeout(number(name, &one(args)?)?),
        "secdebugloglevel" => {
            let level = number(name, &one(args)?)?;
            if level > 9 {
                return Err(format!("{name}: level must be 0..9"));
            }
            Directive::Setting(name.to_string(), args.to_vec())
        }
        "secauditengine" => {
            let v = one(args)?;
            if !["on", "off", "relevantonly"].contains(&v.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{name}: expected On, Off or RelevantOnly, got {v:?}"
                ));
            }
            Directive::Setting(name.to_string(), args.to_vec())
        }
        "secauditlogparts"
        | "secauditlog"
        | "secauditlog2"
        | "secauditlogtype"
        | "secauditlogformat"
        | "secauditlogstoragedir"
        | "secauditlogdirmode"
        | "secauditlogfilemode"
        | "secauditlogrelevantstatus"
        | "secdebuglog"
        | "sectmpdir"
        | "secdatadir"
        | "secuploaddir"
        | "secuploadkeepfiles"
        | "secuploadfilemode"
        | "secuploadfilelimit"
        | "secpcrematchlimit"
        | "secpcrematchlimitrecursion"
        | "secunicodemapfile"
        | "secstatusengine"
        | "sectmpsaverequestbody"
        | "secargumentseparator"
        | "seccookieformat"
        | "secwebappid"
        | "secrequestbodyinmemorylimit"
        | "secxmlexternalentity" => {
            if args.is_empty() {
                return Err(format!("{name} needs a value"));
            }
            Directive::Setting(name.to_string(), args.to_vec())
        }
        _ => return Err(format!("unknown directive {name}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_forms() {
        assert!(parse_operator("!@eq 1").unwrap().negated);
        let bare = parse_operator("^foo$").unwrap();
        assert_eq!(
            (bare.name.as_str(), bare.argument.as_str()),
            ("rx", "^foo$")
        );
        let pm = parse_operator("@pm  a b").unwrap();
        assert_eq!(pm.argument, "a b");
    }
}
