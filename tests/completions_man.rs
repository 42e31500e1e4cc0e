//! `klp-build completions SHELL` and `klp-build man`, run as a user runs them: each script and page
//! names every subcommand and every long option of the clap definition, and nothing made up.

use std::process::{Command, Stdio};

use clap::CommandFactory;
use klp_build::cli::Cli;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run klp-build");
    assert!(
        out.status.success(),
        "klp-build {args:?}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every command of the tree, as its path of names (`["release", "build"]`), with its long
/// options, hidden ones left out.
fn commands() -> Vec<(Vec<String>, Vec<String>)> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, Vec<String>)>) {
        let longs = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        out.push((path.clone(), longs));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut out = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut out);
    out
}

#[test]
fn the_tree_has_what_the_readme_documents() {
    let all = commands();
    let names: Vec<String> = all.iter().map(|(p, _)| p.join(" ")).collect();
    for want in [
        "diff",
        "inspect",
        "check",
        "release",
        "release build",
        "release scan",
        "completions",
        "man",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    let top = &all[0].1;
    for want in ["diff", "source", "report", "dry-run", "quiet", "verbose"] {
        assert!(top.iter().any(|l| l == want), "no --{want} in {top:?}");
    }
}

#[test]
fn completion_scripts_name_every_subcommand_and_option() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for (path, longs) in commands() {
            if let Some(name) = path.last() {
                assert!(
                    script.contains(name.as_str()),
                    "{shell}: no subcommand {}",
                    path.join(" ")
                );
            }
            for l in longs {
                let spelt = match shell {
                    "fish" => format!("-l {l}"),
                    _ => format!("--{l}"),
                };
                assert!(
                    script.contains(&spelt),
                    "{shell}: no {spelt} (of `klp-build {}`)",
                    path.join(" ")
                );
            }
        }
        assert!(
            !script.contains("--no-such-option"),
            "{shell}: made-up option"
        );
    }
    assert!(run(&["completions", "bash"]).contains("complete -F"));
    assert!(run(&["completions", "zsh"]).starts_with("#compdef klp-build"));
    assert!(run(&["completions", "fish"]).contains("complete -c klp-build"));
}

#[test]
fn man_page_names_every_subcommand_and_top_level_option() {
    let page = run(&["man"]);
    assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH klp-build 1"), "no title");
    let all = commands();
    for l in &all[0].1 {
        let roff = format!("\\-\\-{}", l.replace('-', "\\-"));
        assert!(page.contains(&roff), "klp-build(1) lacks {roff}");
    }
    for (path, _) in all.iter().filter(|(p, _)| p.len() == 1) {
        let roff = format!("klp\\-build\\-{}(1)", path[0]);
        assert!(page.contains(&roff), "klp-build(1) lacks {roff}");
    }
}

#[test]
fn man_dir_has_one_page_per_subcommand_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("man1");
    run(&["man", "--dir", target.to_str().unwrap()]);
    for (path, longs) in commands() {
        let file = target.join(format!(
            "{}.1",
            std::iter::once("klp-build".to_string())
                .chain(path.iter().cloned())
                .collect::<Vec<_>>()
                .join("-")
        ));
        let page =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for l in longs {
            let roff = format!("\\-\\-{}", l.replace('-', "\\-"));
            assert!(page.contains(&roff), "{} lacks {roff}", file.display());
        }
    }
}
