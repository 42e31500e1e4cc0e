//! The cache of original objects. Input: a tree, an object, the make arguments and environment of
//! its rebuild, and (to store) what that rebuild read. Output: the object and `.cmd` file kbuild
//! built from the unpatched tree, or why there is none. Invariant: a hit only when every input of
//! the build that made the entry is as it was: each makefile kbuild's make read, each file it
//! considered and each file the compile read (gcc's dep list), by content; the programs the
//! recorded command runs (the compiler with its `cc1` and `as`, objtool and plugins by content
//! when they are the tree's); make itself; the make arguments and environment; klp-build's
//! version. A stale original would be diffed against the patched object and patch the wrong
//! code, so anything unreadable or unknown is a miss.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::makelog::MakeTrace;

/// Bumped when an entry's meaning changes.
const FORMAT: u32 = 1;

/// The cache is pruned to three quarters of this when a store takes it over (least recently used
/// first).
const LIMIT_BYTES: u64 = 1 << 30;

/// Environment variables no kbuild make reads and that change from one shell to the next. Every
/// other variable is part of the key, since make imports the environment as variables.
const ENV_IGNORED: &[&str] = &[
    "_",
    "COLORTERM",
    "DBUS_SESSION_BUS_ADDRESS",
    "DISPLAY",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "LANGUAGE",
    "LC_MESSAGES",
    "LS_COLORS",
    "MAIL",
    "OLDPWD",
    "PWD",
    "SHLVL",
    "SSH_AUTH_SOCK",
    "SSH_CLIENT",
    "SSH_CONNECTION",
    "SSH_TTY",
    "STY",
    "TERM",
    "TMUX",
    "TMUX_PANE",
    "WINDOW",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_ID",
];

/// The object cache under a directory (`<cache>/objects`).
#[derive(Debug, Clone)]
pub struct ObjectCache {
    dir: PathBuf,
}

/// What a build of one tree is keyed on besides its files.
#[derive(Debug, Clone)]
pub struct BuildKey {
    /// The tree, canonical.
    pub tree: PathBuf,
    /// make's arguments after `-C TREE -jN`.
    pub args: Vec<String>,
}

/// An entry as stored (`entry.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    format: u32,
    tool: String,
    object: String,
    /// The recorded command, as the shell runs it.
    command: String,
    /// Every input file (tree-relative or absolute) and its fingerprint ([`fingerprint`]).
    files: BTreeMap<String, String>,
    /// Every program the command runs, and its identity ([`programs`]).
    programs: BTreeMap<String, String>,
    /// The files kbuild's make read or considered, apart from the object's own sources: a patch
    /// that touches one of them needs kbuild's make.
    make_inputs: BTreeSet<String>,
    /// The recorded command alone rebuilds the object byte for byte.
    direct: bool,
    object_sha256: String,
    cmd_sha256: String,
}

/// A cached original.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The object's bytes.
    pub object: Vec<u8>,
    /// Its `.cmd` file.
    pub cmd: Vec<u8>,
    /// See [`Record::direct`].
    pub direct: bool,
    /// See [`Record::make_inputs`].
    pub make_inputs: BTreeSet<String>,
}

/// What one original build read and proved, to store.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// make's trace of the build.
    pub trace: &'a MakeTrace,
    /// The object as built.
    pub object: &'a [u8],
    /// Its `.cmd` file as kbuild wrote it.
    pub cmd: &'a [u8],
    /// Files that are the build's outputs (the objects, their `.cmd` and dep files): never keys.
    pub outputs: &'a BTreeSet<String>,
    /// The recorded command alone gave kbuild's object (checked by running it).
    pub direct: bool,
    /// The files kbuild's make read or considered, apart from the objects' own sources.
    pub make_inputs: &'a BTreeSet<String>,
}

impl ObjectCache {
    /// The cache in `dir` (created on the first store).
    pub fn new(dir: PathBuf) -> ObjectCache {
        ObjectCache { dir }
    }

