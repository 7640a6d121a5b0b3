//! Loading test files and overrides files from disk, with go-ftw's
//! post-processing: the rule id falls back on the first number in the file
//! name, a test without an id gets its 1-based position, and every test
//! learns its rule id.

use std::path::{Path, PathBuf};

use crate::model::{FtwTest, OverridesFile};
use crate::Error;

/// Largest test or overrides file read, in bytes (default 16 MiB). The CRS
/// files are at most a few hundred KiB; the cap bounds memory if a path
/// points at something else.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Deepest directory nesting followed when collecting test files (default
/// 16); bounds the walk on a symlink loop.
pub const MAX_DIR_DEPTH: usize = 16;

fn read_bounded(path: &Path) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Parses one test file's text. `file_name` is used for the rule id
/// fallback and in messages. A file with no YAML document (only comments)
/// yields `Ok(None)`, as go-ftw skips it.
pub fn parse_test(text: &str, file_name: &str) -> Result<Option<FtwTest>, Error> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| Error::Yaml {
        path: PathBuf::from(file_name),
        message: e.to_string(),
    })?;
    if value.is_null() {
        return Ok(None);
    }
    let mut test: FtwTest = serde_yaml_ng::from_value(value).map_err(|e| Error::Yaml {
        path: PathBuf::from(file_name),
        message: e.to_string(),
    })?;
    test.file_name = file_name.to_owned();
    if test.rule_id == 0 {
        test.rule_id = first_number(file_name).ok_or_else(|| Error::NoRuleId {
            path: PathBuf::from(file_name),
        })?;
    }
    let rule_id = test.rule_id;
    for (index, case) in test.tests.iter_mut().enumerate() {
        case.rule_id = rule_id;
        if case.effective_id() == 0 {
            case.test_id = Some(index as u64 + 1);
        }
    }
    Ok(Some(test))
}

fn first_number(name: &str) -> Option<u64> {
    let start = name.find(|c: char| c.is_ascii_digit())?;
    let digits: String = name[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Loads one test file. See [`parse_test`].
pub fn load_test_file(path: &Path) -> Result<Option<FtwTest>, Error> {
    let bytes = read_bounded(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Yaml {
        path: path.to_path_buf(),
        message: format!("not UTF-8: {e}"),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_test(&text, &name).map_err(|e| match e {
        Error::Yaml { message, .. } => Error::Yaml {
            path: path.to_path_buf(),
            message,
        },
        Error::NoRuleId { .. } => Error::NoRuleId {
            path: path.to_path_buf(),
        },
        other => other,
    })
}

/// Every `*.yaml` / `*.yml` file under `dir` (recursively), sorted by path
/// so runs are reproducible.
pub fn test_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    walk(dir, 0, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if depth > MAX_DIR_DEPTH {
        return Err(Error::TooDeep {
            path: dir.to_path_buf(),
        });
    }
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
            walk(&path, depth + 1, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads every test file under `dir`. Files without a YAML document are
/// skipped; any other problem is an error naming the file.
pub fn load_tests(dir: &Path) -> Result<Vec<FtwTest>, Error> {
    let mut out = Vec::new();
    for path in test_files(dir)? {
        if let Some(t) = load_test_file(&path)? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Parses an overrides file's text.
pub fn parse_overrides(text: &str, name: &str) -> Result<OverridesFile, Error> {
    serde_yaml_ng::from_str(text).map_err(|e| Error::Yaml {
        path: PathBuf::from(name),
        message: e.to_string(),
    })
}

/// Loads an overrides file.
pub fn load_overrides(path: &Path) -> Result<OverridesFile, Error> {
    let bytes = read_bounded(path)?;
    let text = String::from_utf8_lossy(&bytes);
    parse_overrides(&text, &path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_id_and_test_ids_are_filled_in_like_go_ftw() {
        let yaml = "meta: {}\ntests:\n  - stages: []\n  - test_id: 7\n    stages: []\n  - id: 9\n    stages: []\n";
        let t = parse_test(yaml, "920100.yaml").unwrap().unwrap();
        assert_eq!(t.rule_id, 920100);
        let ids: Vec<String> = t.tests.iter().map(|c| c.id_string()).collect();
        assert_eq!(ids, ["920100-1", "920100-7", "920100-9"]);
    }

    #[test]
    fn comment_only_file_is_skipped_and_missing_rule_id_is_an_error() {
        assert!(parse_test("# nothing\n", "x.yaml").unwrap().is_none());
        assert!(matches!(
            parse_test("tests: []\n", "noname.yaml"),
            Err(Error::NoRuleId { .. })
        ));
    }
}
