#!/usr/bin/env python3
"""Edit notebooks as plain text.

    python3 tools/nbtool.py topy NB.ipynb [OUT.py]   # notebook -> percent-format text (stdout if no OUT)
    python3 tools/nbtool.py tonb SRC.py NB.ipynb     # percent-format text -> notebook (outputs dropped)

Format: each cell starts with a line `# %% code` or `# %% markdown` (optionally followed by ` tags=a,b` and
` id=ID`: keep the id of existing cells, leave it off new ones);
everything up to the next such line is the cell's source, verbatim (markdown is NOT commented out).
Run nbdev-clean afterwards (it strips metadata; it keeps the ids).
"""
import json
import sys

HDR = "# %% "


def topy(nb_path, out=None):
    nb = json.load(open(nb_path))
    parts = []
    for c in nb["cells"]:
        tags = c.get("metadata", {}).get("tags", [])
        head = HDR + c["cell_type"] + (f" tags={','.join(tags)}" if tags else "") + (f" id={c['id']}" if c.get("id") else "")
        src = "".join(c["source"])
        parts.append(head + "\n" + src + ("\n" if not src.endswith("\n") else ""))
    text = "".join(parts)
    if out:
        open(out, "w").write(text)
    else:
        sys.stdout.write(text)


def tonb(src_path, nb_path):
    try:
        nb = json.load(open(nb_path))
    except FileNotFoundError:
        import platform  # the metadata JupyterLab writes when a kernel starts: opening the notebook changes nothing
        info = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                "pygments_lexer": "ipython3", "version": platform.python_version()}
        nb = {"cells": [], "metadata": {"kernelspec": {"display_name": "python3", "language": "python",
                                                        "name": "python3"}, "language_info": info},
              "nbformat": 4, "nbformat_minor": 5}
    cells, cur = [], None
    for line in open(src_path).read().splitlines(keepends=True):
        if line.startswith(HDR) and line.split()[2] in ("code", "markdown", "raw"):
            words = line.split()
            cur = {"cell_type": words[2], "tags": [], "lines": [], "id": None}
            for w in words[3:]:
                if w.startswith("tags="):
                    cur["tags"] = w[5:].split(",")
                if w.startswith("id="):
                    cur["id"] = w[3:]
            cells.append(cur)
        elif cur is not None:
            cur["lines"].append(line)
    out = []
    for i, c in enumerate(cells):
        lines = c["lines"]
        while lines and lines[-1].strip() == "":
            lines.pop()
        if lines:
            lines[-1] = lines[-1].rstrip("\n")
        cell = {"cell_type": c["cell_type"], "id": c["id"] or f"x{i:03d}", "metadata": {"tags": c["tags"]} if c["tags"] else {},
                "source": lines}
        if c["cell_type"] == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        out.append(cell)
    nb["cells"] = out
    json.dump(nb, open(nb_path, "w"), indent=1, ensure_ascii=False)
    open(nb_path, "a").write("\n")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"topy": topy, "tonb": tonb}[cmd](*args)
