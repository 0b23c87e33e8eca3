#!/usr/bin/env python3
"""The dependency rule of DESIGN.md, enforced: every `#include "fcvm/<module>/..."` in a module's
sources must name the module itself or one DESIGN.md allows it to use.

DESIGN.md holds the rule as a table between the markers
  <!-- dependency-rule:begin --> and <!-- dependency-rule:end -->
with rows `| module | may use |` (modules separated by commas; "-" for none). `agent` stands for
src/agent (the guest agent), every other module for src/fcvm/<module>. Exit 1 names each
forbidden include with its file and line; a module missing from the table is an error too.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
design = (root / "DESIGN.md").read_text()
m = re.search(r"<!-- dependency-rule:begin -->(.*?)<!-- dependency-rule:end -->", design, re.S)
if not m:
    sys.exit("DESIGN.md has no dependency-rule table")
allowed = {}
for line in m.group(1).splitlines():
    cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
    if len(cells) != 2 or cells[0] in ("module", "") or set(cells[0]) <= set("-: "):
        continue
    uses = [u.strip().strip("`") for u in cells[1].split(",")]
    allowed[cells[0]] = {u for u in uses if u and u != "-"}

modules = {p.name: p for p in (root / "src/fcvm").iterdir() if p.is_dir()}
modules["agent"] = root / "src/agent"
include = re.compile(r'^\s*#\s*include\s+"fcvm/([a-z_0-9]+)/')
errors = []
for name, folder in sorted(modules.items()):
    if name not in allowed:
        errors.append(f"module {name} ({folder.relative_to(root)}) is not in DESIGN.md's table")
        continue
    for f in sorted(folder.rglob("*")):
        if f.suffix not in (".cpp", ".hpp", ".h", ".cc"):
            continue
        for n, text in enumerate(f.read_text().splitlines(), 1):
            hit = include.match(text)
            if hit and hit.group(1) != name and hit.group(1) not in allowed[name]:
                errors.append(f"{f.relative_to(root)}:{n}: {name} may not use {hit.group(1)}"
                              f" (DESIGN.md allows: {', '.join(sorted(allowed[name])) or 'none'})")
for e in errors:
    print(e)
checked = sum(1 for n in modules if n in allowed)
print(f"dependency rule: {checked} modules checked, {len(errors)} violations")
sys.exit(1 if errors else 0)
