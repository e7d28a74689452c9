#!/usr/bin/env bash
# The fact the build cache (issue 28, docs/cache.md) rests on, checked with the cargo on
# PATH and real crates from crates.io: a workspace's dependency units, built with a fixed
# CARGO_HOME path and copied (without *.d files and without the members' units) into the
# target directory of a workspace elsewhere, with other code, are all `Fresh` there, when
# CARGO_HOME is the same path (a symlink to another directory will do) and not otherwise;
# and two builds at the same paths give the same unit files.
#
#   scripts/check-cargo-reuse.sh            # prints the three findings; exit 1 if one fails
set -euo pipefail
X=$(mktemp -d /tmp/cargo-reuse.XXXXXX)
HOME_PATH=$X/cargo-home           # the "builders'" CARGO_HOME path
trap 'rm -rf "$X"' EXIT
mkdir -p "$HOME_PATH"
export CARGO_HOME=$HOME_PATH

workspace() { # workspace DIR NUMBER: two members, app (bin) and util (lib); deps with a
  # build script (libc), a proc-macro (serde_derive) and plain libraries
  mkdir -p "$1/app/src" "$1/util/src"
  printf '[workspace]\nmembers = ["app", "util"]\nresolver = "2"\n' >"$1/Cargo.toml"
  cat >"$1/app/Cargo.toml" <<'T'
[package]
name = "app"
version = "0.1.0"
edition = "2021"

[dependencies]
util = { path = "../util" }
itoa = "1"
serde = { version = "1", features = ["derive"] }
libc = "0.2"
T
  printf '[package]\nname = "util"\nversion = "0.1.0"\nedition = "2021"\n' >"$1/util/Cargo.toml"
  echo "pub fn x() -> u32 { $2 }" >"$1/util/src/lib.rs"
  cat >"$1/app/src/main.rs" <<'T'
#[derive(serde::Serialize)]
struct S { a: u32 }
fn main() {
    let mut b = itoa::Buffer::new();
    println!("{} {} {}", b.format(util::x()), unsafe { libc::getpid() } > 0, std::mem::size_of::<S>());
}
T
}
units() { # the dependency units' files under DIR/target/release (members and *.d left out)
  (cd "$1/target/release" && find deps build .fingerprint -type f ! -name '*.d' |
    grep -v -E '(^|/)(lib)?(app|util)[-_]' | sort)
}
unpack() { # unpack FROM TO: the units of FROM into TO's target, one timestamp for all
  rm -rf "$2/target"; mkdir -p "$2/target/release"
  (cd "$1/target/release" && units "$1" | tar cf - -T -) | (cd "$2/target/release" && tar xf -)
  find "$2/target" -exec touch -h -d "@$(date +%s)" {} +
}
compiled() { # compiled DIR: the packages cargo compiles there (not Fresh)
  (cd "$1" && cargo build --release -v 2>&1 | sed -n 's/^ *Compiling \([^ ]*\).*/\1/p' | sort | tr '\n' ' ')
}
fail=0
workspace "$X/a" 1
(cd "$X/a" && cargo generate-lockfile -q && cargo build --release -q)
(cd "$X/a/target/release" && units "$X/a" | xargs sha256sum) >"$X/first"
mv "$X/a/target" "$X/a/target.first"
(cd "$X/a" && cargo build --release -q)
(cd "$X/a/target/release" && units "$X/a" | xargs sha256sum) >"$X/second"
n=$(wc -l <"$X/first")
if cmp -s "$X/first" "$X/second"; then echo "same paths, two builds: the $n unit files are identical"
else echo "same paths, two builds: the unit files DIFFER"; diff "$X/first" "$X/second" | head; fail=1; fi

workspace "$X/elsewhere/b" 7
cp "$X/a/Cargo.lock" "$X/elsewhere/b/"
unpack "$X/a" "$X/elsewhere/b"
got=$(compiled "$X/elsewhere/b")
echo "another directory, same CARGO_HOME path: compiled: $got"
[ "$got" = "app util " ] || fail=1
"$X/elsewhere/b/target/release/app" >/dev/null

cp -a "$HOME_PATH" "$X/other-home"
unpack "$X/a" "$X/elsewhere/b"
got=$(CARGO_HOME=$X/other-home compiled "$X/elsewhere/b")
echo "another CARGO_HOME path (same contents): compiled: $got"
[ "$got" != "app util " ] || fail=1

mv "$HOME_PATH" "$X/real-home"; ln -s "$X/real-home" "$HOME_PATH"
unpack "$X/a" "$X/elsewhere/b"
got=$(compiled "$X/elsewhere/b")
echo "the same CARGO_HOME path as a symlink to another directory: compiled: $got"
[ "$got" = "app util " ] || fail=1
exit $fail
