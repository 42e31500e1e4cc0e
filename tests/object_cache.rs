//! The object cache of the build stage on the lab's prepared Debian 6.1 tree, with real kbuild:
//! the first build of `fs/proc/cmdline.o` makes the original with kbuild's make and stores it, the
//! patched object is compiled by kbuild's recorded command and is byte for byte what kbuild's
//! make gives (`None`: every object by make); the next build takes the original from the cache;
//! a changed makefile kbuild reads and a changed header the compile reads each make it a miss
//! that names the file, and so does putting it back. The tree is left as it was, content and mtime.
//! On the built reference tree, a header change rebuilds every object that includes the header;
//! the recorded commands are proven for all of them at once and give make's objects byte for
//! byte, and the next build takes every original from the cache.

mod support;

use std::path::Path;

use klp_build::patch::{self, PatchSet};
use klp_build::progress::{Progress, Quiet};
use klp_build::rebuild::{self, BuiltObjects, ObjectCache};

/// Keeps what the build stage says about how it went.
#[derive(Default)]
struct Said(Vec<String>);

impl Progress for Said {
    fn stage(&mut self, _: &str) {}
    fn note(&mut self, m: &str) {
        self.0.push(m.into());
    }
    fn detail(&mut self, m: &str) {
        self.0.push(m.into());
    }
}

impl Said {
    fn assert_has(&self, text: &str, what: &str) {
        assert!(
            self.0.iter().any(|l| l.contains(text)),
            "{what}: no `{text}` in {:#?}",
            self.0
        );
    }
}

/// A file of the tree with `extra` appended (under the tree lock), put back with its content
/// and mtime when dropped, also when the test fails.
struct Changed {
    path: std::path::PathBuf,
    source: std::path::PathBuf,
    content: Vec<u8>,
    mtime: std::time::SystemTime,
}

impl Changed {
    fn new(source: &Path, rel: &str, extra: &str) -> Changed {
        support::tree::locked(source, || {
            let path = source.join(rel);
            let content = std::fs::read(&path).unwrap();
            let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
            let mut changed = content.clone();
            changed.extend_from_slice(extra.as_bytes());
            std::fs::write(&path, changed).unwrap();
            Changed {
                path,
                source: source.to_path_buf(),
                content,
                mtime,
            }
        })
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        support::tree::locked(&self.source, || {
            std::fs::write(&self.path, &self.content).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&self.path)
                .and_then(|f| f.set_modified(self.mtime))
                .unwrap();
        });
    }
}