    fn entry_dir(&self, key: &BuildKey, object: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(format!(
            "klp-build {} format {FORMAT}\0",
            env!("CARGO_PKG_VERSION")
        ));
        h.update(key.tree.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(object.as_bytes());
        for a in &key.args {
            h.update(b"\0arg ");
            h.update(a.as_bytes());
        }
        for (k, v) in key_env() {
            h.update(b"\0env ");
            h.update(k.as_encoded_bytes());
            h.update(b"=");
            h.update(v.as_encoded_bytes());
        }
        self.dir.join(hex(&h.finalize()))
    }

    /// The cached original of `object` (tree-relative), or why there is none.
    pub fn lookup(&self, key: &BuildKey, object: &str) -> Result<Hit, String> {
        let dir = self.entry_dir(key, object);
        let text = match std::fs::read(dir.join("entry.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("not built with these make arguments and environment before".into())
            }
            Err(e) => return Err(format!("{}: {e}", dir.join("entry.json").display())),
        };
        let entry: Entry = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: unreadable ({e})", dir.join("entry.json").display()))?;
        if entry.format != FORMAT
            || entry.tool != env!("CARGO_PKG_VERSION")
            || entry.object != object
        {
            return Err("made by another klp-build".into());
        }
        for (file, print) in &entry.files {
            let now = fingerprint(&key.tree, file);
            if &now != print {
                return Err(format!("{file} changed"));
            }
        }
        let programs = programs(&key.tree, &entry.command);
        if programs != entry.programs {
            let changed = programs
                .iter()
                .find(|(p, id)| entry.programs.get(*p) != Some(id))
                .map_or_else(|| "a program".to_string(), |(p, _)| p.clone());
            return Err(format!("{changed} changed"));
        }
        let read = |name: &str, sha: &str| -> Result<Vec<u8>, String> {
            let bytes = std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
            (hex(&Sha256::digest(&bytes)) == sha)
                .then_some(bytes)
                .ok_or_else(|| format!("{} is damaged", dir.join(name).display()))
        };
        let object = read("object.o", &entry.object_sha256)?;
        let cmd = read("object.cmd", &entry.cmd_sha256)?;
        // Least recently used goes first when the cache is pruned.
        let _ = std::fs::File::open(dir.join("entry.json"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(Hit {
            object,
            cmd,
            direct: entry.direct,
            make_inputs: entry.make_inputs,
        })
    }

    /// Stores the original of `object` that one build made, with every input it read.
    pub fn store(&self, key: &BuildKey, object: &str, rec: &Record) -> anyhow::Result<()> {
        let cmd_text = String::from_utf8_lossy(rec.cmd);
        let parsed = super::cmd_file::parse(&cmd_text);
        let command = unescape(
            &super::direct::recorded(&cmd_text)
                .with_context(|| format!("the .cmd file of {object} has no command"))?,
        );
        let mut names: BTreeSet<&str> = rec.trace.read.iter().map(String::as_str).collect();
        names.extend(rec.trace.considered.iter().map(String::as_str));
        names.extend(parsed.deps.iter().map(String::as_str));
        names.extend(parsed.source.iter().map(String::as_str));
        let files: BTreeMap<String, String> = names
            .into_iter()
            .filter(|n| !rec.outputs.contains(*n))
            .map(|n| (n.to_string(), fingerprint(&key.tree, n)))
            .collect();
        let entry = Entry {
            format: FORMAT,
            tool: env!("CARGO_PKG_VERSION").into(),
            object: object.into(),
            files,
            programs: programs(&key.tree, &command),
            command,
            make_inputs: rec.make_inputs.clone(),
            direct: rec.direct,
            object_sha256: hex(&Sha256::digest(rec.object)),
            cmd_sha256: hex(&Sha256::digest(rec.cmd)),
        };
        let dir = self.entry_dir(key, object);
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.dir)
            .with_context(|| format!("creating a directory in {}", self.dir.display()))?;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(tmp.path().join(name), bytes)
                .with_context(|| format!("writing {}", tmp.path().join(name).display()))
        };
        write("object.o", rec.object)?;
        write("object.cmd", rec.cmd)?;
        write("entry.json", &serde_json::to_vec(&entry)?)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let tmp = tmp.keep();
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        self.prune(LIMIT_BYTES);
        Ok(())
    }

    /// Removes the least recently used entries while the cache holds more than `limit` bytes,
    /// down to three quarters of it, and the half-written entries of runs that were killed (an
    /// hour old).
    fn prune(&self, limit: u64) {
        let Ok(list) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries = Vec::new();
        let mut total = 0;
        for e in list.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let age = |p: &Path| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default()
            };
            if name.starts_with(".tmp-") {
                if age(&path) > std::time::Duration::from_secs(3600) {
                    let _ = std::fs::remove_dir_all(&path);
                }
                continue;
            }
            let size: u64 = std::fs::read_dir(&path)
                .map(|d| {
                    d.flatten()
                        .filter_map(|f| f.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            total += size;
            entries.push((age(&path.join("entry.json")), size, path));
        }
        if total <= limit {
            return;
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (_, size, path) in entries {
            if total <= limit / 4 * 3 {
                break;
            }
            if std::fs::remove_dir_all(&path).is_ok() {
                total -= size;
            }
        }
    }
}

/// The environment as it goes to make, in the key: all of it but [`ENV_IGNORED`] and klp-build's
/// own variables (its tag differs on every run; its cache location is not an input).
fn key_env() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let mut env: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !ENV_IGNORED.contains(&k.as_ref()) && !k.starts_with("KLP_BUILD_")
        })
        .collect();
    env.sort();
    env
}

