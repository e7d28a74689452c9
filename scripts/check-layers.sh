#!/usr/bin/env bash
# Import circles and upward imports between the top-level modules of each workspace crate,
# read from the source: every `crate::<module>` path in code (`use` lines, `pub use`
# re-exports and paths written inline), comments and string literals left out.
#
# Prints, per crate, every circle (a set of top-level modules that import one another, with
# one import per step, file:line) and every import of a module from a lower layer into a
# higher one against the declared order below; then a line of totals. Exits 1 if it found
# any (or a module the order does not place), 0 if none.
#
# Product code only by default: test code (`tests.rs`, files under `#[cfg(test)] mod x;`,
# `#[cfg(test)] mod x { ... }` blocks) may reach any layer for its fixtures. `--tests`
# checks test code too, marked `(test)`, but for its imports of the test kits.
#
# Usage: scripts/check-layers.sh [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os
import re
import sys

# The declared orders, lowest layer first; a module may import its own layer and lower
# ones. A crate with no order here is checked for circles only. Every top-level module of
# a crate with an order must be placed (a new module is a decision: put it in its layer).
LAYERS = {
    # The node crate (src/), read from lib.rs's doc and from what each module does:
    # 0 formats: the node's extensions of synchronicity-verify (whose re-exports `verify`
    #   and `codec` are below everything);
    # 1 the pure protocol core (rounds, verdicts, the replicated state);
    # 2 I/O shells under the node: the log store (and its Merkle tiles), the builder
    #   (sandboxes), the consensus engine (Malachite's driver, the WAL), the node directory
    #   (keys); and the witness formats (C2SP add-checkpoint, cosignature/v1: built on the
    #   log's note types);
    # 3 the node (the loop over all of them, with the witness submitter);
    # 4 servers over the node: the HTTP log view and the witness server;
    # 5 the command line;
    # 6 test kit: deterministic committees and the fixed builder (`testing`): nothing in
    #   the product may import it (the Byzantine member lives in examples/testnet_member).
    "synchronicity": [
        ["clock", "crypto", "committee", "request"],
        ["protocol"],
        ["log", "builder", "consensus", "node_dir", "witness", "recipe"],
        ["node"],
        ["http"],
        ["cli"],
        ["testing"],
    ],
    # The verifier crate: encodings and signatures (and the round's public names, which
    # import nothing); the formats built on them; the log's proofs and the committee chain
    # (epochs); the whole check of a proof file, and the index's answers; test kits.
    "synchronicity-verify": [
        ["codec", "crypto", "round"],
        ["request", "manifest", "committee", "recipe"],
        ["entry", "tlog", "epoch"],
        ["proof", "index"],
        ["test_committee", "test_chain"],
    ],
}

# Test kits: test code of any layer may import them (with `--tests`, too).
TEST_KITS = {"testing", "test_committee", "test_chain"}

with_tests = "--tests" in sys.argv[1:]


def crates():
    """(package name, src dir) of every workspace member."""
    text = open("Cargo.toml").read()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", text)
    for m in re.findall(r'"([^"]+)"', members[1] if members else '"."'):
        cargo = os.path.join(m, "Cargo.toml")
        name = re.search(r'^\[package\][^\[]*?^name\s*=\s*"([^"]+)"', open(cargo).read(), re.M | re.S)
        yield name[1], os.path.normpath(os.path.join(m, "src"))


def code_of(line):
    """`line` without its `//` comment and string literals' contents."""
    out, i, in_str = [], 0, False
    while i < len(line):
        c = line[i]
        if in_str:
            if c == "\\":
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
        elif line.startswith("//", i):
            break
        else:
            out.append(c)
        i += 1
    return "".join(out)


def child_dir(path):
    """Where the files of `path`'s child modules live."""
    d, f = os.path.split(path)
    return d if f in ("lib.rs", "main.rs", "mod.rs") else os.path.join(d, f[:-3])


