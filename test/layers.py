#!/usr/bin/env python3
"""The layer check (make check): no call cycle among the library's source
files. Reads the objects of libevssh_core with nm, draws an edge A -> B for
every function or variable A uses by name that B defines, and fails when the
graph has a cycle: one file calling "up" by name into a file that (through
any chain) calls it. Upward reports must go through tables of function
pointers, which nm does not see, by design.

  layers.py OBJECT... | --dir DIR      (DIR: where the libtool objects are)
  layers.py --graph ...                also print every edge

Object names like libevssh_core_la-session.o are shown as session.c."""
import os
import re
import subprocess
import sys


def source_name(path):
    base = os.path.basename(path)
    base = re.sub(r"^lib\w+_la-", "", base)
    return re.sub(r"\.l?o$", ".c", base)


def symbols(path):
    out = subprocess.run(["nm", "-P", path], check=True, capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            used.add(name)
        elif kind in "TDBRVWG":   # global definitions only: static ones are lower-case
            defined.add(name)
    return defined, used


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    show = "--graph" in argv
    argv = [a for a in argv if a != "--graph"]
    if len(argv) == 2 and argv[0] == "--dir":
        d = argv[1]
        objs = [os.path.join(d, f) for f in sorted(os.listdir(d))
                if f.startswith("libevssh_core_la-") and f.endswith(".o")]
    else:
        objs = argv
    if not objs:
        print("SKIP: no objects of libevssh_core found")
        return 77
    owner, uses = {}, {}
    for o in objs:
        defined, used = symbols(o)
        name = source_name(o)
        uses[name] = used
        for s in defined:
            owner[s] = name
    graph = {n: set() for n in uses}
    why = {}
    for n, used in uses.items():
        for s in used:
            m = owner.get(s)
            if m and m != n:
                graph[n].add(m)
                why.setdefault((n, m), []).append(s)
    if show:
        for n in sorted(graph):
            for m in sorted(graph[n]):
                syms = sorted(why[(n, m)])
                more = " ..." if len(syms) > 4 else ""
                print(f"{n} -> {m}: {', '.join(syms[:4])}{more}")
    bad = cycles(graph)
    for comp in bad:
        members = set(comp)
        print("call cycle among " + ", ".join(comp) + ":")
        for n in comp:
            for m in sorted(graph[n] & members):
                print(f"  {n} -> {m}: {', '.join(sorted(why[(n, m)])[:6])}")
    if bad:
        return 1
    print(f"layers: {len(graph)} files, {sum(len(v) for v in graph.values())} edges, no call cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
