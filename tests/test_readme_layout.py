"""README's orchestrator layout table names exactly the subpackages that `ls orchestrator` shows."""
from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_orchestrator_table_matches_the_tree():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    table = readme[readme.index("| `orchestrator/…` |"):].split("\n\n")[0]
    listed = re.findall(r"^\| `([a-z_]+)/` \|", table, flags=re.M)
    on_disk = sorted(d for d in os.listdir(os.path.join(ROOT, "orchestrator"))
                     if os.path.isfile(os.path.join(ROOT, "orchestrator", d, "__init__.py")))
    assert sorted(listed) == on_disk
    loose = sorted(f for f in os.listdir(os.path.join(ROOT, "orchestrator")) if f.endswith(".py") and f != "__init__.py")
    assert loose == [], f"modules outside a subpackage: {loose}"
