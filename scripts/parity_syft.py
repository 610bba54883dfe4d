#!/usr/bin/env python3
"""Helpers of scripts/parity-syft (standard library only).

  parity_syft.py fat-jar OUT.jar LIB.jar...   a Spring-Boot-style jar: the libraries stored under
                                              BOOT-INF/lib/, the application's own pom.properties
  parity_syft.py compare CROWSNEST.json SYFT.json
                                              per package type: found by both, only by one, and
                                              version disagreements, as markdown; then every
                                              difference with its path

Names are compared as each ecosystem compares them: PyPI names lower-cased with runs of `-_.` as
one `-`; Maven as `group:artifact` (syft's from its purl, which it takes from pom.properties);
Composer and NuGet names case-insensitively. Go versions lose their leading `v` (syft writes
`v1.2.3` and `go1.19.8` for the standard library; Crowsnest writes the OSV spelling `1.2.3`).
"""

import json
import os
import re
import sys
import zipfile
from collections import defaultdict
from urllib.parse import unquote

# Crowsnest's package kinds, under syft's names for the same package types
KIND_TO_SYFT_TYPE = {
    "Dpkg": "deb",
    "Apk": "apk",
    "Rpm": "rpm",
    "Python": "python",
    "Npm": "npm",
    "Cargo": "rust-crate",
    "Go": "go-module",
    "Maven": "java-archive",
    "RubyGems": "gem",
    "Packagist": "php-composer",
    "NuGet": "dotnet",
}
# syft's other Java types are Maven packages too (jenkins-plugin: .hpi/.jpi)
SYFT_TYPE_ALIASES = {"jenkins-plugin": "java-archive"}

FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


def fat_jar(out, libs):
    manifest = (
        "Manifest-Version: 1.0\r\n"
        "Main-Class: org.springframework.boot.loader.JarLauncher\r\n"
        "Start-Class: com.example.parity.App\r\n"
        "Spring-Boot-Version: 2.7.18\r\n"
        "Spring-Boot-Classes: BOOT-INF/classes/\r\n"
        "Spring-Boot-Lib: BOOT-INF/lib/\r\n"
        "Implementation-Title: parity-app\r\n"
        "Implementation-Version: 1.0.0\r\n\r\n"
    )
    pom = "artifactId=parity-app\ngroupId=com.example\nversion=1.0.0\n"

    def add(z, name, data, method):
        info = zipfile.ZipInfo(name, FIXED_ZIP_TIME)
        info.compress_type = method
        info.external_attr = 0o644 << 16
        z.writestr(info, data)

    with zipfile.ZipFile(out + ".tmp", "w") as z:
        add(z, "META-INF/MANIFEST.MF", manifest, zipfile.ZIP_DEFLATED)
        add(z, "META-INF/maven/com.example/parity-app/pom.properties", pom, zipfile.ZIP_DEFLATED)
        add(z, "BOOT-INF/classes/application.properties", "server.port=8080\n", zipfile.ZIP_DEFLATED)
        # Spring Boot stores nested jars uncompressed so that they can be read in place
        for lib in libs:
            with open(lib, "rb") as f:
                add(z, "BOOT-INF/lib/" + os.path.basename(lib), f.read(), zipfile.ZIP_STORED)
    os.replace(out + ".tmp", out)


