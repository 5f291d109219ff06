#!/usr/bin/python3
"""Checks libonramp's layering from the #include lines of lib/.

A file in lib/<layer>/ may include only headers of the layers it stands on
(docs/architecture.md, "lib/ in layers"); every libonramp header is named
with its layer ("core/error.h"), so the rule is read from the text alone.
Prints one line per broken include and exits 1 when there is any; exits 2
on a lib/ it cannot read.

Usage: scripts/check-layers.py [ROOT]   (ROOT: the source tree, default: this tree)
"""
import os
import re
import sys

# What each layer may include (itself included).
ALLOWED = {
    "core": {"core"},
    "device": {"core", "device"},
    "net": {"core", "net"},
    "proto": {"core", "device", "net", "proto"},
    "server": {"core", "server", "proto"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def violations(root):
    """(path, line number, text, why) for every include that breaks the rule."""
    lib = os.path.join(root, "lib")
    found = []
    for layer in sorted(os.listdir(lib)):
        folder = os.path.join(lib, layer)
        if not os.path.isdir(folder):
            continue
        if layer not in ALLOWED:
            found.append((folder, 0, "", f"'{layer}' is not a layer of lib/"))
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m is None:
                        continue
                    target = m.group(1)
                    parts = target.split("/")
                    if len(parts) != 2 or parts[0] not in ALLOWED:
                        found.append((path, number, line.strip(),
                                      "a libonramp header is named layer/file.h"))
                    elif parts[0] not in ALLOWED[layer]:
                        found.append((path, number, line.strip(),
                                      f"{layer} may include only "
                                      f"{', '.join(sorted(ALLOWED[layer]))}"))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else \
        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "lib")):
        print(f"check-layers: no lib/ under {root}", file=sys.stderr)
        return 2
    found = violations(root)
    for path, number, text, why in found:
        print(f"{os.path.relpath(path, root)}:{number}: {text}: {why}")
    if found:
        print(f"check-layers: {len(found)} include(s) break the layering", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
