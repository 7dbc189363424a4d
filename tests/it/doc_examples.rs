//! The documentation's examples are what the binary prints (trycmd-style).
//!
//! Every ```` ```console ```` block of README.md and docs/*.md is a session:
//! `$ surql …` lines are run in order, in a fresh folder holding copies of the
//! shipped environments.json and examples/ (one folder per file, so a later
//! block sees what an earlier one deployed), and the lines after a command
//! are its stdout. In the expected text, `[..]` matches anything within a
//! line and a line `...` matches any number of lines; a first line `? N`
//! expects exit code N (otherwise 0).

use std::path::Path;

use crate::common::repo;

/// One `$ surql …` of a console block and what it prints.
#[derive(Debug)]
struct Example {
    file: String,
    line: usize,
    args: Vec<String>,
    code: i32,
    expected: Vec<String>,
}

fn examples_in(file: &Path) -> Vec<Example> {
    let name = file.strip_prefix(repo()).unwrap_or(file).display().to_string();
    let text = std::fs::read_to_string(file).unwrap();
    let mut examples: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (index, line) in text.lines().enumerate() {
        if !in_console {
            in_console = line.trim_end() == "```console";
            continue;
        }
        if line.trim_end() == "```" {
            in_console = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
            assert_eq!(
                words.first().map(String::as_str),
                Some("surql"),
                "{name}:{}: a console example runs `surql`, not {command}",
                index + 1
            );
            examples.push(Example {
                file: name.clone(),
                line: index + 1,
                args: words[1..].to_vec(),
                code: 0,
                expected: Vec::new(),
            });
        } else if let Some(example) = examples.last_mut() {
            match line.strip_prefix("? ") {
                Some(code) if example.expected.is_empty() => {
                    example.code = code.trim().parse().expect("`? N` names an exit code")
                }
                _ => example.expected.push(line.to_string()),
            }
        }
    }
    examples
}

/// `actual` matches `pattern`, where `[..]` matches any text.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (index, part) in parts.iter().enumerate() {
        if index == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// `actual` lines match `expected`, where a `...` line matches any lines.
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(line, others)| line_matches(first, line) && lines_match(rest, others)),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn documents() -> Vec<std::path::PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut chapters: Vec<_> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    files.extend(chapters);
    files
}

#[test]
fn the_documented_console_examples_print_what_they_show() {
    let mut failures = Vec::new();
    let mut run = 0;
    for document in documents() {
        let examples = examples_in(&document);
        if examples.is_empty() {
            continue;
        }
        let folder = tempfile::tempdir().unwrap();
        std::fs::copy(
            repo().join("environments.json"),
            folder.path().join("environments.json"),
        )
        .unwrap();
        std::fs::copy(
            repo().join("environments.schema.json"),
            folder.path().join("environments.schema.json"),
        )
        .unwrap();
        copy_dir(
            &repo().join("examples/migrations"),
            &folder.path().join("examples/migrations"),
        );
        copy_dir(
            &repo().join("examples/strategies"),
            &folder.path().join("examples/strategies"),
        );
        for example in examples {
            run += 1;
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_surql"))
                .args(&example.args)
                .current_dir(folder.path())
                .env_remove("RUST_LOG")
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let actual: Vec<&str> = stdout.lines().collect();
            let code = out.status.code().unwrap_or(-1);
            if code != example.code || !lines_match(&example.expected, &actual) {
                failures.push(format!(
                    "{}:{}: `surql {}` exited {code} (documented {}) and printed:\n{stdout}\n--- stderr:\n{}",
                    example.file,
                    example.line,
                    example.args.join(" "),
                    example.code,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(run >= 5, "the docs hold {run} console examples; the tour has more");
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n\n"), text_hint());
}

fn text_hint() -> &'static str {
    "update the ```console block to what the binary prints now ([..] and ... match what varies)"
}

#[test]
fn the_matcher_knows_its_wildcards() {
    assert!(line_matches(
        "deployment [..] (sequential): 3 success",
        "deployment 2026-x (sequential): 3 success"
    ));
    assert!(!line_matches(
        "deployment [..] (canary)",
        "deployment 2026-x (sequential)"
    ));
    assert!(line_matches("exact", "exact"));
    assert!(!line_matches("exact", "exact plus"));
    let expected: Vec<String> = ["a", "...", "d"].iter().map(|s| s.to_string()).collect();
    assert!(lines_match(&expected, &["a", "b", "c", "d"]));
    assert!(lines_match(&expected, &["a", "d"]));
    assert!(!lines_match(&expected, &["a", "b"]));
}
