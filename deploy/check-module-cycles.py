#!/usr/bin/env python3
"""Checks that the promsync crate's top-level modules form layers: no import cycles.

Reads every `src/**/*.rs` (except `lib.rs` and `main.rs`, which only declare and start
the modules), collects the `crate::…` paths it uses (in `use` trees and inline paths),
and builds the graph "top-level module A uses top-level module B". Two checks:

- no cycles: a strongly connected set of modules is reported with the edges inside it;
- layers (`LAYERS` below): a module uses only modules of lower layers (not even its
  neighbours in its own: the operator pages do not call the JSON API, both call the
  services), so the foundations never learn about the roles, nor the roles about HTTP.

Prints the graph with --graph. Exits 1 naming every cycle and every edge that does not
point down; a module no layer lists is only warned about, so that a new module needs a
decision, not a rescue.
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
EXCLUDED = {"lib.rs", "main.rs"}

# Bottom to top. `roles` (process supervision and signals) and `keyring` use nothing of
# the crate; `prom` (the Prom API) sits below `config`, which builds its origin policy;
# `metrics` sits above `broker`, whose dispositions it counts; `service` is the
# application layer the HTTP doors (`api`, `ui`, `ingress`) call through `http`.
LAYERS = [
    {"domain", "clock", "secrets", "keyring", "roles"},
    {"prom"},
    {"config", "provision"},
    {"db", "telemetry"},
    {"broker"},
    {"metrics"},
    {"import", "outbound", "poll"},
    {"service"},
    {"http", "error"},
    {"api", "ui", "ingress"},
    {"startup", "simulator"},
    {"demo"},
    {"cli"},
]
LAYER = {module: level for level, modules in enumerate(LAYERS) for module in modules}


def strip_comments(text):
    """Drops comments and string literals so that prose naming `crate::x` is not an edge."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def module_of(path):
    rel = os.path.relpath(path, ROOT)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def use_trees(text):
    """The top-level modules named by `use crate::{a, b::c, …}` trees."""
    for match in re.finditer(r"\buse\s+crate::", text):
        rest = text[match.end():]
        if rest.startswith("{"):
            depth, end = 0, 0
            for i, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    end = i
                    break
            inner = rest[1:end]
            # Only the first segment of each top-level item of the braces.
            depth, item = 0, ""
            for ch in inner + ",":
                if ch == "," and depth == 0:
                    name = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", item)
                    if name:
                        yield name.group(1)
                    item = ""
                    continue
                depth += ch == "{"
                depth -= ch == "}"
                item += ch
        else:
            name = re.match(r"([A-Za-z_][A-Za-z0-9_]*)", rest)
            if name:
                yield name.group(1)


def edges():
    graph = defaultdict(set)
    modules = set()
    for dirpath, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            if os.path.relpath(path, ROOT) in EXCLUDED:
                continue
            source = module_of(path)
            modules.add(source)
            with open(path, encoding="utf-8") as f:
                text = strip_comments(f.read())
            targets = set(use_trees(text))
            targets |= set(re.findall(r"(?<![\w:])crate::([A-Za-z_][A-Za-z0-9_]*)", text))
            for target in targets:
                if target != source and target not in ("self", "super"):
                    graph[source].add(target)
    return modules, graph


def cycles(modules, graph):
    """Tarjan's strongly connected components of more than one module."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(modules | set(graph)):
        if v not in index:
            visit(v)
    return found


def main():
    modules, graph = edges()
    if "--graph" in sys.argv:
        for source in sorted(modules):
            print(f"{source} -> {', '.join(sorted(graph.get(source, ()))) or '(nothing)'}")
    found = cycles(modules, graph)
    for component in found:
        inside = [
            f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component
        ]
        print(f"import cycle among {', '.join(component)}: {'; '.join(inside)}")
    for module in sorted(m for m in modules | set().union(*graph.values()) if m not in LAYER):
        print(f"warning: `{module}` is in no layer of {os.path.basename(__file__)}")
    not_down = [
        (a, b)
        for a in sorted(graph)
        for b in sorted(graph[a])
        if a in LAYER and b in LAYER and LAYER[b] >= LAYER[a]
    ]
    for a, b in not_down:
        print(f"edge not downward: {a} (layer {LAYER[a]}) uses {b} (layer {LAYER[b]})")
    if found or not_down:
        return 1
    print(f"no import cycles, every edge downward, among {len(modules)} top-level modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
