"""hostd/ in rooms (docs/ARCHITECTURE.md): imports only run downward, and no module sits loose.

The graph is built from the source with ``ast`` (every ``import``/``from ... import`` of a
``hostd`` module, at any depth: lazy imports inside functions count too), so nothing is imported
to check it. Two rules:

- no circle anywhere among hostd modules;
- an import between rooms goes down the room order below, never up or sideways.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Bottom first. A room may import any room before it in this list, and modules of its own room.
ROOMS = ("errors", "store", "intake", "books", "authority", "link", "boards", "owner", "api", "daemon", "sdk", "cli")
LOOSE_OK = ("__init__.py", "__main__.py", "errors.py")


def modules(top):
    """{dotted module name: path} of every .py file under ``top`` (a package directory)."""
    out = {}
    base = os.path.dirname(top)
    for folder, _, files in os.walk(top):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), base)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, name)
    return out


def graph(top):
    """{module: set of hostd modules it imports}."""
    mods = modules(top)
    package = os.path.basename(top)
    edges = {}
    for name, path in mods.items():
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module + "." + alias.name for alias in node.names] + [node.module]
            else:
                continue
            for dotted in names:
                while dotted and dotted not in mods:
                    dotted = dotted.rpartition(".")[0]
                if dotted and dotted.split(".")[0] == package and dotted != name:
                    targets.add(dotted)
        # "from hostd.x import y" names both hostd.x and hostd.x.y: keep the most specific only
        edges[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)
                       or t in _explicit_modules(tree)}
    return edges


def _explicit_modules(tree):
    return {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


def find_cycle(edges):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def room_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports(edges):
    bad = []
    for src, targets in edges.items():
        for dst in targets:
            a, b = room_of(src), room_of(dst)
            if a in (None, "__main__") or b is None or a == b:   # ``python -m hostd`` is the top
                continue
            if a not in ROOMS or b not in ROOMS or ROOMS.index(b) > ROOMS.index(a):
                bad.append("%s -> %s" % (src, dst))
    return sorted(bad)


def test_hostd_has_no_import_circle():
    edges = graph(os.path.join(ROOT, "hostd"))
    assert len(edges) > 30
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_imports_only_run_down_the_rooms():
    assert upward_imports(graph(os.path.join(ROOT, "hostd"))) == []


def test_every_room_is_known_and_documented():
    top = os.path.join(ROOT, "hostd")
    loose = sorted(n for n in os.listdir(top) if n.endswith(".py") and n not in LOOSE_OK)
    assert loose == [], "modules directly in hostd/: move each into the room that owns its data"
    rooms = sorted(n for n in os.listdir(top) if os.path.isdir(os.path.join(top, n)) and n != "__pycache__")
    assert sorted(set(rooms) | {"errors"}) == sorted(ROOMS)
    for room in rooms:
        with open(os.path.join(top, room, "__init__.py")) as fh:
            doc = ast.get_docstring(ast.parse(fh.read()))
        assert doc and "import" in doc, "hostd/%s/__init__.py must say what it owns and what it may import" % room


@pytest.mark.parametrize("kind", ["circle", "upward"])
def test_the_checks_fail_on_a_broken_tree(tmp_path, kind):
    """The checker itself can fail: a made-up tree with a circle, or an import up the rooms."""
    pkg = tmp_path / "hostd"
    for room in ("store", "api"):
        (pkg / room).mkdir(parents=True)
        (pkg / room / "__init__.py").write_text('"""room"""\n')
    (pkg / "__init__.py").write_text("")
    if kind == "circle":
        (pkg / "store" / "a.py").write_text("from hostd.store import b\n")
        (pkg / "store" / "b.py").write_text("def f():\n    from hostd.store.a import x\n")
        assert find_cycle(graph(str(pkg))) == ["hostd.store.a", "hostd.store.b", "hostd.store.a"]
    else:
        (pkg / "store" / "a.py").write_text("import hostd.api.handlers\n")
        (pkg / "api" / "handlers.py").write_text("")
        assert upward_imports(graph(str(pkg))) == ["hostd.store.a -> hostd.api.handlers"]