/// A recorded command in make syntax, as the shell gets it (`$$` is `$`, `$(pound)` is `#`).
fn unescape(command: &str) -> String {
    command.replace("$(pound)", "#").replace("$$", "$")
}

/// What a file is now: `sha256:<hex>` of a regular file's content, `dir`, `absent`, or `other`
/// (a device or a pipe is never read); `file` is tree-relative unless absolute.
fn fingerprint(tree: &Path, file: &str) -> String {
    let path = if file.starts_with('/') {
        PathBuf::from(file)
    } else {
        tree.join(file)
    };
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "absent".into(),
        Err(e) => format!("unreadable: {}", e.kind()),
        Ok(m) if m.is_dir() => "dir".into(),
        Ok(m) if !m.is_file() => "other".into(),
        Ok(_) => match sha256_file(&path) {
            Ok(h) => format!("sha256:{h}"),
            Err(e) => format!("unreadable: {}", e.kind()),
        },
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The programs a shell command runs (the first word of each part between `;`, `&&`, `||` and
/// `|`) and the plugins it loads (`-fplugin=`, `-fpass-plugin=`), each with its identity: the
/// tree's own (objtool, a gcc plugin) by content, others by path, size, mtime and inode after
/// following links. A gcc also names its `cc1` and `as` (`<gcc> cc1`), which `-print-prog-name`
/// finds: a new compiler package changes them without changing `gcc`'s link.
fn programs(tree: &Path, command: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let normalized = command
        .replace("&&", ";")
        .replace("||", ";")
        .replace('|', ";");
    for part in normalized.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let Some(program) = words.iter().find(|w| !w.contains('=') && **w != "(") else {
            continue;
        };
        out.insert(program.to_string(), identity(tree, program));
        for w in &words {
            if let Some(p) = w
                .strip_prefix("-fplugin=")
                .or_else(|| w.strip_prefix("-fpass-plugin="))
            {
                out.insert(p.to_string(), identity(tree, p));
            }
        }
    }
    let compilers: Vec<String> = out
        .keys()
        .filter(|p| {
            Path::new(p.as_str())
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains("gcc"))
        })
        .cloned()
        .collect();
    for cc in compilers {
        for part in ["cc1", "as"] {
            // A compiler named by a relative path is the tree's, as for kbuild.
            let program = if cc.contains('/') && !cc.starts_with('/') {
                tree.join(&cc)
            } else {
                PathBuf::from(&cc)
            };
            let found = std::process::Command::new(program)
                .arg(format!("-print-prog-name={part}"))
                .current_dir(tree)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let id = if found.is_empty() {
                "absent".into()
            } else {
                identity(tree, &found)
            };
            out.insert(format!("{cc} {part}"), id);
        }
    }
    out.insert("make".into(), identity(tree, "make"));
    out
}