fn build(
    t: &klp_build::kernel::Kernel,
    set: &PatchSet,
    cache: Option<&ObjectCache>,
    work: &Path,
) -> (BuiltObjects, Said) {
    let mut said = Said::default();
    let built = rebuild::run(t, set, &work.join("2-rebuild"), cache, &mut said)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(!built.pairs.is_empty(), "no objects built: {:#?}", said.0);
    (built, said)
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn originals_come_from_the_cache_only_while_every_input_is_unchanged() {
    let Some(lab) =
        support::lab("originals_come_from_the_cache_only_while_every_input_is_unchanged")
    else {
        return;
    };
    let t = support::inputs::target(lab);
    let files = [
        "fs/proc/cmdline.c",
        "fs/proc/cmdline.o",
        "fs/proc/.cmdline.o.cmd",
        "fs/proc/.cmdline.o.d",
        "fs/proc/Makefile",
        "include/linux/proc_fs.h",
        ".missing-syscalls.d",
    ];
    let before = support::tree::snapshot(&t.source, &files);
    let dir = tempfile::tempdir().unwrap();
    let cache = ObjectCache::new(dir.path().join("objects"));
    let set = patch::run(
        &[support::inputs::patch("cmdline.patch")],
        &t.source,
        &dir.path().join("1-patch"),
        &mut Quiet,
    )
    .unwrap();

    // The first build: the original by kbuild's make, stored; the patched object by kbuild's
    // recorded command, proven on the original first.
    let (first, said) = build(&t, &set, Some(&cache), &dir.path().join("w1"));
    assert_eq!(first.pairs.len(), 1, "{:#?}", said.0);
    said.assert_has(
        "fs/proc/cmdline.o: building the original (not built with these make arguments",
        "first build",
    );
    said.assert_has(
        "compiling the patched objects with kbuild's recorded commands",
        "first build",
    );
    let (orig, patched) = (bytes(&first.pairs[0].orig), bytes(&first.pairs[0].patched));
    assert_ne!(orig, patched);

    // Every object by kbuild's make gives the same bytes.
    let (by_make, said) = build(&t, &set, None, &dir.path().join("w0"));
    said.assert_has(
        "compiling the patched objects with kbuild's make: --no-object-cache",
        "no cache",
    );
    assert_eq!(bytes(&by_make.pairs[0].orig), orig, "original by make");
    assert_eq!(
        bytes(&by_make.pairs[0].patched),
        patched,
        "patched by make against patched by the recorded command"
    );

    // The next build: the original from the cache.
    let (next, said) = build(&t, &set, Some(&cache), &dir.path().join("w2"));
    said.assert_has(
        "fs/proc/cmdline.o: the original from the object cache",
        "next build",
    );
    assert_eq!(bytes(&next.pairs[0].orig), orig);
    assert_eq!(bytes(&next.pairs[0].patched), patched);

    // A makefile kbuild's make reads, and a header the compile reads: each changed (a comment,
    // which changes no code) is a miss that names it.
    for (file, extra) in [
        ("fs/proc/Makefile", "\n# klp-build object cache test\n"),
        (
            "include/linux/proc_fs.h",
            "\n/* klp-build object cache test */\n",
        ),
    ] {
        let changed = Changed::new(&t.source, file, extra);
        let (built, said) = build(&t, &set, Some(&cache), &dir.path().join("w3"));
        said.assert_has(
            &format!("fs/proc/cmdline.o: building the original ({file} changed)"),
            file,
        );
        assert_eq!(bytes(&built.pairs[0].orig), orig, "{file}");
        // Put back, it is changed again against the entry the last build stored.
        drop(changed);
        let (_, said) = build(&t, &set, Some(&cache), &dir.path().join("w4"));
        said.assert_has(
            &format!("fs/proc/cmdline.o: building the original ({file} changed)"),
            &format!("{file} put back"),
        );
    }
    assert_eq!(
        support::tree::snapshot(&t.source, &files),
        before,
        "the tree must be left as it was"
    );
}

#[test]
fn a_header_change_in_a_built_tree_compiles_every_including_object_as_make_does() {
    let test = "a_header_change_in_a_built_tree_compiles_every_including_object_as_make_does";
    let Some(kernel) = support::refkernel::ref_kernel(test) else {
        return;
    };
    let t = klp_build::kernel::resolve(&klp_build::kernel::KernelOptions {
        source: kernel.tree.clone(),
        kbuild: None,
        config: None,
        jobs: 2,
    })
    .unwrap_or_else(|e| panic!("resolving the reference tree: {e:#}"));
    t.prepare(&mut Quiet)
        .unwrap_or_else(|e| panic!("preparing the reference tree: {e:#}"));
    let header = "fs/proc/internal.h";
    let before = support::tree::snapshot(&t.source, &[header, "fs/proc/inode.o"]);
    let dir = tempfile::tempdir().unwrap();
    let cache = ObjectCache::new(dir.path().join("objects"));
    let set = patch::run(
        &[support::inputs::patch("6.12/proc-internal-header.patch")],
        &t.source,
        &dir.path().join("1-patch"),
        &mut Quiet,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));

    let (first, said) = build(&t, &set, Some(&cache), &dir.path().join("w1"));
    said.assert_has(
        "compiling the patched objects with kbuild's recorded commands",
        "first build",
    );
    let objects: Vec<String> = first
        .pairs
        .iter()
        .map(|p| p.object.to_string_lossy().into_owned())
        .collect();
    // internal.h is included by most of fs/proc: far more than the one object it changes.
    assert!(
        objects.len() > 5 && objects.iter().any(|o| o == "fs/proc/inode.o"),
        "objects rebuilt for {header}: {objects:?}"
    );

    let (by_make, said) = build(&t, &set, None, &dir.path().join("w0"));
    said.assert_has(
        "compiling the patched objects with kbuild's make",
        "no cache",
    );
    let (next, said) = build(&t, &set, Some(&cache), &dir.path().join("w2"));
    for (i, pair) in first.pairs.iter().enumerate() {
        let o = pair.object.display();
        assert_eq!(by_make.pairs[i].object, pair.object);
        assert_eq!(next.pairs[i].object, pair.object);
        let (orig, patched) = (bytes(&pair.orig), bytes(&pair.patched));
        assert_eq!(bytes(&by_make.pairs[i].orig), orig, "{o}: original");
        assert_eq!(
            bytes(&by_make.pairs[i].patched),
            patched,
            "{o}: patched by make against patched by the recorded command"
        );
        said.assert_has(
            &format!("{o}: the original from the object cache"),
            "next build",
        );
        assert_eq!(
            bytes(&next.pairs[i].orig),
            orig,
            "{o}: original from the cache"
        );
        assert_eq!(
            bytes(&next.pairs[i].patched),
            patched,
            "{o}: patched, next build"
        );
        if pair.object.as_os_str() == "fs/proc/inode.o" {
            assert_ne!(orig, patched, "{o}: the patch changes proc_get_inode");
        }
    }
    assert_eq!(
        support::tree::snapshot(&t.source, &[header, "fs/proc/inode.o"]),
        before,
        "the tree must be left as it was"
    );
}