def python_name(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def normal_name(ptype, name):
    if ptype == "python":
        return python_name(name)
    if ptype in ("php-composer", "dotnet"):
        return name.lower()
    return name


def normal_version(ptype, version):
    if ptype == "go-module":
        if version.startswith("go"):
            return version[2:]
        if version.startswith("v"):
            return version[1:]
    return version


def maven_name(artifact):
    """`group:artifact` from syft's purl (pkg:maven/<group>/<artifact>@<version>)."""
    purl = artifact.get("purl") or ""
    m = re.match(r"pkg:maven/([^/]+)/([^@?#]+)", purl)
    if m:
        return unquote(m.group(1)) + ":" + unquote(m.group(2))
    return artifact["name"]


def syft_path(artifact):
    meta = artifact.get("metadata") or {}
    virtual = meta.get("virtualPath") if isinstance(meta, dict) else None
    if virtual:
        # syft joins a nested archive to its parent with ':', Crowsnest with '!'
        return virtual.lstrip("/").replace(":", "!")
    locations = artifact.get("locations") or [{}]
    return ", ".join(loc.get("path", "?").lstrip("/") for loc in locations)


def load_syft(path):
    with open(path) as f:
        doc = json.load(f)
    items = []
    for a in doc.get("artifacts", []):
        ptype = SYFT_TYPE_ALIASES.get(a["type"], a["type"])
        name = maven_name(a) if ptype == "java-archive" else a["name"]
        items.append(
            {
                "type": ptype,
                "name": name,
                "key": normal_name(ptype, name),
                "version": a.get("version", ""),
                "cmp_version": normal_version(ptype, a.get("version", "")),
                "path": syft_path(a),
                "owner": None,
            }
        )
    return items


def load_crowsnest(path):
    with open(path) as f:
        doc = json.load(f)
    items = []
    for image in doc.get("images", []):
        for p in image.get("packages", []):
            ptype = KIND_TO_SYFT_TYPE.get(p["kind"], p["kind"])
            items.append(
                {
                    "type": ptype,
                    "name": p["name"],
                    "key": normal_name(ptype, p["name"]),
                    "version": p["version"],
                    "cmp_version": normal_version(ptype, p["version"]),
                    "path": (p.get("filePath") or "?").lstrip("/"),
                    "owner": p.get("owner"),
                }
            )
    return items


def crowsnest_unreadable(path):
    with open(path) as f:
        doc = json.load(f)
    return [u for image in doc.get("images", []) for u in image.get("unreadable") or []]


def take(items, pred):
    """Removes and returns the first item satisfying pred, or None."""
    for i, item in enumerate(items):
        if pred(item):
            return items.pop(i)
    return None


def same_file(a, b):
    return a["path"] == b["path"]


def compare_type(syft_items, crowsnest_items):
    """(both, version_differs, only_syft, only_crowsnest) for one package type."""
    by_name_s, by_name_c = defaultdict(list), defaultdict(list)
    for item in syft_items:
        by_name_s[item["key"]].append(item)
    for item in crowsnest_items:
        by_name_c[item["key"]].append(item)
    both, differs, only_s, only_c = [], [], [], []
    for key in sorted(set(by_name_s) | set(by_name_c)):
        s_left, c_left = list(by_name_s[key]), list(by_name_c[key])
        # same version: prefer the one read from the same file
        for c in list(c_left):
            s = take(s_left, lambda s: s["cmp_version"] == c["cmp_version"] and same_file(s, c)) or take(
                s_left, lambda s: s["cmp_version"] == c["cmp_version"]
            )
            if s:
                c_left.remove(c)
                both.append((s, c))
        # what is left under the same name disagrees on the version: same file first
        for c in list(c_left):
            s = take(s_left, lambda s: same_file(s, c)) or (s_left.pop(0) if s_left else None)
            if s:
                c_left.remove(c)
                differs.append((s, c))
        only_s.extend(s_left)
        only_c.extend(c_left)
    return both, differs, only_s, only_c


def describe(item):
    owner = f" (owned by {item['owner']})" if item["owner"] else ""
    return f"`{item['name']}` {item['version']} at `{item['path']}`{owner}"


def compare(crowsnest_json, syft_json):
    syft_items = load_syft(syft_json)
    crowsnest_items = load_crowsnest(crowsnest_json)
    types = sorted({i["type"] for i in syft_items} | {i["type"] for i in crowsnest_items})
    mapped = set(KIND_TO_SYFT_TYPE.values())
    rows, details = [], []
    totals = [0] * 7
    for ptype in types:
        s = [i for i in syft_items if i["type"] == ptype]
        c = [i for i in crowsnest_items if i["type"] == ptype]
        both, differs, only_s, only_c = compare_type(s, c)
        owned = sum(1 for i in c if i["owner"])
        counts = [len(s), len(c), len(both), len(only_s), len(only_c), len(differs), owned]
        totals = [t + n for t, n in zip(totals, counts)]
        label = ptype if ptype in mapped else f"{ptype} (no Crowsnest analyzer)"
        rows.append(f"| {label} | " + " | ".join(str(n) for n in counts) + " |")
        for s_item, c_item in differs:
            details.append(
                f"- {ptype}: version differs: syft {describe(s_item)}; crowsnest {describe(c_item)}"
            )
        for item in only_s:
            details.append(f"- {ptype}: only syft: {describe(item)}")
        for item in only_c:
            details.append(f"- {ptype}: only crowsnest: {describe(item)}")
    print("| type | syft | crowsnest | both | only syft | only crowsnest | version differs | crowsnest: owned by an OS package |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("| **total** | " + " | ".join(f"**{n}**" for n in totals) + " |")
    print()
    print("Differences:" if details else "No differences.")
    print()
    print("\n".join(details))
    unreadable = crowsnest_unreadable(crowsnest_json)
    print()
    print(f"Files Crowsnest could not read: {len(unreadable) or 'none'}")
    for u in unreadable:
        print(f"- `{u.get('path')}` ({u.get('analyzer')}: {u.get('code')}, {u.get('reason')})")


def main(argv):
    if len(argv) >= 3 and argv[1] == "fat-jar":
        fat_jar(argv[2], argv[3:])
    elif len(argv) == 4 and argv[1] == "compare":
        compare(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