/// See [`programs`].
fn identity(tree: &Path, program: &str) -> String {
    let path = if program.starts_with('/') {
        Some(PathBuf::from(program))
    } else if program.contains('/') {
        Some(tree.join(program))
    } else {
        crate::kernel::compiler::find_program(program)
    };
    let Some(path) = path.and_then(|p| std::fs::canonicalize(p).ok()) else {
        return "absent".into();
    };
    if path.starts_with(tree) {
        return fingerprint(tree, &path.to_string_lossy());
    }
    match std::fs::metadata(&path) {
        Ok(m) => format!(
            "{} size {} mtime {}.{} inode {}:{}",
            path.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.dev(),
            m.ino()
        ),
        Err(e) => format!("unreadable: {}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with a source, a header, a makefile and an objtool of its own, and the record of a
    /// build that read them.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (f, text) in [
            ("a.c", "#include \"a.h\"\nint a(void) { return A; }\n"),
            ("a.h", "#define A 1\n"),
            ("Makefile", "obj-y += a.o\n"),
            ("tools/objtool/objtool", "objtool 1\n"),
        ] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t
    }

    const CMD: &str =
        "savedcmd_a.o := gcc -Wp,-MMD,./.a.o.d -c -o a.o a.c ; ./tools/objtool/objtool --orc a.o\n\
        \nsource_a.o := a.c\n\ndeps_a.o := \\\n  a.h \\\n\na.o: $(deps_a.o)\n\n$(deps_a.o):\n";

    fn store(cache: &ObjectCache, key: &BuildKey, object: &[u8]) {
        let trace = MakeTrace {
            read: ["Makefile".to_string()].into(),
            considered: ["a.o".to_string(), "a.c".to_string(), "FORCE".to_string()].into(),
        };
        let outputs: BTreeSet<String> = ["a.o".to_string(), ".a.o.cmd".to_string()].into();
        let inputs: BTreeSet<String> = ["Makefile".to_string()].into();
        let record = Record {
            trace: &trace,
            object,
            cmd: CMD.as_bytes(),
            outputs: &outputs,
            direct: true,
            make_inputs: &inputs,
        };
        cache.store(key, "a.o", &record).unwrap();
    }

    #[test]
    fn an_entry_hits_until_one_of_its_inputs_changes() {
        let t = tree();
        let dir = tempfile::tempdir().unwrap();
        let cache = ObjectCache::new(dir.path().join("objects"));
        let key = BuildKey {
            tree: t.path().canonicalize().unwrap(),
            args: vec!["-s".into(), "KCFLAGS=-ffunction-sections".into()],
        };
        assert!(cache.lookup(&key, "a.o").unwrap_err().contains("not built"));
        store(&cache, &key, b"\x7fELF object");
        let hit = cache.lookup(&key, "a.o").unwrap();
        assert_eq!(hit.object, b"\x7fELF object");
        assert_eq!(hit.cmd, CMD.as_bytes());
        assert!(hit.direct);
        assert!(hit.make_inputs.contains("Makefile"));
        // An output of the build (the object in the tree) is no input.
        std::fs::write(t.path().join("a.o"), "the user's own build").unwrap();
        assert!(cache.lookup(&key, "a.o").is_ok());
        // Other make arguments: another entry.
        let other = BuildKey {
            args: vec!["-s".into()],
            ..key.clone()
        };
        assert!(cache.lookup(&other, "a.o").is_err());
        // Each kind of input, changed and put back.
        for (file, changed) in [
            ("a.h", "#define A 2\n"),
            ("a.c", "int a(void) { return 2; }\n"),
            ("Makefile", "obj-y += a.o b.o\n"),
            ("tools/objtool/objtool", "objtool 2\n"),
        ] {
            let path = t.path().join(file);
            let before = std::fs::read(&path).unwrap();
            std::fs::write(&path, changed).unwrap();
            let why = cache.lookup(&key, "a.o").unwrap_err();
            assert!(
                why.contains(file) && why.ends_with("changed"),
                "{file}: {why}"
            );
            std::fs::write(&path, before).unwrap();
            assert!(cache.lookup(&key, "a.o").is_ok(), "{file} put back");
        }
        // A file make considered that did not exist, now there.
        std::fs::write(t.path().join("FORCE"), "").unwrap();
        assert_eq!(cache.lookup(&key, "a.o").unwrap_err(), "FORCE changed");
        std::fs::remove_file(t.path().join("FORCE")).unwrap();
        // A damaged object is no hit.
        let entry = std::fs::read_dir(dir.path().join("objects"))
            .unwrap()
            .flatten()
            .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .unwrap()
            .path();
        std::fs::write(entry.join("object.o"), "garbage").unwrap();
        assert!(cache.lookup(&key, "a.o").unwrap_err().contains("damaged"));
        std::fs::write(entry.join("entry.json"), "{").unwrap();
        assert!(cache
            .lookup(&key, "a.o")
            .unwrap_err()
            .contains("unreadable"));
    }

    #[test]
    fn programs_are_the_commands_words_and_plugins() {
        let t = tree();
        let tree = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(tree.join("scripts/gcc-plugins")).unwrap();
        std::fs::write(tree.join("scripts/gcc-plugins/x.so"), "plugin").unwrap();
        let p = programs(
            &tree,
            "gcc -fplugin=./scripts/gcc-plugins/x.so -c -o a.o a.c ; ./tools/objtool/objtool --orc a.o && \
             FOO=1 true | /nonexistent/klp-build/tool",
        );
        let names: Vec<&str> = p.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "./scripts/gcc-plugins/x.so",
                "./tools/objtool/objtool",
                "/nonexistent/klp-build/tool",
                "gcc",
                "gcc as",
                "gcc cc1",
                "make",
                "true"
            ]
        );
        assert!(p["./tools/objtool/objtool"].starts_with("sha256:"));
        assert_eq!(p["/nonexistent/klp-build/tool"], "absent");
        // gcc's own cc1, found through gcc, by path and inode.
        assert!(p["gcc cc1"].contains("cc1 size "), "{}", p["gcc cc1"]);
    }

    #[test]
    fn kbuild_s_escapes_are_undone_for_the_shell() {
        assert_eq!(unescape("echo $$x $(pound)y"), "echo $x #y");
    }

    #[test]
    fn pruning_removes_the_least_recently_used_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ObjectCache::new(dir.path().to_path_buf());
        for (name, age) in [("old", 300), ("mid", 200), ("new", 100)] {
            let e = dir.path().join(name);
            std::fs::create_dir_all(&e).unwrap();
            std::fs::write(e.join("object.o"), vec![0u8; 1000]).unwrap();
            let f = std::fs::File::create(e.join("entry.json")).unwrap();
            f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
        }
        // 3000 bytes against a limit of 2700: pruned to 2025, the oldest entry goes.
        cache.prune(2700);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["mid", "new"]);
    }
}