def test_files(src):
    """Files compiled only for tests: `tests.rs`, and the trees under `#[cfg(test)] mod x;`."""
    tests = set()
    for dp, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(dp, f)
            if f == "tests.rs":
                tests.add(p)
            lines = open(p).read().split("\n")
            for k, line in enumerate(lines[:-1]):
                if line.strip() == "#[cfg(test)]":
                    m = re.match(r"\s*(?:pub(?:\(crate\))? )?mod (\w+);", lines[k + 1])
                    if m:
                        base = os.path.join(child_dir(p), m[1])
                        tests.update({base + ".rs", os.path.join(base, "mod.rs")})
    # Everything below a test file is test code too.
    return {
        os.path.join(dp, f)
        for dp, _, fs in os.walk(src)
        for f in fs
        if any(os.path.join(dp, f) == t or os.path.join(dp, f).startswith(child_dir(t) + os.sep)
               for t in tests if t.endswith(".rs"))
    }


def imports(src, modules):
    """(from module, to module, file:line, is test) for every `crate::<module>` path."""
    tests = test_files(src)
    for dp, _, fs in sorted(os.walk(src)):
        for f in sorted(fs):
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, src)
            parts = rel.split(os.sep)
            # Crate roots: lib.rs re-exports; main.rs and src/bin/ are other crates.
            if not f.endswith(".rs") or rel in ("lib.rs", "main.rs") or parts[0] == "bin":
                continue
            top = parts[0][:-3] if len(parts) == 1 else parts[0]
            in_test_block = pending = False
            for n, line in enumerate(open(p), 1):
                if line.strip() == "#[cfg(test)]":
                    pending = True
                    continue
                if pending and re.match(r"(pub(\(crate\))? )?mod \w+ \{", line):
                    in_test_block = True
                pending = False
                if in_test_block and line.startswith("}"):
                    in_test_block = False
                    continue
                for m in re.finditer(r"\bcrate::(\w+)", code_of(line)):
                    if m[1] in modules and m[1] != top:
                        yield top, m[1], f"{src}/{rel}:{n}", p in tests or in_test_block


def top_modules(src):
    """The crate's top-level modules (`mod x;` in lib.rs)."""
    lib = os.path.join(src, "lib.rs")
    if not os.path.exists(lib):
        return set()
    return set(re.findall(r"^\s*(?:pub(?:\(crate\))? )?mod (\w+)\s*;", open(lib).read(), re.M))


def circles(edges):
    """The strongly connected sets of more than one module (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def shortest_circle(start, scc, edges):
    """The shortest circle from `start` back to it inside `scc` (modules, `start` repeated
    at the end)."""
    inside = sorted((a, b) for a, b in edges if a in scc and b in scc)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for a, b in inside:
            if a != path[-1]:
                continue
            if b == start:
                return path + [start]
            if b not in seen:
                seen.add(b)
                paths.append(path + [b])
    return [start]


def circles_in(scc, edges):
    """The shortest circle through each module of `scc`, each circle once (rotated to start
    at its smallest module)."""
    out = []
    for m in scc:
        c = shortest_circle(m, scc, edges)[:-1]
        k = c.index(min(c))
        c = c[k:] + c[:k]
        if c not in out:
            out.append(c)
    return [c + [c[0]] for c in out]


found = 0
for crate, src in crates():
    modules = top_modules(src)
    if not modules:
        continue
    layers = LAYERS.get(crate)
    level = {m: k for k, layer in enumerate(layers or []) for m in layer}
    if layers:
        for m in sorted(modules - set(level)):
            print(f"UNPLACED {crate}: module `{m}` is in no layer of scripts/check-layers.sh")
            found += 1
    where = {}
    for a, b, at, test in imports(src, modules):
        if test and (not with_tests or b in TEST_KITS):
            continue
        where.setdefault((a, b), []).append(at + (" (test)" if test else ""))
    for scc in circles(where):
        print(f"CIRCLE {crate}: {', '.join(scc)} import one another:")
        for path in circles_in(scc, where):
            steps = []
            for a, b in zip(path, path[1:]):
                ats = where[(a, b)]
                more = f" +{len(ats) - 1}" if len(ats) > 1 else ""
                steps.append(f"{a} -> {b} ({ats[0]}{more})")
            print("    " + ", ".join(steps))
        found += 1
    for (a, b), ats in sorted(where.items()):
        if a in level and b in level and level[b] > level[a]:
            more = f" (+{len(ats) - 1} more)" if len(ats) > 1 else ""
            print(f"UPWARD {crate}: {a} (layer {level[a]}) -> {b} (layer {level[b]}): {ats[0]}{more}")
            found += 1

print(f"{found} finding(s)" if found else "no circle, no upward import")
sys.exit(1 if found else 0)
PY
